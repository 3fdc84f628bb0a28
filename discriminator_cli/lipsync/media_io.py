"""Frames in and out of ffmpeg as raw BGR through pipes: no temporary AVI, never every frame
in memory. Photos are read with Pillow (the bundled ffmpeg has no PNG decoder)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from discriminator_cli.errors import BadInputError, ToolFailedError
from discriminator_cli.probe import run_ffprobe
from discriminator_cli.runner import CommandRunner, StreamingProcess
from discriminator_cli.tools import ffmpeg_path, file_arg

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
OUTPUT_CRF = 18            # visually lossless for a clip that may be re-encoded downstream
OUTPUT_PRESET = "veryfast"  # the encode must keep up with the model on two cores
AUDIO_BITRATE = "128k"


def read_photo(path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8 BGR, or None when the file is not an image Pillow can read."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)  # phones store portrait photos rotated
            rgb = np.asarray(upright.convert("RGB"))
    except (UnidentifiedImageError, OSError):
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int | None


def probe_face_video(path: Path, runner: CommandRunner) -> VideoInfo:
    data = run_ffprobe(path, runner)
    for stream in data.get("streams", []):
        if stream.get("codec_type") == "video":
            rate = Fraction(stream.get("avg_frame_rate") or "0/1") \
                if stream.get("avg_frame_rate") not in (None, "0/0") else Fraction(0)
            if rate <= 0:
                rate = Fraction(stream.get("r_frame_rate") or "25/1")
            frames = stream.get("nb_frames")
            return VideoInfo(int(stream["width"]), int(stream["height"]), rate,
                             int(frames) if str(frames).isdigit() else None)
    raise BadInputError("neither a photo nor a video with a picture", path=path,
                        hint="pass a .jpg/.png photo or a video file to --face")


def scaled_size(width: int, height: int, resize_factor: int) -> tuple[int, int]:
    """inference.py's --resize_factor: divide the frame size; even sizes for yuv420p."""
    return (max(2, width // resize_factor) // 2 * 2, max(2, height // resize_factor) // 2 * 2)


def reader_argv(path: Path, width: int, height: int) -> list[str]:
    return [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", file_arg(path),
            "-map", "0:v:0", "-vf", f"scale={width}:{height}:flags=bicubic", "-f", "rawvideo",
            "-pix_fmt", "bgr24", "pipe:1"]


def iter_video_frames(path: Path, width: int, height: int,
                      runner: CommandRunner) -> Generator[np.ndarray, None, None]:
    """Decoded frames, (height, width, 3) uint8 BGR, one at a time."""
    size = width * height * 3
    with runner.open(reader_argv(path, width, height), what="ffmpeg face video decode",
                     stdout=True, path=path) as stream:
        while True:
            data = stream.read_exactly(size)
            if data is None:
                return
            try:
                yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
            except GeneratorExit:
                stream.stop()  # the caller has every frame it needs
                raise


def writer_argv(out: Path, width: int, height: int, fps: Fraction, audio: Path,
                metadata: dict[str, str]) -> list[str]:
    """No -shortest: Wav2Lip's frame count can end a fraction of a frame before the narration,
    and the whole narration must be heard (players hold the last frame)."""
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
            "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0",
            "-i", file_arg(audio), "-map", "0:v:0", "-map", "1:a:0",
            "-c:v", "libx264", "-preset", OUTPUT_PRESET, "-crf", str(OUTPUT_CRF),
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ac", "2",
            "-movflags", "+faststart"]
    for key, value in metadata.items():
        argv += ["-metadata", f"{key}={value}"]
    return [*argv, "-f", "mp4", file_arg(out)]


class FrameWriter:
    """Feeds BGR frames to one ffmpeg process that muxes them with the narration."""

    def __init__(self, stream: StreamingProcess, width: int, height: int):
        self._stream, self.width, self.height = stream, width, height
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        if frame_bgr.shape != (self.height, self.width, 3):
            raise ValueError(f"frame {frame_bgr.shape} != {(self.height, self.width, 3)}")
        try:
            self._stream.stdin.write(np.ascontiguousarray(frame_bgr).tobytes())
        except BrokenPipeError:
            process = self._stream.process
            process.wait()
            raise ToolFailedError("ffmpeg stopped while encoding the clip",
                                  argv=[str(a) for a in process.args],  # type: ignore[union-attr]
                                  returncode=process.returncode,
                                  stderr=self._stream.stderr_text()) from None
        self.frames += 1
