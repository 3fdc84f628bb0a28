"""Tiny generated media for the editors' tests (captions, loudness, overlays, posters)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from discriminator_cli.tools import ffmpeg_path


def ffmpeg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error",
                           "-y", *args], capture_output=True, text=True, check=True)


def tiny_source(path: Path, *, seconds: float = 3.0, size: str = "160x90",
                volume_db: float = -20.0, audio: str = "sine=f=440") -> Path:
    """testsrc2 (a moving picture with a clock) + stereo `audio` (a lavfi source) at
    `volume_db`, as near-lossless H.264 + PCM in .mov."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d={seconds}",
           "-f", "lavfi", "-i", f"{audio}:sample_rate=48000:d={seconds}",
           "-filter_complex", f"[1:a]volume={volume_db}dB,aformat=channel_layouts=stereo[a]",
           "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
           "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", str(path))
    return path


def ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of the first audio track, measured here with ffmpeg's
    ebur128 filter (not through the library under test)."""
    out = subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-i", str(path),
                          "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    summary = out.rsplit("Summary:", 1)[-1]
    loudness = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary)
    assert loudness and peak, summary
    return float(loudness.group(1)), float(peak.group(1))


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "discriminator_cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env)


def encode_json(*args: str) -> dict[str, Any]:
    done = run_cli("encode", *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["results"][0]
