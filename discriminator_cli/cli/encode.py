"""`discriminator encode SOURCE...`: the editors' ladder + DASH/HLS packaging."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from discriminator_cli.cli.options import DryRunOption, JsonOption, QuietOption
from discriminator_cli.cli.output import (
    err_console,
    finish_batch,
    info,
    plain,
    print_json,
    warn,
)
from discriminator_cli.cli.progress import RichProgress
from discriminator_cli.encode import EncodeOptions, EncodeResult, encode_many, plan_sources
from discriminator_cli.encode.job import EngineName
from discriminator_cli.encode.packaging import PackagerName
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.errors import BadInputError
from discriminator_cli.runner import CommandRunner


def register(app: typer.Typer) -> None:
    app.command("encode")(encode)


def _parse_audio(values: list[str]) -> list[tuple[str, Path]]:
    parsed = []
    for value in values:
        language, sep, path = value.partition("=")
        if not sep or not language or not path:
            raise BadInputError(f"--audio {value!r} is not LANG=FILE",
                                hint="e.g. --audio fra=narration_fr.wav")
        parsed.append((language, Path(path)))
    return parsed


def encode(
    sources: Annotated[list[Path], typer.Argument(help="Source videos, or folders of them.")],
    preset: Annotated[str, typer.Option(help="Preset name or path to a .toml file.")]
    = "documentary",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Package directory (one "
                                             "source only); default MEDIA_ROOT/NAME.")] = None,
    media_root: Annotated[Path, typer.Option(help="Where packages go by default.")]
    = Path("media"),
    language: Annotated[str | None, typer.Option(help="ISO 639-2 language of the main audio "
                                                 "(default: the preset's).")] = None,
    audio: Annotated[list[str] | None, typer.Option(help="Extra audio track LANG=FILE "
                                                    "(repeatable).")] = None,
    packager: Annotated[PackagerName, typer.Option(help="shaka (bundled), bento4, or auto "
                                                   "(Bento4 when installed).")] = "shaka",
    jobs: Annotated[int, typer.Option(min=1, help="Sources encoded at once.")] = 1,
    engine: Annotated[EngineName, typer.Option(help="local (one machine, whole source), "
                                               "chunked (GOP-aligned chunks, one machine) or "
                                               "ray (chunks over a Ray cluster; extra 'ray').")]
    = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join, e.g. auto or "
                                                    "HEAD:6379 (default: start Ray here).")]
    = None,
    chunk_seconds: Annotated[float, typer.Option(min=0.1, help="Chunk length for chunked/ray "
                                                 "(rounded to whole GOPs).")] = 30.0,
    ship_sources: Annotated[bool, typer.Option("--ship-sources", help="ray: send sources "
                                               "through Ray's object store (no shared "
                                               "storage).")] = False,
    quality: Annotated[bool, typer.Option("--quality", help="Add PSNR/SSIM per rung.")] = False,
    validate: Annotated[bool, typer.Option("--validate/--no-validate",
                                           help="Validate the package before publishing.")]
    = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing package.")]
    = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Rung cache (default "
                                                   "$XDG_CACHE_HOME/discriminator).")] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Encode a two-pass x264 ladder and package it as DASH (on-demand) + HLS into media/NAME/."""
    outputs = plan_sources(sources, out=out, media_root=media_root)
    options = EncodeOptions(preset=load_preset(preset), out_dir=media_root,
                            language=language, extra_audio=_parse_audio(audio or []),
                            packager=packager, force=force, quality=quality,
                            validate=validate, cache_dir=cache_dir, engine=engine,
                            chunk_seconds=chunk_seconds, ray_address=ray_address,
                            ship_sources=ship_sources)
    if engine == "ray":
        jobs = max(jobs, len(outputs))  # every film's chunks go to the cluster at once
    runner = CommandRunner(dry_run=dry_run, echo=print)
    with RichProgress(enabled=not (quiet or json_output or dry_run)) as bars:
        outcome = encode_many(outputs, options, jobs=jobs, runner=runner,
                              progress_for=lambda path: bars.child(f"{path.stem}: "))
    if json_output:
        print_json({"results": [r.as_dict() for r in outcome.results],
                    "failures": [f.as_dict() for f in outcome.failures]})
    elif not dry_run:
        for result in outcome.results:
            _print_result(result, quiet=quiet)
    finish_batch(outcome, noun="sources", json_output=json_output)


def _print_result(result: EncodeResult, *, quiet: bool) -> None:
    for message in result.warnings:
        warn(f"{result.source.path}: {message}")
    if quiet:
        print(result.out_dir)
        return
    table = Table("rung", "size", "target", "average", "peak", "cached", "PSNR", "SSIM",
                  title=plain(f"{result.source.path} -> {result.out_dir} ({result.backend})"))
    for rung in result.rungs:
        m = rung.measurement
        q = rung.quality or {}
        table.add_row(plain(rung.name), f"{rung.width}x{rung.height}",
                      _mbps(rung.target_bitrate),
                      _mbps(m.average_bitrate) if m else "-", _mbps(m.peak_bitrate) if m else "-",
                      "yes" if rung.cached else "no",
                      f"{q['psnr']:.2f}" if "psnr" in q else "-",
                      f"{q['ssim']:.4f}" if "ssim" in q else "-")
    err_console.print(table)
    audio = ", ".join(result.audio_languages) or "none (video-only)"
    checks = ""
    if result.validation is not None:
        checks = f"; validate: {result.validation.get('errors', 0)} errors, " \
                 f"{result.validation.get('warnings', 0)} warnings"
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    info(f"audio: {audio}; {len(result.files)} files{checks}; {timings}")


def _mbps(bits: int) -> str:
    return f"{bits / 1e6:.2f}M"
