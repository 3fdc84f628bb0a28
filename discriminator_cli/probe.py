"""ffprobe a source: duration, frame rate, display size, rotation, audio streams."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from discriminator_cli.errors import BadInputError, ToolFailedError
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffprobe_path, file_arg

# r_frame_rate and avg_frame_rate further apart than this mean variable frame rate.
VFR_TOLERANCE = 0.01
_STANDARD_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
                   Fraction(30), Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60))


@dataclass(frozen=True)
class AudioStream:
    index: int          # absolute stream index in the file
    audio_index: int    # index among the audio streams (ffmpeg's 0:a:N)
    codec: str
    channels: int
    sample_rate: int
    language: str | None


@dataclass(frozen=True)
class SubtitleStream:
    index: int              # absolute stream index in the file
    subtitle_index: int     # index among the subtitle streams (ffmpeg's 0:s:N)
    codec: str              # mov_text, subrip, webvtt, hdmv_pgs_subtitle, ...
    language: str | None


@dataclass(frozen=True)
class SourceInfo:
    path: str
    size_bytes: int
    duration: float
    width: int              # display width (after rotation and sample aspect ratio)
    height: int             # display height
    coded_width: int
    coded_height: int
    rotation: int           # degrees, as the container asks players to rotate
    frame_rate: Fraction    # the constant rate the ladder is encoded at
    variable_frame_rate: bool
    video_codec: str
    pix_fmt: str
    frame_count: int | None
    audio: tuple[AudioStream, ...] = field(default_factory=tuple)
    subtitles: tuple[SubtitleStream, ...] = field(default_factory=tuple)

    @property
    def fps(self) -> float:
        return float(self.frame_rate)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["frame_rate"] = f"{self.frame_rate.numerator}/{self.frame_rate.denominator}"
        return data


def _fraction(text: str | None) -> Fraction | None:
    if not text or text in ("0/0", "N/A"):
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return round(float(side["rotation"])) % 360
    tag = stream.get("tags", {}).get("rotate")
    return int(tag) % 360 if tag and tag.lstrip("-").isdigit() else 0


def _standard_near(rate: Fraction | None) -> Fraction | None:
    if rate is None:
        return None
    best = min(_STANDARD_RATES, key=lambda r: abs(float(r) - float(rate)))
    return best if abs(float(best) - float(rate)) < 0.5 else None


def constant_rate_for(avg: Fraction, real: Fraction | None) -> Fraction:
    """The standard constant rate a variable-rate source is encoded at: the one its average
    is (a phone's 30 fps with drops), else its own base rate when that is standard (25 fps
    that fell to 12.5 for a while), else the lowest standard rate that keeps every frame.
    A non-standard rate would break the ladder's 48-frame GOPs = 2 s segments."""
    near = _standard_near(avg) or (_standard_near(real) if real and real >= avg else None)
    if near is not None:
        return near
    keeps_all = [r for r in _STANDARD_RATES if r >= avg]
    return min(keeps_all) if keeps_all else max(_STANDARD_RATES)


_CORRUPT_MARKERS = ("partial file", "Invalid data found", "moov atom not found",
                    "corrupt input packet", "Invalid NAL unit size", "error while decoding")


def corrupt_media_reason(stderr: str) -> str | None:
    """ffmpeg's first line naming damage in its input (later ones are its shutdown noise),
    or None when the failure is something else."""
    for line in stderr.splitlines():
        if any(marker in line for marker in _CORRUPT_MARKERS):
            return line.split("] ", 1)[-1].strip()
    return None


def run_ffprobe(path: Path, runner: CommandRunner | None = None) -> dict[str, Any]:
    runner = runner or CommandRunner()
    argv = [ffprobe_path(), "-v", "error", "-show_format", "-show_streams", "-of", "json",
            file_arg(path)]
    try:
        result = runner.run(argv, what="ffprobe", path=path, mutating=False)
    except ToolFailedError as exc:
        reason = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else "unreadable"
        raise BadInputError(f"not a readable media file ({reason})", path=path,
                            hint="check that the file is a complete video (re-export or "
                                 "re-copy it if it was truncated)") from None
    return json.loads(result.stdout or "{}")


def probe_source(path: Path, runner: CommandRunner | None = None) -> SourceInfo:
    """Probe and sanity-check a source video; raise BadInputError with the fix when unusable."""
    if not path.exists():
        raise BadInputError("file not found", path=path, hint="check the path")
    if path.is_dir():
        raise BadInputError("is a directory, not a video file", path=path,
                            hint="pass a video file, or a folder only where a folder is allowed")
    if not path.is_file():  # a FIFO or a device: ffprobe would wait on it or read forever
        raise BadInputError("not a regular file (a pipe or a device)", path=path,
                            hint="save the video to a file first")
    size = path.stat().st_size
    if size == 0:
        raise BadInputError("file is empty (0 bytes)", path=path,
                            hint="re-export or re-copy the source")
    data = run_ffprobe(path, runner)
    streams = data.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not s.get("disposition", {}).get("attached_pic")]
    if not videos:
        raise BadInputError("no video stream", path=path,
                            hint="pass a video file (audio-only files can be added with "
                                 "--audio LANG=FILE)")
    video = videos[0]
    duration = float(data.get("format", {}).get("duration") or video.get("duration") or 0)
    frame_count = int(video["nb_frames"]) if str(video.get("nb_frames", "")).isdigit() else None
    if duration <= 0 or frame_count == 0:
        raise BadInputError("zero-length video (no frames)", path=path,
                            hint="re-export the source; it holds no video frames")
    coded_w, coded_h = int(video.get("width") or 0), int(video.get("height") or 0)
    if coded_w <= 0 or coded_h <= 0:
        raise BadInputError("video stream has no picture size", path=path,
                            hint="the file is corrupt; re-export it")
    real = _fraction(video.get("r_frame_rate"))
    avg = _fraction(video.get("avg_frame_rate"))
    if real is None and avg is None:
        raise BadInputError("cannot determine the frame rate", path=path,
                            hint="re-export the source at a constant frame rate")
    variable = bool(real and avg and abs(float(real) - float(avg)) / float(avg) > VFR_TOLERANCE)
    rate = constant_rate_for(avg, real) if variable and avg else (real or avg)
    assert rate is not None
    rotation = _rotation(video)
    sar = _fraction(video.get("sample_aspect_ratio")) or Fraction(1)
    display_w, display_h = round(coded_w * sar), coded_h
    if rotation in (90, 270):
        display_w, display_h = display_h, display_w
    audio_streams = []
    for n, stream in enumerate(s for s in streams if s.get("codec_type") == "audio"):
        language = stream.get("tags", {}).get("language")
        audio_streams.append(AudioStream(
            index=int(stream["index"]), audio_index=n, codec=stream.get("codec_name", "?"),
            channels=int(stream.get("channels") or 0),
            sample_rate=int(stream.get("sample_rate") or 0),
            language=language if language and language != "und" else None))
    subtitle_streams = []
    for n, stream in enumerate(s for s in streams if s.get("codec_type") == "subtitle"):
        language = stream.get("tags", {}).get("language")
        subtitle_streams.append(SubtitleStream(
            index=int(stream["index"]), subtitle_index=n, codec=stream.get("codec_name", "?"),
            language=language if language and language != "und" else None))
    return SourceInfo(path=str(path), size_bytes=size, duration=duration, width=display_w,
                      height=display_h, coded_width=coded_w, coded_height=coded_h,
                      rotation=rotation, frame_rate=rate, variable_frame_rate=variable,
                      video_codec=video.get("codec_name", "?"),
                      pix_fmt=video.get("pix_fmt", "?"), frame_count=frame_count,
                      audio=tuple(audio_streams), subtitles=tuple(subtitle_streams))


def probe_audio_file(path: Path, runner: CommandRunner | None = None) -> AudioStream:
    """The first audio stream of an extra audio file (--audio LANG=FILE)."""
    if not path.is_file():
        raise BadInputError("audio file not found", path=path, hint="check the --audio path")
    data = run_ffprobe(path, runner)
    for stream in data.get("streams", []):
        if stream.get("codec_type") == "audio":
            return AudioStream(index=int(stream["index"]), audio_index=0,
                               codec=stream.get("codec_name", "?"),
                               channels=int(stream.get("channels") or 0),
                               sample_rate=int(stream.get("sample_rate") or 0),
                               language=stream.get("tags", {}).get("language"))
    raise BadInputError("no audio stream", path=path, hint="pass an audio file to --audio")
