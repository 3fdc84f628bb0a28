"""Frames in and out of ffmpeg as raw BGR through pipes: no temporary AVI, never every frame
in memory. Photos are read with Pillow (the bundled ffmpeg has no PNG decoder)."""

from __future__ import annotations

import warnings
from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from discriminator_cli.errors import BadInputError, ToolFailedError
from discriminator_cli.probe import corrupt_media_reason, run_ffprobe
from discriminator_cli.runner import CommandRunner, StreamingProcess
from discriminator_cli.tools import ffmpeg_path, file_arg

MIN_PHOTO_SIDE = 32             # smaller pictures hold no usable face (the model sees 96x96)
MAX_PHOTO_PIXELS = 89_478_485   # Pillow's own decompression-bomb warning limit (~89 MP)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
OUTPUT_CRF = 18            # visually lossless for a clip that may be re-encoded downstream
MAX_CRF = 51               # x264's 8-bit range; 0 is lossless
OUTPUT_PRESET = "veryfast"  # the encode must keep up with the model on two cores
AUDIO_BITRATE = "128k"


def read_photo(path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8 BGR, or None when the file is not an image Pillow can read.

    A photo too small to hold a face, or so large that decoding it would exhaust memory (a
    decompression bomb: a few KB of PNG that inflate to gigabytes), is a BadInputError.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    check_photo_header(path)  # from the header, before any decoding
    try:
        image = Image.open(path)
    except (UnidentifiedImageError, OSError) as exc:
        if path.suffix.lower() in PHOTO_SUFFIXES:
            raise damaged_photo(path, exc) from None
        return None
    with image:
        try:
            upright = ImageOps.exif_transpose(image)  # phones store portrait photos rotated
            rgb = np.asarray(_eight_bit(upright).convert("RGB"))
        except (OSError, SyntaxError, ValueError) as exc:
            # Pillow knew the format, so this is a photo: handing it to ffmpeg as a "video"
            # would make a clip of the part that survived (grey below the cut).
            raise damaged_photo(path, exc) from None
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _eight_bit(image: Any) -> Any:
    """16-bit greyscale (PNG "I;16", or "I") as 8-bit "L": Pillow's convert("RGB") clips it
    to near white instead of scaling it, and no face survives that."""
    from PIL import Image

    if not (image.mode.startswith("I;16") or image.mode == "I"):
        return image
    levels = np.asarray(image).astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), mode="L")


def damaged_photo(path: Path, exc: BaseException | None = None) -> BadInputError:
    from PIL import UnidentifiedImageError

    # Pillow's "cannot identify image file '<path>'" repeats the path (a service's upload
    # path is not the viewer's to see); its decoding errors say where the data ran out.
    detail = f" ({exc})" if exc and str(exc) and not isinstance(exc, UnidentifiedImageError) \
        else ""
    return BadInputError(f"the image is damaged or cut short{detail}", path=path,
                         hint="export or send the photo again (JPEG or PNG)")


def check_photo_header(path: Path) -> None:
    """check_photo_size from the image header alone (no decoding): a cheap early check.
    Files Pillow does not read as images pass when not named as photos (videos: they are
    checked when probed); a .jpg/.png/... that Pillow cannot read is damaged."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x its limit; check_photo_size refuses those itself.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if 0 in image.size:  # a header cut off before the size was written
                raise damaged_photo(path)
            check_photo_size(path, *image.size)
    except Image.DecompressionBombError:  # Pillow refuses at open beyond twice its limit
        raise _too_large(path, None) from None
    except (UnidentifiedImageError, OSError) as exc:
        if path.suffix.lower() in PHOTO_SUFFIXES:  # named as a photo, yet not one Pillow reads
            raise damaged_photo(path, exc) from None
        return


def check_photo_size(path: Path, width: int, height: int) -> None:
    """Photos (and face videos) must be MIN_PHOTO_SIDE..MAX_PHOTO_PIXELS."""
    if min(width, height) < MIN_PHOTO_SIDE:
        raise BadInputError(f"the picture is {width}x{height} pixels, too small to hold a face",
                            path=path, hint=f"use a photo at least {MIN_PHOTO_SIDE}x"
                                            f"{MIN_PHOTO_SIDE} (a face 96 pixels or more across "
                                            "works best)")
    if width * height > MAX_PHOTO_PIXELS:
        raise _too_large(path, (width, height))


def _too_large(path: Path, size: tuple[int, int] | None) -> BadInputError:
    what = f"{size[0]}x{size[1]} pixels" if size else "larger than Pillow decodes safely"
    return BadInputError(f"the picture is {what}, over the {MAX_PHOTO_PIXELS // 1_000_000} "
                         "megapixel limit (decoding it could exhaust memory)", path=path,
                         hint="scale it down (e.g. 4096 pixels on the long side) and try again")


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
            check_photo_size(path, int(stream["width"]), int(stream["height"]))
            return VideoInfo(int(stream["width"]), int(stream["height"]), rate,
                             int(frames) if str(frames).isdigit() else None)
    raise BadInputError("neither a photo nor a video with a picture", path=path,
                        hint="pass a .jpg/.png photo or a video file to --face")


def scaled_size(width: int, height: int, resize_factor: int) -> tuple[int, int]:
    """inference.py's --resize_factor: divide the frame size; even sizes for yuv420p."""
    return (max(2, width // resize_factor) // 2 * 2, max(2, height // resize_factor) // 2 * 2)


def reader_argv(path: Path, width: int, height: int) -> list[str]:
    # -xerror: a damaged face video stops with an error instead of yielding what decodes.
    return [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-xerror", "-i",
            file_arg(path), "-map", "0:v:0", "-vf", f"scale={width}:{height}:flags=bicubic",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]


def iter_video_frames(path: Path, width: int, height: int,
                      runner: CommandRunner) -> Generator[np.ndarray, None, None]:
    """Decoded frames, (height, width, 3) uint8 BGR, one at a time."""
    size = width * height * 3
    try:
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
    except ToolFailedError as exc:
        reason = corrupt_media_reason(exc.stderr)
        if reason is None:
            raise
        raise BadInputError(f"the face video is corrupt or truncated (ffmpeg: {reason})",
                            path=path, hint="re-export or re-copy it") from None


def video_codec_args(crf: int) -> list[str]:
    """x264 at this CRF in yuv420p (plays everywhere); CRF 0 is lossless: libx264rgb at QP 0
    keeps the BGR frames bit for bit (yuv420p would lose them in the colour conversion), for
    comparing frames; most browsers do not play that profile (High 4:4:4 Predictive)."""
    if not 0 <= crf <= MAX_CRF:
        raise BadInputError(f"--crf {crf} is outside 0..{MAX_CRF}",
                            hint=f"use 0 (lossless) to {MAX_CRF}; {OUTPUT_CRF} is the default")
    if crf == 0:
        return ["-c:v", "libx264rgb", "-preset", OUTPUT_PRESET, "-qp", "0", "-pix_fmt", "bgr24"]
    return ["-c:v", "libx264", "-preset", OUTPUT_PRESET, "-crf", str(crf),
            "-pix_fmt", "yuv420p"]


def writer_argv(out: Path, width: int, height: int, fps: Fraction, audio: Path,
                metadata: dict[str, str], *, crf: int = OUTPUT_CRF) -> list[str]:
    """No -shortest: Wav2Lip's frame count can end a fraction of a frame before the narration,
    and the whole narration must be heard (players hold the last frame)."""
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}",
            "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0",
            "-i", file_arg(audio), "-map", "0:v:0", "-map", "1:a:0", *video_codec_args(crf),
            "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ac", "2", "-movflags", "+faststart"]
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
