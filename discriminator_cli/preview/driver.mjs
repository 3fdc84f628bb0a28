// Drives Debian's Chromium with playwright-core against a running preview server and prints
// one JSON object on stdout: what each player did. It observes; it does not judge (the Python
// side compares the observations with the manifests and the server's request log).
//
// usage: node driver.mjs '<json job>'
//   job = { baseUrl, players: ["dashjs", ...], chromium, nodeModules, playSeconds,
//           stepTimeoutMs, deadlineMs }
import { createRequire } from "node:module";
import path from "node:path";

const job = JSON.parse(process.argv[2]);
const require = createRequire(path.join(job.nodeModules, "noop.js"));
const { chromium } = require("playwright-core");

const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
];
const RENDITION_SEEK_TO = 0.2;  // every forced rendition restarts near the beginning
const RESUME_SECONDS = 1.0;     // media that must play after a switch or a seek

const output = { chromiumVersion: null, players: [], fatal: null };
const started = Date.now();

// A hard deadline so a wedged browser can never hang the caller: print what we have and exit.
const deadline = setTimeout(() => {
  output.fatal = `deadline of ${job.deadlineMs} ms reached`;
  process.stdout.write(JSON.stringify(output));
  process.exit(2);
}, job.deadlineMs);

async function waitUntil(page, predicate, arg, timeoutMs) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 100 });
    return true;
  } catch (error) {
    if (error.name === "TimeoutError") return false;
    throw error;
  }
}

const snapshot = (page) => page.evaluate(() => window.preview.snapshot());

async function runPlayer(browser, playerId) {
  // Wall-clock bounds let the caller attribute the server's request log to this player.
  const result = { player: playerId, startedAt: Date.now() / 1000, endedAt: null, steps: [],
    consoleErrors: [], pageErrors: [], offered: [], renditionChecks: [] };
  const context = await browser.newContext();  // its own cache: every request reaches the server
  const page = await context.newPage();
  page.on("console", (msg) => { if (msg.type() === "error") result.consoleErrors.push(msg.text()); });
  page.on("pageerror", (error) => result.pageErrors.push(String(error)));
  const step = async (name, body) => {
    const t0 = Date.now();
    let ok = false;
    let detail = null;
    try {
      ({ ok, detail } = await body());
    } catch (error) {
      detail = `exception: ${error.message}`;
    }
    const entry = { name, ok, seconds: (Date.now() - t0) / 1000, detail, state: null };
    try { entry.state = await snapshot(page); } catch { /* the page may be gone */ }
    result.steps.push(entry);
    return ok;
  };
  const timeout = job.stepTimeoutMs;
  try {
    const loaded = await step("load", async () => {
      await page.goto(`${job.baseUrl}/?player=${playerId}&autoplay=0`, { timeout });
      const settled = await waitUntil(page, () => window.preview &&
        window.preview.state.status !== "loading", null, timeout);
      const state = await snapshot(page);
      return { ok: settled && state.status === "ready", detail: settled ? state.status : "timeout" };
    });
    if (!loaded) return result;
    result.offered = (await snapshot(page)).renditions;

    // Stop at the first failed step: later steps would only add timeouts to the same failure.
    const played = await step("play", async () => {
      await page.evaluate(() => window.preview.play());
      const ok = await waitUntil(page, (seconds) => window.preview.snapshot().stats.played >= seconds,
        job.playSeconds, timeout + job.playSeconds * 1000);
      return { ok, detail: ok ? null : `played less than ${job.playSeconds} s` };
    });
    if (!played) return result;

    for (const rendition of result.offered) {
      const ok = await step(`rendition ${rendition.index}`, async () => {
        await page.evaluate(([index, at]) => {
          window.preview.setRendition(index);
          window.preview.seek(at);
          window.preview.play();
        }, [rendition.index, RENDITION_SEEK_TO]);
        const reached = await waitUntil(page, ([index, height, from]) => {
          const s = window.preview.snapshot();
          return s.activeRendition === index && s.stats.videoHeight === height &&
            !s.stats.seeking && s.stats.currentTime >= from;
        }, [rendition.index, rendition.height, RENDITION_SEEK_TO + RESUME_SECONDS], timeout);
        return { ok: reached, detail: reached ? null : "did not play at this rendition" };
      });
      const state = result.steps[result.steps.length - 1].state || { stats: {} };
      result.renditionChecks.push({
        index: rendition.index, width: rendition.width, height: rendition.height,
        bandwidth: rendition.bandwidth, ok, videoWidth: state.stats.videoWidth,
        videoHeight: state.stats.videoHeight, activeRendition: state.activeRendition,
      });
      if (!ok) return result;
    }

    await step("seek to middle", async () => {
      await page.evaluate(() => window.preview.setRendition(-1));
      const duration = (await snapshot(page)).stats.duration;
      const middle = duration / 2;
      result.seekTarget = middle;
      await page.evaluate((t) => { window.preview.seek(t); window.preview.play(); }, middle);
      const ok = await waitUntil(page, (from) => {
        const s = window.preview.snapshot().stats;
        return !s.seeking && !s.paused && s.currentTime >= from;
      }, middle + RESUME_SECONDS, timeout);
      return { ok, detail: ok ? null : `did not resume after seeking to ${middle.toFixed(2)} s` };
    });
  } finally {
    try { result.final = await snapshot(page); } catch { result.final = null; }
    await context.close();
    result.endedAt = Date.now() / 1000;
  }
  return result;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: job.chromium, headless: true, args: CHROMIUM_ARGS,
    timeout: job.stepTimeoutMs,
  });
  try {
    output.chromiumVersion = browser.version();
    for (const playerId of job.players) {
      output.players.push(await runPlayer(browser, playerId));
    }
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (error) {
  output.fatal = String(error && error.stack ? error.stack : error);
}
output.seconds = (Date.now() - started) / 1000;
clearTimeout(deadline);
process.stdout.write(JSON.stringify(output));
process.exit(output.fatal ? 1 : 0);
