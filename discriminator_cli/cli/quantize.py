"""`discriminator quantize CKPT -o FILE`: a static int8 model calibrated on your inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import err_console, print_json
from discriminator_cli.cli.progress import RichProgress

WHAT = "discriminator quantize"


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)


def quantize(
    checkpoint: Annotated[Path, typer.Argument(help="fp32 Wav2Lip checkpoint (.pth).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The int8 file to write.")],
    calibration_audio: Annotated[Path, typer.Option(
        "--calibration-audio", help="Your narration (any format ffmpeg reads).")],
    calibration_face: Annotated[Path, typer.Option(
        "--calibration-face",
        help="Your face photo (the face is detected; a face crop is used whole).")],
    calibration_box: Annotated[str | None, typer.Option(
        "--calibration-box", help="Face box in the photo, x1,y1,x2,y2.")] = None,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="Refuse below this PSNR (dB) vs fp32 on held-out frames.")] = 35.0,
    force: Annotated[bool, typer.Option(
        "--force", help="Write even below the threshold; replace an existing output.")] = False,
    calibration_frames: Annotated[int, typer.Option(
        "--calibration-frames", min=2,
        help="Mel windows to calibrate on; half as many more are held out to measure PSNR.")
    ] = 32,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Cache root.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Calibrate static int8 on your narration and face, report PSNR vs fp32, write FILE."""
    from discriminator_cli.lipsync import lipsync_imports, require_lipsync_extra

    require_lipsync_extra(WHAT)
    with lipsync_imports(WHAT):
        from discriminator_cli.lipsync.faces import parse_box
        from discriminator_cli.lipsync.quantize import (
            QuantizationRefusedError,
            calibration_inputs,
            quantize_checkpoint,
        )
    mels, face, info = calibration_inputs(calibration_audio, calibration_face,
                                          box=parse_box(calibration_box) if calibration_box
                                          else None, cache_dir=cache_dir)
    if not json_output:
        err_console.print(f"calibrating int8 on {calibration_audio} ({len(mels)} mel windows) "
                          f"and {calibration_face} ...", soft_wrap=True)
    try:
        with RichProgress(enabled=not json_output, counts=True) as bars:
            report = quantize_checkpoint(checkpoint, output, mels=mels, face=face,
                                         threshold_db=threshold, force=force,
                                         calibration_frames=calibration_frames,
                                         heldout_frames=max(1, calibration_frames // 2),
                                         calibration_info=info, progress=bars)
    except QuantizationRefusedError as exc:
        if json_output:
            print_json(exc.report.as_dict())
        raise
    if json_output:
        print_json(report.as_dict())
        return
    ratio = report.output_bytes / report.source_bytes
    status = ("[yellow]below threshold, written because of --force[/yellow]"
              if report.psnr_db < threshold else "[green]ok[/green]")
    err_console.print(
        f"{output}: int8, PSNR {report.psnr_db:.1f} dB vs fp32 on {report.heldout_frames} "
        f"held-out frames ({status}); {report.output_bytes / 1e6:.1f} MB "
        f"({ratio:.0%} of {checkpoint.name}), {report.seconds:.1f} s", soft_wrap=True)
