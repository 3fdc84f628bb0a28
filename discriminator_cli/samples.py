"""Generated sample media (ffmpeg lavfi sources): the demo's raw/sample.mov and test clips."""

from __future__ import annotations

from pathlib import Path

from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path


def sample_argv(path: Path, *, seconds: float = 10.0, width: int = 1920, height: int = 1080,
                fps: int = 25, audio: bool = True, tone_hz: int = 440) -> list[str]:
    """A ProRes .mov (what editors export) or an H.264 file, by suffix, with a moving test
    pattern and a tone; the pattern's noise keeps the encoder busy like real footage."""
    video = f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds},noise=alls=12:allf=t"
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", video]
    if audio:
        argv += ["-f", "lavfi", "-i",
                 f"sine=frequency={tone_hz}:sample_rate=48000:duration={seconds}"]
    if path.suffix.lower() == ".mov":
        argv += ["-c:v", "prores_ks", "-profile:v", "0", "-pix_fmt", "yuv422p10le"]
    else:
        argv += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
    if audio:
        argv += ["-c:a", "pcm_s16le" if path.suffix.lower() == ".mov" else "aac", "-ac", "2"]
    return [*argv, "-shortest", str(path)]


def generate_sample(path: Path, *, runner: CommandRunner | None = None, **kwargs: object) -> Path:
    runner = runner or CommandRunner()
    if not runner.dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
    runner.run(sample_argv(path, **kwargs), what="ffmpeg sample", path=path)  # type: ignore[arg-type]
    return path
