"""Inputs for the serve tests: generated weights, a short narration, small photos, bad files."""

from __future__ import annotations

import io
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from discriminator_cli.tools import ffmpeg_path
from tests.wav2lip_weights import DATA, write_checkpoint

SPEECH = DATA / "speech_3s_16k.wav"
ASTRONAUT_FACE = (168, 60, 280, 180)  # x1,y1,x2,y2 around the face in the 512x512 photo


# Model time is what the serve tests cost (about 0.25 CPU-s per frame on the test machines):
# `narration` is 7 frames (two chunks at batch size 4), `short` 2 frames (one chunk).
NARRATION_SECONDS = 0.4
SHORT_SECONDS = 0.2


def make_assets(folder: Path) -> dict[str, Path]:
    """checkpoint, narration (7 frames), short (2 frames), astronaut.png (512), face.jpg (the
    face, 128x128), gray.png (no face)."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    astronaut = Image.fromarray(data.astronaut())
    astronaut.save(folder / "astronaut.png")
    astronaut.crop((152, 40, 296, 184)).resize((128, 128)).save(folder / "face.jpg",
                                                                 quality=92)
    Image.new("RGB", (160, 120), (128, 128, 128)).save(folder / "gray.png")
    for name, seconds in (("narration", NARRATION_SECONDS), ("short", SHORT_SECONDS)):
        subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-i", str(SPEECH), "-t",
                        str(seconds), str(folder / f"{name}.wav")], check=True)
    write_checkpoint(folder / "wav2lip.pth")
    return {"checkpoint": folder / "wav2lip.pth", "narration": folder / "narration.wav",
            "short": folder / "short.wav",
            "astronaut": folder / "astronaut.png", "face": folder / "face.jpg",
            "gray": folder / "gray.png"}


def truncated_jpeg(source: Path) -> bytes:
    data = source.read_bytes()
    return data[: len(data) // 2]


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG header declaring width x height pixels in a few hundred bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 4, 9)  # a few rows: the rest is missing
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


def one_pixel_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 150, 120)).save(out, format="PNG")
    return out.getvalue()


def wait_for(client: Any, job_id: str, states: tuple[str, ...] = ("done", "failed"),
             timeout: float = 240.0, headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/v1/clips/{job_id}", headers=headers or {})
        assert status.status_code == 200, status.text
        body = status.json()
        if body["state"] in states:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {body['state']} after {timeout} s")
        time.sleep(0.2)


def decoded_frames(path: Path) -> np.ndarray:
    """Every frame of a clip, (N, H, W, 3) uint8 RGB."""
    from tests.helpers import video_stream

    stream = video_stream(path)
    raw = subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, stream["height"], stream["width"], 3)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
