// The preview page: one player library per page load (chosen with ?player=), a rendition
// picker, the audio track, the caption tracks, and live stats. Everything a test needs is on
// window.preview: preview.snapshot() returns the state as plain JSON (textTracks as the player
// lists them, cues: the text of the cues showing now), preview.setRendition(i) forces a
// rendition (-1 = automatic), preview.setText(i) shows caption track i (-1 = off),
// preview.seek(t) seeks, preview.play() plays.
"use strict";

const state = {
  player: null, manifestKind: null, manifestUrl: null, status: "loading",
  renditions: [], activeRendition: null, forcedRendition: -1,
  audioTracks: [], activeAudio: null, textTracks: [], activeText: -1, cues: [],
  errors: [], autoplayBlocked: false, stats: {},
};
let adapter = null;
const video = document.getElementById("video");

function recordError(source, fatal, detail) {
  state.errors.push({ source, fatal: Boolean(fatal), detail: String(detail), at: video.currentTime });
  const box = document.getElementById("errors");
  box.textContent += `${fatal ? "FATAL " : ""}${source}: ${detail}\n`;
}

function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${url}`));
    document.head.appendChild(script);
  });
}

async function createDashjs(url) {
  const events = dashjs.MediaPlayer.events;
  const player = dashjs.MediaPlayer().create();
  player.updateSettings({
    debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING },
    streaming: { abr: { autoSwitchBitrate: { video: true } } },
  });
  player.on(events.ERROR, (e) => recordError("dash.js", true,
    e.error ? `${e.error.code} ${e.error.message}` : JSON.stringify(e)));
  player.on(events.PLAYBACK_ERROR, (e) => recordError("dash.js playback", true, e.error));
  const initialized = new Promise((resolve) => player.on(events.STREAM_INITIALIZED, resolve));
  player.initialize(video, url, false);
  await initialized;
  const representations = () => player.getRepresentationsByType("video");
  return {
    renditions: () => representations().map((r, index) => ({
      index, id: String(r.id), width: r.width, height: r.height, bandwidth: r.bandwidth })),
    activeRendition: () => {
      const current = player.getCurrentRepresentationForType("video");
      return current ? representations().findIndex((r) => r.id === current.id) : null;
    },
    setRendition: (index) => {
      const auto = index < 0;
      player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: auto } } } });
      if (!auto) player.setRepresentationForTypeById("video", representations()[index].id, true);
    },
    audioTracks: () => player.getTracksFor("audio").map((t, index) => ({
      index, language: t.lang || "", label: (t.labels && t.labels[0] && t.labels[0].text) || "" })),
    activeAudio: () => {
      const current = player.getCurrentTrackFor("audio");
      return current ? player.getTracksFor("audio").indexOf(current) : null;
    },
    setAudio: (index) => player.setCurrentTrack(player.getTracksFor("audio")[index]),
    textTracks: () => player.getTracksFor("text").map((t, index) => ({
      index, language: t.lang || "", label: (t.labels && t.labels[0] && t.labels[0].text) || "" })),
    setText: (index) => {
      player.enableText(index >= 0);
      if (index >= 0) player.setTextTrack(index);
    },
  };
}

async function createShaka(url) {
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) throw new Error("shaka-player: browser not supported");
  const player = new shaka.Player();
  player.addEventListener("error", (e) => recordError("shaka-player",
    e.detail.severity === shaka.util.Error.Severity.CRITICAL,
    `code ${e.detail.code} category ${e.detail.category} ${JSON.stringify(e.detail.data)}`));
  await player.attach(video);
  await player.load(url);
  // One entry per video stream: variants are video x audio combinations.
  const videoVariants = () => {
    const seen = new Map();
    for (const track of player.getVariantTracks()) {
      if (track.videoId != null && !seen.has(track.videoId)) seen.set(track.videoId, track);
    }
    return [...seen.values()].sort((a, b) => a.height - b.height || a.bandwidth - b.bandwidth);
  };
  return {
    renditions: () => videoVariants().map((t, index) => ({
      index, id: String(t.videoId), width: t.width, height: t.height,
      bandwidth: t.videoBandwidth || t.bandwidth })),
    activeRendition: () => {
      const active = player.getVariantTracks().find((t) => t.active);
      return active ? videoVariants().findIndex((t) => t.videoId === active.videoId) : null;
    },
    setRendition: (index) => {
      player.configure({ abr: { enabled: index < 0 } });
      if (index < 0) return;
      const wanted = videoVariants()[index].videoId;
      const active = player.getVariantTracks().find((t) => t.active);
      const variant = player.getVariantTracks().find((t) => t.videoId === wanted &&
        (!active || t.audioId === active.audioId)) ||
        player.getVariantTracks().find((t) => t.videoId === wanted);
      player.selectVariantTrack(variant, /* clearBuffer= */ true);
    },
    audioTracks: () => player.getAudioTracks().map((t, index) => ({
      index, language: t.language || "", label: t.label || "" })),
    activeAudio: () => {
      const index = player.getAudioTracks().findIndex((t) => t.active);
      return index < 0 ? null : index;
    },
    setAudio: (index) => player.selectAudioTrack(player.getAudioTracks()[index]),
    textTracks: () => player.getTextTracks().map((t, index) => ({
      index, language: t.language || "", label: t.label || "" })),
    setText: (index) => player.selectTextTrack(index >= 0 ? player.getTextTracks()[index] : null),
  };
}

async function createHlsjs(url) {
  if (!Hls.isSupported()) throw new Error("hls.js: MediaSource is not supported");
  const hls = new Hls({ debug: false });
  const parsed = new Promise((resolve, reject) => {
    hls.on(Hls.Events.MANIFEST_PARSED, resolve);
    hls.on(Hls.Events.ERROR, (event, data) => {
      const code = data.response && data.response.code ? ` HTTP ${data.response.code}` : "";
      recordError("hls.js", data.fatal, `${data.type} ${data.details}${code}`);
      if (data.fatal) reject(new Error(`hls.js: ${data.details}`));
    });
  });
  hls.attachMedia(video);
  hls.loadSource(url);
  await parsed;
  return {
    renditions: () => hls.levels.map((l, index) => ({
      index, id: String(index), width: l.width, height: l.height, bandwidth: l.bitrate })),
    activeRendition: () => (hls.currentLevel >= 0 ? hls.currentLevel : null),
    setRendition: (index) => { hls.currentLevel = index; },  // -1: automatic; else flushes
    audioTracks: () => hls.audioTracks.map((t, index) => ({
      index, language: t.lang || "", label: t.name || "" })),
    activeAudio: () => (hls.audioTrack >= 0 ? hls.audioTrack : null),
    setAudio: (index) => { hls.audioTrack = index; },
    textTracks: () => hls.subtitleTracks.map((t, index) => ({
      index, language: t.lang || "", label: t.name || "" })),
    setText: (index) => {
      hls.subtitleDisplay = index >= 0;
      hls.subtitleTrack = index;
    },
  };
}

const FACTORIES = { dashjs: createDashjs, shaka: createShaka, hlsjs: createHlsjs };

function bufferAhead() {
  const t = video.currentTime;
  for (let i = 0; i < video.buffered.length; i++) {
    if (video.buffered.start(i) <= t + 0.1 && t < video.buffered.end(i)) {
      return video.buffered.end(i) - t;
    }
  }
  return 0;
}

function playedSeconds() {
  let total = 0;
  for (let i = 0; i < video.played.length; i++) total += video.played.end(i) - video.played.start(i);
  return total;
}

// The cues on screen, whichever player put them there: all three render WebVTT through the
// video element's own text tracks, so the page reads what the viewer would see.
function showingCues() {
  const texts = [];
  for (const track of video.textTracks) {
    if (track.mode !== "showing" || !track.activeCues) continue;
    for (const cue of track.activeCues) texts.push(cue.text);
  }
  return texts;
}

function refresh() {
  if (adapter) {
    try {
      state.renditions = adapter.renditions();
      state.activeRendition = adapter.activeRendition();
      state.audioTracks = adapter.audioTracks();
      state.activeAudio = adapter.activeAudio();
      state.textTracks = adapter.textTracks();
    } catch (error) {
      recordError("page", false, `reading player state: ${error.message}`);
    }
  }
  const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : {};
  const active = state.renditions[state.activeRendition];
  const audio = state.audioTracks[state.activeAudio];
  state.cues = showingCues();
  state.stats = {
    videoWidth: video.videoWidth, videoHeight: video.videoHeight,
    bitrate: active ? active.bandwidth : null,
    buffer: bufferAhead(), currentTime: video.currentTime, duration: video.duration,
    paused: video.paused, ended: video.ended, seeking: video.seeking,
    readyState: video.readyState, played: playedSeconds(),
    decodedFrames: quality.totalVideoFrames || 0, droppedFrames: quality.droppedVideoFrames || 0,
    audioLanguage: audio ? audio.language : null,
    textLanguage: state.activeText >= 0 && state.textTracks[state.activeText]
      ? state.textTracks[state.activeText].language : null,
    mediaError: video.error ? `${video.error.code} ${video.error.message}` : null,
  };
  render();
}

function render() {
  const s = state.stats;
  const text = (id, value) => { document.getElementById(id).textContent = value; };
  text("stat-manifest", state.manifestUrl || "-");
  text("stat-resolution", s.videoHeight ? `${s.videoWidth}×${s.videoHeight}` : "-");
  text("stat-bitrate", s.bitrate ? `${Math.round(s.bitrate / 1000)} kbit/s` : "-");
  text("stat-buffer", `${(s.buffer || 0).toFixed(1)} s`);
  text("stat-position", `${(s.currentTime || 0).toFixed(1)} / ${(s.duration || 0).toFixed(1)} s`);
  text("stat-frames", `${s.decodedFrames} / ${s.droppedFrames}`);
  const audio = state.audioTracks[state.activeAudio];
  text("stat-audio", audio ? `${audio.language || "?"} ${audio.label}` : "-");
  const select = document.getElementById("rendition");
  if (select.options.length !== state.renditions.length + 1) {
    select.replaceChildren(new Option("auto", "-1"), ...state.renditions.map((r) =>
      new Option(`${r.width}×${r.height} · ${Math.round(r.bandwidth / 1000)} kbit/s`, r.index)));
    select.value = String(state.forcedRendition);
  }
  const audioSelect = document.getElementById("audio");
  if (audioSelect.options.length !== state.audioTracks.length) {
    audioSelect.replaceChildren(...state.audioTracks.map((t) =>
      new Option(`${t.language || "?"} ${t.label}`.trim(), t.index)));
  }
  if (state.activeAudio != null) audioSelect.value = String(state.activeAudio);
  const textSelect = document.getElementById("text");
  if (textSelect.options.length !== state.textTracks.length + 1) {
    textSelect.replaceChildren(new Option("off", "-1"), ...state.textTracks.map((t) =>
      new Option(`${t.language || "?"} ${t.label}`.trim(), t.index)));
    textSelect.value = String(state.activeText);
  }
  text("stat-text", state.cues.length ? state.cues.join(" / ") : "-");
}

window.preview = {
  state,
  snapshot: () => { refresh(); return JSON.parse(JSON.stringify(state)); },
  setRendition: (index) => {
    state.forcedRendition = index;
    adapter.setRendition(index);
    document.getElementById("rendition").value = String(index);
  },
  setAudio: (index) => adapter.setAudio(index),
  setText: (index) => {
    state.activeText = index;
    adapter.setText(index);
    document.getElementById("text").value = String(index);
  },
  seek: (seconds) => { video.currentTime = seconds; },
  play: () => video.play().then(() => true, (error) => {
    state.autoplayBlocked = error.name === "NotAllowedError";
    return false;
  }),
};

async function main() {
  const config = await (await fetch("/_preview/config.json")).json();
  document.getElementById("title").textContent = config.package;
  document.title = `${config.package} · discriminator preview`;
  // The server lists the choices whose manifest and library are both present.
  const usable = config.choices;
  const params = new URLSearchParams(location.search);
  const choice = usable.find((c) => c.id === params.get("player")) || usable[0];
  const picker = document.getElementById("player");
  picker.replaceChildren(...usable.map((c) => new Option(c.label, c.id)));
  picker.onchange = () => {
    params.set("player", picker.value);
    location.search = params.toString();
  };
  document.getElementById("rendition").onchange = (e) => window.preview.setRendition(Number(e.target.value));
  document.getElementById("audio").onchange = (e) => window.preview.setAudio(Number(e.target.value));
  document.getElementById("text").onchange = (e) => window.preview.setText(Number(e.target.value));
  if (config.poster) video.poster = config.poster;
  video.addEventListener("error", () => recordError("video element", true,
    video.error ? `${video.error.code} ${video.error.message}` : "unknown"));
  if (config.players_missing) {
    const notice = document.getElementById("notice");
    notice.textContent = config.players_missing;
    notice.hidden = false;
  }
  if (!choice) {
    state.status = "error";
    recordError("page", true, config.players_missing ||
      "no manifest with a usable player (see `discriminator preview`)");
    return;
  }
  picker.value = choice.id;
  state.player = choice.id;
  state.manifestKind = choice.manifest;
  state.manifestUrl = config.manifests[choice.manifest];
  video.muted = params.get("muted") === "1";
  try {
    await loadScript(config.players[choice.library]);
    adapter = await FACTORIES[choice.library](state.manifestUrl);
    state.status = "ready";
  } catch (error) {
    state.status = "error";
    recordError(choice.label, true, error.message || error);
  }
  refresh();
  setInterval(refresh, 250);
  if (state.status === "ready" && params.get("autoplay") !== "0") window.preview.play();
}

main();
