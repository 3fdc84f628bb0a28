"""Generated sample media (ffmpeg lavfi sources): the demo's raw/sample.mov and test clips."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from discriminator_cli.errors import BadInputError, OutputExistsError
from discriminator_cli.publish import staged_file
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path, file_arg

SampleCodec = Literal["h264", "prores"]
SAMPLE_CODECS: tuple[str, ...] = get_args(SampleCodec)


def sample_argv(path: Path, *, seconds: float = 10.0, width: int = 1920, height: int = 1080,
                fps: int = 25, audio: bool = True, tone_hz: int = 440,
                codec: str = "h264") -> list[str]:
    """A moving test pattern and a tone: near-lossless H.264 (small, quick to decode) or
    ProRes 422 10-bit (what editors usually export; 1.6x the size, slower to decode). A .mov
    gets PCM audio, other suffixes AAC. The pattern's noise keeps the encoder busy like real
    footage."""
    video = f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds},noise=alls=8:allf=t"
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", video]
    if audio:
        argv += ["-f", "lavfi", "-i",
                 f"sine=frequency={tone_hz}:sample_rate=48000:duration={seconds}"]
    if codec == "prores":
        argv += ["-c:v", "prores", "-profile:v", "2", "-pix_fmt", "yuv422p10le"]
    else:
        argv += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p"]
    if audio:
        argv += ["-c:a", "pcm_s16le" if path.suffix.lower() == ".mov" else "aac", "-ac", "2"]
    return [*argv, "-shortest", file_arg(path)]


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080); even numbers only (yuv420p needs them)."""
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) % 2 == 0
            and int(height) % 2 == 0 and int(width) > 0 and int(height) > 0):
        raise BadInputError(f"--size {text!r} is not WIDTHxHEIGHT with even numbers",
                            hint="e.g. --size 1920x1080")
    return int(width), int(height)


def generate_sample(path: Path, *, runner: CommandRunner | None = None, seconds: float = 10.0,
                    width: int = 1920, height: int = 1080, fps: int = 25, audio: bool = True,
                    tone_hz: int = 440, codec: str = "h264", force: bool = True) -> Path:
    """Write a generated source to `path` (published by rename: never half a file)."""
    runner = runner or CommandRunner()
    if codec not in SAMPLE_CODECS:
        raise BadInputError(f"--codec {codec!r} is not one of {', '.join(SAMPLE_CODECS)}",
                            hint="use --codec h264 or --codec prores")
    if path.exists() and not force:
        raise OutputExistsError("file already exists", path=path, hint="pass --force")
    def argv(target: Path) -> list[str]:
        return sample_argv(target, seconds=seconds, width=width, height=height, fps=fps,
                           audio=audio, tone_hz=tone_hz, codec=codec)

    if runner.dry_run:
        runner.run(argv(path), what="ffmpeg sample", path=path)
        return path
    with staged_file(path, force=force, flag="OUT") as staging:
        # the staging name keeps the suffix, so ffmpeg picks the same container
        runner.run(argv(staging), what="ffmpeg sample", path=path)
    return path
