// Drives the serve page at `/` in headless Chromium (playwright-core, launched as the preview
// driver does) like a viewer: a photo from a file or from the (fake) webcam, a narration,
// submit, then the progress and the clip. Prints one JSON object of what it saw; the test
// judges.
//
// usage: node serve_page.mjs '<json job>'
//   job = { url, chromium, nodeModules, narration, photo | null (null: the webcam),
//           fakeVideo | null (null: the fake camera's own test pattern), timeoutMs }
import { createRequire } from "node:module";
import path from "node:path";

const job = JSON.parse(process.argv[2]);
const require = createRequire(path.join(job.nodeModules, "noop.js"));
const { chromium } = require("playwright-core");

const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--autoplay-policy=no-user-gesture-required"];
if (!job.photo) {
  args.push("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream");
  if (job.fakeVideo) args.push(`--use-file-for-fake-video-capture=${job.fakeVideo}`);
}
const browser = await chromium.launch({ executablePath: job.chromium, args });
const out = { statuses: [], state: null, error: null, photoNote: null, clip: null,
  pageErrors: [] };
try {
  const page = await browser.newPage();
  page.on("pageerror", (error) => out.pageErrors.push(String(error)));
  await page.goto(job.url, { timeout: job.timeoutMs });
  // Every text the status line shows, as it changes (the progress a viewer watches).
  await page.evaluate(() => {
    window.seen = [];
    const status = document.getElementById("status");
    new MutationObserver(() => window.seen.push(status.textContent))
      .observe(status, { childList: true, characterData: true, subtree: true });
  });
  await page.waitForFunction(() => window.servePage.state.narrations.length > 0,
                             null, { timeout: job.timeoutMs });
  await page.selectOption("#narration", job.narration);
  if (job.photo) {
    await page.setInputFiles("#photo", job.photo);
  } else {
    await page.click("#start-camera");
    await page.waitForFunction(() => document.getElementById("camera").videoWidth > 0,
                               null, { timeout: job.timeoutMs });
    await page.click("#snap");
    await page.waitForFunction(() => window.servePage.state.snapped, null,
                               { timeout: job.timeoutMs });
  }
  out.photoNote = await page.textContent("#photo-note");
  await page.click("#submit");
  await page.waitForFunction(() => ["done", "failed"].includes(window.servePage.state.status),
                             null, { timeout: job.timeoutMs, polling: 50 });
  if (await page.evaluate(() => window.servePage.state.status) === "done") {
    await page.waitForFunction(() => {
      const v = document.getElementById("clip");
      return v.error !== null || v.ended;
    }, null, { timeout: job.timeoutMs, polling: 50 });
    out.clip = await page.evaluate(() => {
      const v = document.getElementById("clip");
      return { ended: v.ended, currentTime: v.currentTime, duration: v.duration,
               videoWidth: v.videoWidth, videoHeight: v.videoHeight, hidden: v.hidden,
               error: v.error ? `${v.error.code}: ${v.error.message}` : null,
               sidecar: document.getElementById("sidecar").getAttribute("href") };
    });
  }
  out.statuses = await page.evaluate(() => window.seen);
  out.state = await page.evaluate(() => window.servePage.state);
  out.error = await page.textContent("#error");
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
