"""Generated sample media (ffmpeg lavfi sources): the demo's raw/sample.mov and test clips."""

from __future__ import annotations

from pathlib import Path

from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path

SAMPLE_CODECS = ("h264", "prores")


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
    return [*argv, "-shortest", str(path)]


def generate_sample(path: Path, *, runner: CommandRunner | None = None, **kwargs: object) -> Path:
    runner = runner or CommandRunner()
    if not runner.dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
    runner.run(sample_argv(path, **kwargs), what="ffmpeg sample", path=path)  # type: ignore[arg-type]
    return path
