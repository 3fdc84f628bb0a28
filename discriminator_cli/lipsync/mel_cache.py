"""The mel cache: a fixed narration is decoded and analysed once, then read back in milliseconds.

Entries live under `<cache root>/mel/<key>.npy` + `<key>.json`, where the key is a hash of the
audio's content (sha256 of its bytes, not its name) and every front-end parameter, so editing
the file, or changing a parameter, misses the cache. The .npy is published first and the
.json last (both by atomic rename), so an entry with a .json is always complete; a per-key
lock makes a second concurrent run wait for the first instead of decoding the audio twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from discriminator_cli.cache import cache_root, content_hash, key_of
from discriminator_cli.lipsync.audio import (
    DEFAULT_MEL_PARAMS,
    MelParams,
    frame_count,
    load_audio,
    melspectrogram,
)
from discriminator_cli.locks import file_lock
from discriminator_cli.publish import atomic_write_text, check_writable_parent, staged_file
from discriminator_cli.runner import CommandRunner

# Bump when the front end's output changes for the same parameters (invalidates old entries).
FRONTEND_VERSION = 1
MEL_SUBDIR = "mel"


@dataclass(frozen=True)
class MelEntry:
    """One cached mel. `hit` says whether this call found it (True) or computed it (False)."""

    key: str
    path: Path
    shape: tuple[int, int]
    params: dict[str, Any]
    audio_sha256: str
    audio_path: str
    samples: int
    duration_s: float
    hit: bool
    fps: float | None = None
    frames: int | None = None
    _mel: np.ndarray | None = field(default=None, repr=False, compare=False)

    def load(self) -> np.ndarray:
        """The (80, columns) float32 mel."""
        if self._mel is not None:
            return self._mel
        return np.load(self.path, allow_pickle=False)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key, "path": str(self.path), "shape": list(self.shape),
            "params": self.params, "audio_sha256": self.audio_sha256,
            "audio": self.audio_path, "samples": self.samples,
            "duration_s": round(self.duration_s, 6), "cache_hit": self.hit,
        }
        if self.fps is not None:
            data["fps"] = self.fps
            data["frames"] = self.frames
        return data


def get_or_compute_mel(audio_path: Path | str, cache_dir: Path | str | None = None, *,
                       fps: float | None = None, runner: CommandRunner | None = None,
                       params: MelParams = DEFAULT_MEL_PARAMS) -> MelEntry:
    """The mel of `audio_path`, from the cache or computed (and cached) now.

    cache_dir: the cache root (`--cache-dir`); default $DISCRIMINATOR_CACHE_DIR or the XDG
    cache. fps: when given, the entry also says how many video frames the mel yields.
    On a hit no ffmpeg runs (the content hash itself is memoised by path, size and mtime).
    """
    audio_path = Path(audio_path)
    root = cache_root(cache_dir)
    if not audio_path.is_file():
        # load_audio raises the friendly error; hashing a missing file would not.
        load_audio(audio_path, runner=runner)
    check_writable_parent(root / MEL_SUBDIR, what="cache", flag="--cache-dir")
    audio_sha = content_hash(audio_path, root)
    key = key_of({"audio_sha256": audio_sha, "params": params.as_dict(),
                  "frontend": FRONTEND_VERSION})
    directory = root / MEL_SUBDIR
    with file_lock(directory / f"{key}.lock"):
        entry = _read_entry(directory, key, audio_path)
        if entry is None:
            entry = _compute_entry(directory, key, audio_path, audio_sha, params, runner)
    if fps is not None:
        return _with_fps(entry, fps)
    return entry


def _with_fps(entry: MelEntry, fps: float) -> MelEntry:
    return MelEntry(entry.key, entry.path, entry.shape, entry.params, entry.audio_sha256,
                    entry.audio_path, entry.samples, entry.duration_s, entry.hit, fps,
                    frame_count(entry.shape[1], fps), entry._mel)


def _read_entry(directory: Path, key: str, audio_path: Path) -> MelEntry | None:
    meta_path = directory / f"{key}.json"
    npy_path = directory / f"{key}.npy"
    if not (meta_path.is_file() and npy_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        # mmap: reading the header is enough to check the entry; callers load() it later.
        array = np.load(npy_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None  # damaged entry: recompute and overwrite it
    if list(array.shape) != meta.get("shape") or array.dtype != np.float32:
        return None
    return MelEntry(key, npy_path, tuple(array.shape), meta["params"], meta["audio_sha256"],
                    str(audio_path), int(meta["samples"]), float(meta["duration_s"]), hit=True)


def _compute_entry(directory: Path, key: str, audio_path: Path, audio_sha: str,
                   params: MelParams, runner: CommandRunner | None) -> MelEntry:
    wav = load_audio(audio_path, runner=runner)
    mel = melspectrogram(wav, params)
    npy_path = directory / f"{key}.npy"
    _atomic_save_npy(npy_path, mel)
    meta: dict[str, Any] = {"key": key, "shape": list(mel.shape), "params": params.as_dict(),
            "audio_sha256": audio_sha, "samples": int(wav.size),
            "duration_s": wav.size / params.sample_rate, "frontend": FRONTEND_VERSION}
    atomic_write_text(directory / f"{key}.json", json.dumps(meta, indent=2))
    return MelEntry(key, npy_path, (int(mel.shape[0]), int(mel.shape[1])), meta["params"],
                    audio_sha, str(audio_path), int(wav.size), wav.size / params.sample_rate,
                    hit=False, _mel=mel)


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with staged_file(path, force=True) as staging, open(staging, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
