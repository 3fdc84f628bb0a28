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
from discriminator_cli.encode.overlay import HLS_NOTE
from discriminator_cli.encode.packaging import PackagerName
from discriminator_cli.encode.presets import load_preset
from discriminator_cli.errors import BadInputError
from discriminator_cli.runner import CommandRunner


def register(app: typer.Typer) -> None:
    app.command("encode")(encode)


def _parse_pairs(values: list[str], *, flag: str, example: str) -> list[tuple[str, Path]]:
    parsed = []
    for value in values:
        language, sep, path = value.partition("=")
        if not sep or not language or not path:
            raise BadInputError(f"{flag} {value!r} is not LANG=FILE",
                                hint=f"e.g. {flag} {example}")
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
    subtitles: Annotated[list[str] | None, typer.Option(
        "--subtitles", help="Captions LANG=FILE, WebVTT or SRT (repeatable).")] = None,
    loudness: Annotated[float | None, typer.Option(
        "--loudness", help="Normalise every audio track to this integrated loudness, LUFS "
                           "(e.g. -16 web, -23 broadcast); default: the preset's.")] = None,
    true_peak: Annotated[float | None, typer.Option(
        "--true-peak", help="True-peak ceiling after normalisation, dBTP (default -1).")]
    = None,
    poster_time: Annotated[float | None, typer.Option(
        "--poster-time", help="poster.jpg frame position, seconds (default: the preset's).")]
    = None,
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
                            language=language, extra_audio=_parse_pairs(audio or [], flag="--audio",
                                                           example="fra=narration_fr.wav"),
                            packager=packager, force=force, quality=quality,
                            validate=validate, cache_dir=cache_dir, engine=engine,
                            chunk_seconds=chunk_seconds, ray_address=ray_address,
                            ship_sources=ship_sources,
                            subtitles=_parse_pairs(subtitles or [], flag="--subtitles",
                                                   example="fra=captions_fr.vtt"),
                            loudness=loudness, true_peak=true_peak, poster_time=poster_time)
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
    for line in _editor_lines(result):
        info(line)


def _editor_lines(result: EncodeResult) -> list[str]:
    lines = []
    for report in result.loudness:
        after = (f"{report.after_lufs:.1f} LUFS, {report.after_true_peak:.1f} dBTP"
                 if report.after_lufs is not None and report.after_true_peak is not None
                 else "not measured")
        lines.append(f"loudness {report.language}: {report.before_lufs:.1f} LUFS, "
                     f"{report.before_true_peak:.1f} dBTP -> {after} (target "
                     f"{report.target_lufs:g} LUFS, ceiling {report.true_peak_ceiling:g} "
                     f"dBTP, {report.mode})")
    if result.caption_languages:
        extracted = [lang for lang in result.caption_languages
                     if result.caption_files.get(lang) == result.source.path]
        origin = f"; {', '.join(extracted)} from the source's subtitle streams" \
            if extracted else ""
        lines.append(f"captions: {', '.join(result.caption_languages)} (DASH sidecar WebVTT, "
                     f"HLS segmented WebVTT{origin})")
    if result.overlay:
        o = result.overlay
        lines.append(f"overlay: {o.mpd} (DASH on-demand WebM, VP9 with alpha, a keyframe every "
                     f"{o.keyframe_interval} frames); progressive WebM per rung: "
                     f"{', '.join(o.progressive)}")
        lines.append(f"no HLS: {HLS_NOTE}")
    if result.poster:
        p = result.poster
        lines.append(f"poster: {p.path.name} ({p.width}x{p.height}, frame at {p.time:.2f} s)")
    return lines


def _mbps(bits: int) -> str:
    return f"{bits / 1e6:.2f}M"
