"""`discriminator lipsync`: a face (photo or video) + a narration -> a lip-synced clip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from discriminator_cli.batch import BatchOutcome, Failure
from discriminator_cli.cli.options import DryRunOption, JsonOption, QuietOption
from discriminator_cli.cli.output import error, finish_batch, info, print_json
from discriminator_cli.cli.progress import RichProgress
from discriminator_cli.errors import BadInputError
from discriminator_cli.lipsync import DetectorName, Device, Precision
from discriminator_cli.runner import CommandRunner

if TYPE_CHECKING:  # the lip-sync modules import torch: only inside the command at run time
    from discriminator_cli.lipsync.engine import LipSyncEngine
    from discriminator_cli.lipsync.faces import FaceDetector
    from discriminator_cli.lipsync.pipeline import ClipResult, LipSyncOptions


def register(app: typer.Typer) -> None:
    app.command("lipsync")(lipsync)


def lipsync(
    audio: Annotated[Path, typer.Option(help="The narration (any format ffmpeg reads).")],
    checkpoint: Annotated[Path, typer.Option(help="wav2lip.pth / wav2lip_gan.pth, or a file "
                                             "from `discriminator quantize`.")],
    face: Annotated[list[Path] | None, typer.Option(help="A photo or video (repeatable: one "
                                                    "clip each).")] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", "--output", help="The clip "
                                                "(one --face only).")] = None,
    faces_dir: Annotated[Path | None, typer.Option(help="Every photo/video in this folder.")]
    = None,
    watch: Annotated[Path | None, typer.Option(help="Keep the model hot and turn each photo "
                                               "dropped in this folder into a clip, until "
                                               "Ctrl-C.")] = None,
    out_dir: Annotated[Path, typer.Option(help="Where clips go for several faces / --watch.")]
    = Path("clips"),
    precision: Annotated[Precision, typer.Option(help="auto: bf16 where the CPU has it, else "
                                                 "fp32.")] = "auto",
    device: Annotated[Device, typer.Option(help="Where the model runs.")] = "cpu",
    box: Annotated[str | None, typer.Option(help="Face box x1,y1,x2,y2 instead of "
                                            "detection, cropped as is (no --pads).")] = None,
    pads: Annotated[str, typer.Option(help="Padding top,bottom,left,right added to detected "
                                      "boxes.")] = "0,10,0,0",
    resize_factor: Annotated[int, typer.Option(min=1, help="Divide the frame size first.")]
    = 1,
    fps: Annotated[float | None, typer.Option(min=1, help="Output rate for photos (default "
                                              "25); videos keep theirs.")] = None,
    blend: Annotated[bool, typer.Option("--blend", help="Feathered mouth-region mask instead "
                                        "of the whole box.")] = False,
    smooth: Annotated[bool, typer.Option("--smooth/--no-smooth", help="Smooth video face "
                                         "boxes over 5 frames.")] = True,
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per model call.")] = 32,
    crf: Annotated[int, typer.Option(min=0, max=51, help="x264 quality of the clip (lower is "
                                     "better); 0 is lossless (libx264rgb, bit-exact frames, "
                                     "for comparison; few browsers play it).")] = 18,
    detector: Annotated[DetectorName, typer.Option(help="auto: S3FD if its weights are on "
                                                   "disk, else LBP.")] = "auto",
    detector_weights: Annotated[Path | None, typer.Option(help="S3FD weights "
                                                          "(s3fd-619a316812.pth).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Mel cache (default "
                                                   "$XDG_CACHE_HOME/discriminator).")] = None,
    max_clips: Annotated[int | None, typer.Option(min=1, help="--watch: stop after this many "
                                                  "clips.")] = None,
    sign_cert: Annotated[Path | None, typer.Option(help="Certificate chain (PEM: leaf, then its "
                                                   "CA) for the clips' C2PA manifest; default: "
                                                   "signing.toml, else a local identity.")]
    = None,
    sign_key: Annotated[Path | None, typer.Option(help="The --sign-cert leaf's private key "
                                                  "(PEM).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing clips.")] = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Lip-sync a face to a narration with Wav2Lip (clips are marked synthetic and signed)."""
    from discriminator_cli.lipsync import lipsync_imports
    from discriminator_cli.provenance import provenance_imports

    with lipsync_imports("discriminator lipsync"):
        from discriminator_cli.lipsync.batch import faces_in, lipsync_many, output_for
        from discriminator_cli.lipsync.engine import load_engine, process_cores
        from discriminator_cli.lipsync.faces import make_detector, parse_box, parse_pads
        from discriminator_cli.lipsync.pipeline import (
            LipSyncOptions,
            check_clip_inputs,
            lipsync_clip,
            print_clip_commands,
        )

    faces = list(face or [])
    if faces_dir is not None:
        faces += faces_in(faces_dir)
    modes = sum([bool(faces), watch is not None])
    if modes != 1:
        raise BadInputError("give --face (or --faces-dir) or --watch, not both or neither",
                            hint="e.g. --face viewer.jpg -o clip.mp4")
    if output is not None and len(faces) != 1:
        raise BadInputError("-o names one clip but not exactly one face was given",
                            hint="use --out-dir for several faces")
    if len(faces) == 1 and output is None and faces_dir is None:
        raise BadInputError("no output given", hint="add -o OUT.mp4")
    if not audio.is_file():
        raise BadInputError("audio file not found", path=audio, hint="check the --audio path")
    if output is not None:  # before the model loads: a wrong path should fail in no time
        check_clip_inputs(faces[0], audio, output, force)

    with provenance_imports("discriminator lipsync"):
        from discriminator_cli.provenance.identity import resolve_identity
    # Before the model loads: a bad certificate fails in milliseconds. A dry run makes no
    # local identity (it writes nothing) but still checks a given one.
    signing = resolve_identity(sign_cert, sign_key) \
        if not dry_run or sign_cert or sign_key else None
    options = LipSyncOptions(fps=fps, pads=parse_pads(pads), resize_factor=resize_factor,
                             blend=blend, smooth=smooth, batch_size=batch_size, force=force,
                             cache_dir=cache_dir, signing=signing, crf=crf)
    runner = CommandRunner(dry_run=dry_run, echo=print)
    if dry_run and watch is None:
        # A dry run lists the ffmpeg commands; it loads no model and writes nothing.
        if not checkpoint.is_file():
            raise BadInputError("checkpoint not found", path=checkpoint, hint="check the path")
        for face_path in faces:
            print_clip_commands(face_path, audio, output or output_for(face_path, out_dir),
                                options, runner)
        return
    chosen = make_detector(detector, box=parse_box(box) if box else None,
                           weights=detector_weights, device=device)
    engine = load_engine(checkpoint, precision=precision, device=device, batch_size=batch_size,
                         cores=process_cores())
    if not (quiet or json_output):
        lanes = f", {engine.lanes} lanes" if engine.lanes > 1 else ""
        info(f"model: {checkpoint.name} ({engine.precision} on {engine.device}{lanes}); face "
             f"detector: {chosen.name}")
        if signing is not None:
            info(f"signing: {signing.describe()}")

    if watch is not None:
        _watch(engine, watch, audio, out_dir, chosen, options, runner,
               json_output=json_output, quiet=quiet, max_clips=max_clips)
        return

    with RichProgress(enabled=not (quiet or json_output or dry_run)) as bars:
        if output is not None:
            outcome: BatchOutcome[ClipResult] = BatchOutcome(
                [lipsync_clip(engine, faces[0], audio, output, chosen, options,
                              runner=runner, progress=bars)])
        else:
            outcome = lipsync_many(engine, faces, audio, out_dir, chosen, options,
                                   runner=runner, progress=bars)
    if json_output:
        print_json({"clips": [r.as_dict() for r in outcome.results],
                    "failures": [f.as_dict() for f in outcome.failures]})
    elif not dry_run:
        for result in outcome.results:
            _report_clip(result, quiet=quiet)
    finish_batch(outcome, noun="faces", json_output=json_output)


def _report_clip(result: ClipResult, *, quiet: bool) -> None:
    if quiet:
        print(result.output)
        return
    info(f"{result.output}: {result.frames} frames at {result.fps:g} fps, "
         f"{result.width}x{result.height}, {result.precision}, "
         f"{result.timings.get('total', 0):.1f} s (mel "
         f"{'cached' if result.mel_cache_hit else 'computed'}); marked synthetic, signed "
         f"(C2PA), provenance in {result.sidecar.name}")


def _watch(engine: LipSyncEngine, folder: Path, audio: Path, out_dir: Path,
           detector: FaceDetector, options: LipSyncOptions, runner: CommandRunner, *,
           json_output: bool, quiet: bool, max_clips: int | None) -> None:
    from discriminator_cli.lipsync.batch import watch_folder

    def on_clip(result: ClipResult) -> None:
        if json_output:
            print(json.dumps(result.as_dict()), flush=True)
        else:
            _report_clip(result, quiet=quiet)

    def on_failure(failure: Failure) -> None:
        if json_output:
            print(json.dumps(failure.as_dict()), flush=True)
        error(failure.error.one_line())

    if not (quiet or json_output):
        info(f"watching {folder} for photos; clips go to {out_dir}; Ctrl-C to stop")
    try:
        made = watch_folder(engine, folder, audio, out_dir, detector, options,
                            on_clip=on_clip, on_failure=on_failure, max_clips=max_clips,
                            runner=runner)
    except KeyboardInterrupt:
        info("stopped", quiet=quiet or json_output)
        return
    info(f"made {made} clip{'' if made == 1 else 's'}", quiet=quiet or json_output)
