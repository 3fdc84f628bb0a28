// The editors' browser checks, against a running preview server (tests/test_editors_browser.py
// starts it). Observes and prints one JSON object; the Python test judges.
//
// usage: node editors_browser.mjs '<json job>'
//   job = { baseUrl, chromium, nodeModules, timeoutMs, mode: "captions" | "alpha",
//           players: ["dashjs", "shaka", "hlsjs"],
//           captions: [{ language, at }, ...]              (mode captions)
//           alpha: { at, background: [r,g,b], points: [[x,y],...], progressive: "/media/x.webm" }
import { createRequire } from "node:module";
import path from "node:path";

const job = JSON.parse(process.argv[2]);
const require = createRequire(path.join(job.nodeModules, "noop.js"));
const { chromium } = require("playwright-core");

const output = { chromiumVersion: null, results: [], fatal: null };
const SETTLE_MS = 3000;

async function waitUntil(page, predicate, arg, timeoutMs = job.timeoutMs) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 100 });
    return true;
  } catch (error) {
    if (error.name === "TimeoutError") return false;
    throw error;
  }
}

async function openPlayer(context, player) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") errors.push(`${msg.type()}: ${msg.text()}`);
  });
  await page.goto(`${job.baseUrl}/?player=${player}&autoplay=0&muted=1`, { timeout: job.timeoutMs });
  const ready = await waitUntil(page, () => window.preview && window.preview.state.status !== "loading");
  return { page, errors, ready };
}

async function captions(context, player) {
  const { page, errors, ready } = await openPlayer(context, player);
  const result = { player, ready, errors, textTracks: [], checks: [] };
  if (!ready) return result;
  // Players list text tracks once their manifest (and for HLS the media playlists) is parsed.
  await waitUntil(page, () => window.preview.snapshot().textTracks.length > 0);
  result.textTracks = (await page.evaluate(() => window.preview.snapshot())).textTracks;
  for (const { language, at } of job.captions) {
    const check = { language, cues: [], currentTime: null };
    result.checks.push(check);
    const index = result.textTracks.findIndex((t) => t.language.split("-")[0] === language);
    if (index < 0) continue;
    // Select, let the player load the track, then seek: dash.js 5.2 drops a sidecar WebVTT's
    // cues when the seek comes before the newly selected file has arrived (seen every time).
    // dash.js fills a paused video's track only around the play position, so the wait for
    // cues is bounded by a short settle time rather than the step timeout.
    await page.evaluate((i) => window.preview.setText(i), index);
    check.trackLoaded = await waitUntil(page, (lang) => Array.from(
      document.getElementById("video").textTracks).some((t) => t.mode === "showing" &&
        t.language.split("-")[0] === lang && t.cues && t.cues.length > 0), language,
      SETTLE_MS);
    await page.evaluate((t) => { window.preview.seek(t); window.preview.play(); }, at);
    // The cues and the time are read in the same evaluation that pauses, so a loaded machine
    // cannot play past the cue between the observation and the record.
    check.cueShown = await waitUntil(page, (t) => {
      const s = window.preview.snapshot();
      if (s.cues.length === 0 || s.stats.currentTime < t) return false;
      document.getElementById("video").pause();
      window.captionHit = { cues: s.cues, currentTime: s.stats.currentTime };
      return true;
    }, at);
    const hit = await page.evaluate(() => window.captionHit || null);
    await page.evaluate(() => { document.getElementById("video").pause(); window.captionHit = null; });
    check.cues = hit ? hit.cues : [];
    check.currentTime = hit ? hit.currentTime : null;
    // The showing track's cues as the video element holds them (start, end, text).
    check.showing = await page.evaluate(() => Array.from(
      document.getElementById("video").textTracks).filter((t) => t.mode === "showing").map(
      (t) => ({ language: t.language, cues: t.cues ? Array.from(t.cues, (c) =>
        [c.startTime, c.endTime, c.text]) : null })));
  }
  result.playerErrors = (await page.evaluate(() => window.preview.snapshot())).errors;
  return result;
}

// Draw `video` over a canvas filled with the background colour; the pixels at `points`.
async function composite(page, selector, at, background, points) {
  return page.evaluate(async ([sel, t, bg, pts]) => {
    const video = document.querySelector(sel);
    if (Math.abs(video.currentTime - t) > 0.02) {
      const seeked = new Promise((resolve) => video.addEventListener("seeked", resolve, { once: true }));
      video.currentTime = t;
      await seeked;
    }
    // The seeked frame reaches the compositor a moment after the event.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = `rgb(${bg.join(",")})`;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(video, 0, 0);
    return { currentTime: video.currentTime, width: canvas.width, height: canvas.height,
             pixels: pts.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data)) };
  }, [selector, at, background, points]);
}

async function alpha(context, player) {
  const { at, background, points, progressive } = job.alpha;
  if (player === "progressive") {
    // A plain <video src=...webm> on the preview page's origin, so the canvas is not tainted.
    const page = await context.newPage();
    await page.goto(`${job.baseUrl}/?autoplay=0&muted=1`, { timeout: job.timeoutMs });
    await page.evaluate((src) => {
      const video = document.createElement("video");
      video.id = "plain";
      video.muted = true;
      video.preload = "auto";
      video.src = src;
      document.body.appendChild(video);
    }, progressive);
    const loaded = await waitUntil(page, () => document.getElementById("plain").readyState >= 2);
    const result = { player, ready: loaded };
    if (loaded) Object.assign(result, await composite(page, "#plain", at, background, points));
    return result;
  }
  const { page, errors, ready } = await openPlayer(context, player);
  const result = { player, ready, errors };
  if (!ready) return result;
  // Start playing (players honour seeks reliably once media flows), force the top rendition,
  // then seek the paused video to the sampled time.
  await page.evaluate(() => {
    const s = window.preview.snapshot();
    const top = s.renditions.reduce((a, b) => (b.height > a.height ? b : a));
    window.preview.setRendition(top.index);
    window.preview.play();
  });
  await waitUntil(page, () => document.getElementById("video").currentTime > 0.2);
  await page.evaluate((t) => {
    document.getElementById("video").pause();
    window.preview.seek(t);
  }, at);
  result.decoded = await waitUntil(page, (t) => {
    const v = document.getElementById("video");
    return !v.seeking && v.readyState >= 2 && Math.abs(v.currentTime - t) < 0.05;
  }, at);
  if (result.decoded) Object.assign(result, await composite(page, "#video", at, background, points));
  result.playerErrors = (await page.evaluate(() => window.preview.snapshot())).errors;
  return result;
}

try {
  const browser = await chromium.launch({
    executablePath: job.chromium, headless: true, timeout: job.timeoutMs,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--autoplay-policy=no-user-gesture-required"],
  });
  try {
    output.chromiumVersion = browser.version();
    for (const player of job.players) {
      const context = await browser.newContext();
      try {
        output.results.push(await (job.mode === "captions" ? captions : alpha)(context, player));
      } catch (error) {
        output.results.push({ player, exception: String(error) });
      } finally {
        await context.close();
      }
    }
  } finally {
    await browser.close();
  }
} catch (error) {
  output.fatal = String(error && error.stack ? error.stack : error);
}
process.stdout.write(JSON.stringify(output));
