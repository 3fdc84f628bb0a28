// Plays one progressive MP4 in headless Chromium (playwright-core, as the preview driver does)
// and prints one JSON object: what the <video> element did. Observes; the test judges.
//
// usage: node play_clip.mjs '<json job>'
//   job = { page: "file:///.../play.html", chromium, nodeModules, playSeconds, timeoutMs }
import { createRequire } from "node:module";
import path from "node:path";

const job = JSON.parse(process.argv[2]);
const require = createRequire(path.join(job.nodeModules, "noop.js"));
const { chromium } = require("playwright-core");

const browser = await chromium.launch({
  executablePath: job.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--autoplay-policy=no-user-gesture-required"],
});
const result = { played: false, state: null, pageErrors: [] };
try {
  const page = await browser.newPage();
  page.on("pageerror", (error) => result.pageErrors.push(String(error)));
  await page.goto(job.page, { timeout: job.timeoutMs });
  try {
    await page.waitForFunction(
      (seconds) => { const v = document.querySelector("video");
                     return v.error !== null || v.ended || v.currentTime >= seconds; },
      job.playSeconds, { timeout: job.timeoutMs, polling: 100 });
  } catch (error) {
    if (error.name !== "TimeoutError") throw error;
  }
  result.state = await page.evaluate(() => {
    const v = document.querySelector("video");
    return { currentTime: v.currentTime, duration: v.duration, ended: v.ended,
             videoWidth: v.videoWidth, videoHeight: v.videoHeight,
             error: v.error ? `${v.error.code}: ${v.error.message}` : null };
  });
  result.played = result.state.error === null && result.state.currentTime >= job.playSeconds;
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result));
