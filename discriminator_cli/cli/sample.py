"""`discriminator sample OUT`: generate a test source (lavfi test pattern + tone)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from discriminator_cli.cli.options import DryRunOption, JsonOption
from discriminator_cli.cli.output import info, print_json
from discriminator_cli.encode.samples import SampleCodec, generate_sample, parse_size
from discriminator_cli.runner import CommandRunner


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)


def sample(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.mov: with PCM "
                                      "audio; other suffixes: with AAC).")]
    = Path("raw/sample.mov"),
    seconds: Annotated[float, typer.Option(min=0.5, help="Duration.")] = 10.0,
    size: Annotated[str, typer.Option(help="WIDTHxHEIGHT.")] = "1920x1080",
    fps: Annotated[int, typer.Option(min=1, help="Frame rate.")] = 25,
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Add a stereo tone.")] = True,
    codec: Annotated[SampleCodec, typer.Option(help="h264 (near-lossless) or prores (422 "
                                               "10-bit).")] = "h264",
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT.")] = False,
    json_output: JsonOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Generate a sample source video, e.g. raw/sample.mov for `make demo`."""
    width, height = parse_size(size)
    runner = CommandRunner(dry_run=dry_run, echo=print)
    generate_sample(out, runner=runner, seconds=seconds, width=width, height=height,
                    fps=fps, audio=audio, codec=codec, force=force)
    if dry_run:
        return
    if json_output:
        print_json({"path": str(out), "bytes": out.stat().st_size, "seconds": seconds,
                    "size": size, "fps": fps, "audio": audio})
    else:
        info(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {seconds:g} s, {size} @ {fps})")
