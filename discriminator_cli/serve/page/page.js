// The try-it page: pick or take a photo, pick a narration, submit, poll, play.
// window.servePage exposes the state so a headless browser test can follow it.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { status: "idle", id: null, error: null, narrations: [], snapped: false,
  clipReady: false, played: 0 };
window.servePage = { state };
let snapshot = null;  // a Blob taken from the webcam

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function show(status, detail) {
  state.status = status;
  $("status").textContent = detail ? `${status} (${detail})` : status;
}

function fail(message) {
  state.error = message;
  $("error").textContent = message;
  show("failed");
}

async function problemText(response) {
  try {
    const body = await response.json();
    return `${body.title}: ${body.detail}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

async function loadNarrations() {
  const response = await fetch("v1/narrations", { headers: headers() });
  if (!response.ok) { fail(await problemText(response)); return; }
  state.narrations = (await response.json()).narrations;
  $("narration").replaceChildren(...state.narrations.map((name) => new Option(name, name)));
}

$("start-camera").addEventListener("click", async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    $("camera").srcObject = stream;
    $("camera").hidden = false;
    $("snap").hidden = false;
  } catch (error) {
    fail(`no webcam: ${error.message}`);
  }
});

$("snap").addEventListener("click", () => {
  const video = $("camera");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    snapshot = blob;
    state.snapped = true;
    $("photo-note").textContent = `webcam photo ${canvas.width}x${canvas.height}`;
    video.srcObject.getTracks().forEach((track) => track.stop());
    video.hidden = true;
  }, "image/jpeg", 0.92);
});

async function poll(statusUrl) {
  for (;;) {
    const response = await fetch(statusUrl, { headers: headers() });
    if (!response.ok) { fail(await problemText(response)); return null; }
    const job = await response.json();
    if (job.state === "queued") show("queued", `position ${job.position}`);
    if (job.state === "running") {
      show("running", `${Math.round(job.progress * 100)} %`);
      $("progress").value = job.progress;
    }
    if (job.state === "failed") { fail(job.reason); return null; }
    if (job.state === "done") return job;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.error = null;
  $("error").textContent = "";
  const file = $("photo").files[0];
  const photo = file || snapshot;
  if (!photo) { fail("choose a photo or take one with the webcam"); return; }
  const form = new FormData();
  form.append("photo", photo, file ? file.name : "webcam.jpg");
  form.append("narration", $("narration").value);
  show("uploading");
  const response = await fetch("v1/clips", { method: "POST", body: form, headers: headers() });
  if (response.status !== 202) { fail(await problemText(response)); return; }
  const accepted = await response.json();
  state.id = accepted.id;
  const job = await poll(accepted.status_url);
  if (!job) return;
  $("progress").value = 1;
  show("done");
  // A <video> cannot send the Authorization header: with a token, fetch the clip as a blob.
  const clip = $("clip");
  if (headers().Authorization) {
    const blob = await (await fetch(job.clip_url, { headers: headers() })).blob();
    clip.src = URL.createObjectURL(blob);
  } else {
    clip.src = job.clip_url;
  }
  $("sidecar").href = job.sidecar_url;
  $("sidecar").hidden = false;
  clip.hidden = false;
  clip.addEventListener("timeupdate", () => { state.played = clip.currentTime; });
  clip.addEventListener("loadedmetadata", () => { state.clipReady = true; });
  clip.play().catch(() => { /* autoplay may be refused; the controls are there */ });
});

loadNarrations();
