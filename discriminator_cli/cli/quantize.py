"""`discriminator quantize CKPT -o FILE`: an int8 model (mixed where int8 would hurt the face)
calibrated on your inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import info, print_json, warn
from discriminator_cli.cli.progress import RichProgress

WHAT = "discriminator quantize"


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)


def quantize(
    checkpoint: Annotated[Path, typer.Argument(help="fp32 Wav2Lip checkpoint (.pth).")],
    output: Annotated[Path, typer.Option("--out", "-o", "--output",
                                         help="The int8 file to write.")],
    calibration_audio: Annotated[Path, typer.Option(
        "--calibration-audio", help="Your narration (any format ffmpeg reads).")],
    calibration_face: Annotated[Path, typer.Option(
        "--calibration-face",
        help="Your face photo (the face is detected; a face crop is used whole).")],
    calibration_box: Annotated[str | None, typer.Option(
        "--calibration-box", help="Face box in the photo, x1,y1,x2,y2.")] = None,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="PSNR (dB) vs fp32 on held-out frames the int8 plan must keep; "
        "refuse when no plan keeps a layer in int8 above it.")] = 40.0,
    fallback: Annotated[str, typer.Option(
        "--fallback", help="Precision of the layers that stay float: auto (bf16 where the CPU "
        "runs it natively, else fp32), bf16, fp32.")] = "auto",
    speed: Annotated[bool, typer.Option(
        "--speed/--no-speed", help="Time generation against bf16 and fp32 (a few seconds).")]
    = True,
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
            calibration_inputs,
            check_quantize_output,
            quantize_checkpoint,
        )
    check_quantize_output(output, force)
    mels, face, calibration_info = calibration_inputs(calibration_audio, calibration_face,
                                          box=parse_box(calibration_box) if calibration_box
                                          else None, cache_dir=cache_dir)
    if calibration_info["face_box"] is None and not calibration_box:
        warn(f"{calibration_face}: no face found; the whole picture is used as the face crop "
             "(pass --calibration-box to choose one)")
    if not json_output:
        info(f"calibrating int8 on {calibration_audio} ({len(mels)} mel windows) and "
             f"{calibration_face} ...")
    # A refusal ends in QuantizationRefusedError; with --json its report is in the error JSON.
    with RichProgress(enabled=not json_output) as bars:
        report = quantize_checkpoint(checkpoint, output, mels=mels, face=face,
                                     threshold_db=threshold, force=force,
                                     calibration_frames=calibration_frames,
                                     heldout_frames=max(1, calibration_frames // 2),
                                     calibration_info=calibration_info, fallback=fallback,
                                     measure_speed=speed, progress=bars)
    if json_output:
        print_json(report.as_dict())
        return
    ratio = report.output_bytes / report.source_bytes
    status = ("below threshold, written because of --force" if report.psnr_db < threshold
              else "ok")
    info(f"{output}: PSNR {report.psnr_db:.1f} dB vs fp32 on {report.heldout_frames} held-out "
         f"frames ({status}; every layer int8 would give {report.all_int8_psnr_db:.1f} dB); "
         f"{report.output_bytes / 1e6:.1f} MB ({ratio:.0%} of {checkpoint.name}), "
         f"{report.seconds:.1f} s")
    for precision, units in report.plan.items():
        if units:
            info(f"  {precision}: {len(units)} layers: {', '.join(units)}")
    info(f"  int8 share of the compute per frame: {report.int8_compute_share:.0%}")
    if report.speed:
        measured = report.speed
        info(f"  generation: {measured['plan_fps']:.1f} frames/s = {measured['vs_bf16']:.2f}x "
             f"bf16 ({measured['bf16_fps']:.1f}), {measured['vs_fp32']:.2f}x fp32 "
             f"({measured['fp32_fps']:.1f}), measured now on this CPU")
        if measured["vs_bf16"] < 1.0:
            info("  no int8 speed-up over bf16 on this CPU: the file is kept for its size")
