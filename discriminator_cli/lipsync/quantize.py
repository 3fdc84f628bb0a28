"""`discriminator quantize`: an accuracy-aware int8 model calibrated on the user's narration
and face.

Activation ranges come from the user's own mel windows and face (histograms, MSE-optimal
clipping: observers.py). Each conv unit's sensitivity is measured on the calibration windows,
and the largest int8 plan that keeps the output within the threshold is chosen; the other units
stay bf16 (where the CPU runs bf16 natively) or fp32 (plan.py). Every other window is used for
calibration, the rest are held out: the plan's PSNR against fp32 is measured there (8-bit
faces), and its generation speed against bf16 and fp32 in the same run. When no plan keeps any
unit in int8 within the threshold the file is not written unless forced (then every unit is
int8, as asked): an int8 model that visibly changes the face is worse than a slower one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from discriminator_cli import __version__
from discriminator_cli.cache import file_sha256
from discriminator_cli.errors import BadInputError, QuantizationRefusedError
from discriminator_cli.lipsync.audio import mel_windows
from discriminator_cli.lipsync.checkpoint import load_wav2lip, read_checkpoint
from discriminator_cli.lipsync.engine import faces_to_input, output_to_faces
from discriminator_cli.lipsync.int8 import unit_names
from discriminator_cli.lipsync.mel_cache import get_or_compute_mel
from discriminator_cli.lipsync.observers import observe
from discriminator_cli.lipsync.plan import (
    SEARCH_MARGIN_DB,
    PlanContext,
    generation_speed,
    run,
    search,
    sensitivities,
    unit_macs,
)
from discriminator_cli.lipsync.precision import cpu_has_native_bf16, fold_batchnorm, psnr, to_bf16
from discriminator_cli.progress import ProgressSink
from discriminator_cli.publish import staged_file
from discriminator_cli.runner import CommandRunner

DEFAULT_THRESHOLD_DB = 40.0
DEFAULT_CALIBRATION_FRAMES = 32
DEFAULT_HELDOUT_FRAMES = 16
CALIBRATION_FPS = 25.0
SEARCH_FRAMES = 4       # at most this many calibration windows (a quarter of them) drive the
                        # per-unit sensitivity and the plan search: 50 runs of the model each
SPEED_FRAMES = 32       # frames per timed generation run
FALLBACKS = ("auto", "bf16", "fp32")


@dataclass
class QuantizeReport:
    output: str
    written: bool
    psnr_db: float
    threshold_db: float
    forced: bool
    calibration_frames: int
    heldout_frames: int
    source_checkpoint: str
    source_sha256: str
    source_bytes: int
    output_bytes: int
    seconds: float
    calibration: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, list[str]] = field(default_factory=dict)   # precision -> units
    int8_compute_share: float = 0.0       # of the multiply-accumulates per generated frame
    all_int8_psnr_db: float = 0.0         # the same held-out frames with every unit in int8
    speed: dict[str, float] = field(default_factory=dict)      # frames/s and ratios

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("psnr_db", "all_int8_psnr_db"):
            value = getattr(self, key)
            data[key] = None if math.isinf(value) else round(value, 2)
        data["speed"] = {k: round(v, 3) for k, v in self.speed.items()}
        return data


def refusal(report: QuantizeReport) -> QuantizationRefusedError:
    return QuantizationRefusedError(
        f"int8 PSNR vs fp32 on {report.heldout_frames} held-out frames is "
        f"{report.psnr_db:.1f} dB, below the {report.threshold_db:g} dB threshold, and no "
        "mixed plan keeps a layer in int8 above it; nothing written", path=report.output,
        report=report,
        hint="run `discriminator lipsync --precision bf16` on the fp32 checkpoint "
             "instead, or rerun `discriminator quantize` with --force (or a lower "
             "--threshold) to write it anyway")


# Fewer windows than this leave a handful of held-out frames: a PSNR over them says nothing.
MIN_CALIBRATION_WINDOWS = 25


def check_quantize_output(output: Path, force: bool) -> None:
    """Before calibrating: the output can be written (a folder, an existing file without
    --force, or a folder that cannot be written fail here, not after minutes of work)."""
    from discriminator_cli.publish import check_file_destination, check_writable_parent

    check_file_destination(output, force=force, what="the int8 file",
                           example="wav2lip_int8.pt")
    check_writable_parent(output, what="int8 file", flag="-o")


def load_face_image(image_path: Path | str, *, box: tuple[int, int, int, int] | None = None,
                    runner: CommandRunner | None = None) -> np.ndarray:
    """A photo (or a video's first frame) -> (96, 96, 3) uint8 BGR: the box if given, else
    the whole picture (a face crop), resized as the lip-sync pipeline resizes faces."""
    from discriminator_cli.lipsync.pipeline import crop_face, first_frame

    image_path = Path(image_path)
    frame = first_frame(image_path, runner or CommandRunner())
    height, width = frame.shape[:2]
    if box is not None and (box[2] > width or box[3] > height):
        raise BadInputError(f"face box {box} is outside the {width}x{height} image",
                            path=image_path, hint="give a box inside the picture")
    return crop_face(frame, box or (0, 0, width, height))


def split_windows(mels: np.ndarray, calibration_frames: int,
                  heldout_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved split over the whole narration: even windows calibrate, odd ones test."""
    if len(mels) < 2:
        raise BadInputError("the calibration audio is too short (needs at least 2 frames)")
    calibration = mels[0::2]
    heldout = mels[1::2]
    # Spread the chosen windows over the whole narration rather than its first seconds.
    pick_cal = np.linspace(0, len(calibration) - 1, min(calibration_frames, len(calibration)))
    pick_held = np.linspace(0, len(heldout) - 1, min(heldout_frames, len(heldout)))
    return (calibration[np.round(pick_cal).astype(int)],
            heldout[np.round(pick_held).astype(int)])


def resolve_fallback(fallback: str) -> str:
    """The precision of units that stay float: "auto" tries bf16 where the CPU runs it
    natively (quantize_checkpoint drops to fp32 when bf16 alone misses the threshold)."""
    if fallback not in FALLBACKS:
        raise BadInputError(f"unknown fallback precision {fallback!r}",
                            hint=f"use one of {', '.join(FALLBACKS)}")
    if fallback != "auto":
        return fallback
    return "bf16" if cpu_has_native_bf16() else "fp32"


def quantize_checkpoint(checkpoint_path: Path | str, output: Path | str, *,
                        mels: np.ndarray, face: np.ndarray,
                        threshold_db: float = DEFAULT_THRESHOLD_DB, force: bool = False,
                        calibration_frames: int = DEFAULT_CALIBRATION_FRAMES,
                        heldout_frames: int = DEFAULT_HELDOUT_FRAMES,
                        calibration_info: dict[str, Any] | None = None,
                        fallback: str = "auto", measure_speed: bool = True,
                        search_frames: int | None = None, speed_frames: int = SPEED_FRAMES,
                        progress: ProgressSink | None = None) -> QuantizeReport:
    """Quantise an fp32 checkpoint with the largest int8 plan that meets the threshold.

    mels: (N, 80, 16) windows of the user's narration; face: (96, 96, 3) uint8 BGR crop.
    Raises QuantizationRefusedError (carrying the report) when no plan keeps a unit in int8
    within the threshold, unless forced.
    """
    started = time.monotonic()
    checkpoint_path, output = Path(checkpoint_path), Path(output)
    check_quantize_output(output, force)
    requested, fallback = fallback, resolve_fallback(fallback)
    checkpoint = read_checkpoint(checkpoint_path)
    model = fold_batchnorm(load_wav2lip(checkpoint_path, checkpoint)).eval()
    cal_mels, held_mels = split_windows(np.asarray(mels, np.float32), calibration_frames,
                                        heldout_frames)
    cal = torch.from_numpy(cal_mels).unsqueeze(1)
    held = torch.from_numpy(held_mels).unsqueeze(1)
    face_input = faces_to_input(np.ascontiguousarray(face)[None])
    scales = observe(model, cal, face_input.expand(len(cal), -1, -1, -1), progress=progress)
    search_frames = search_frames or max(1, min(SEARCH_FRAMES, len(cal) // 4))
    search_mels = cal[np.round(np.linspace(0, len(cal) - 1, min(search_frames, len(cal))))
                      .astype(int)]
    context = PlanContext(model, scales, fallback, search_mels, face_input,
                          run(model, search_mels, face_input))
    macs = unit_macs(model, cal, face_input)
    names = unit_names(model)
    if requested == "auto" and fallback == "bf16" and \
            context.score(set()) < threshold_db + SEARCH_MARGIN_DB:
        # bf16 alone already misses the threshold (trained weights can): keep fp32 instead.
        fallback = context.fallback = "fp32"
    if context.score(set(names)) >= threshold_db + SEARCH_MARGIN_DB:
        errors: dict[str, float] = {}  # every unit int8 already meets it: nothing to choose
        order, count = names, len(names)
    else:
        errors = sensitivities(context, progress)
        order = sorted(names, key=lambda name: errors[name] / macs[name])
        count, _ = search(context, order, threshold_db, progress)

    source_sha = file_sha256(checkpoint_path)
    meta = {"source_sha256": source_sha, "source_name": checkpoint_path.name,
            "calibration_frames": len(cal_mels), "heldout_frames": len(held_mels),
            "threshold_db": threshold_db, "tool_version": __version__,
            "torch_version": str(torch.__version__), "observer": "histogram-mse",
            "fallback": fallback, **(calibration_info or {}),
            "sensitivity_mse": {name: round(errors[name], 6) for name in order if errors}}
    reference = output_to_faces(run(model, held, face_input))

    def heldout_psnr(units: set[str]) -> tuple[dict[str, Any], Any, float]:
        state, network = context.build(units, meta)
        return state, network, psnr(reference, output_to_faces(run(network, held, face_input)))

    all_state, all_network, all_int8 = heldout_psnr(set(order))
    while True:  # the search ran on calibration windows: verify on the held-out ones
        state, network, score = heldout_psnr(set(order[:count]))
        if count == 0 or score >= threshold_db:
            break
        count = max(0, count - max(1, count // 8))
    refused = count == 0
    if refused:  # what --force writes: every unit in int8, as asked
        state, network, score = all_state, all_network, all_int8
    chosen = set(order[:count]) if not refused else set(order)
    plan = {precision: [n for n in unit_names(model) if (precision == "int8") == (n in chosen)]
            for precision in ("int8", fallback)}
    share = sum(macs[n] for n in chosen) / sum(macs.values())
    report = QuantizeReport(str(output), False, score, threshold_db, bool(force),
                            len(cal_mels), len(held_mels), str(checkpoint_path), source_sha,
                            checkpoint_path.stat().st_size, 0, 0.0, calibration_info or {},
                            plan=plan, int8_compute_share=share, all_int8_psnr_db=all_int8)
    if refused and not force:
        report.seconds = round(time.monotonic() - started, 2)
        raise refusal(report)
    if measure_speed:
        report.speed = _speed(model, network, held, face_input, speed_frames)
    state["meta"].update({"psnr_db": score, "all_int8_psnr_db": all_int8,
                          "forced": bool(force and refused), "int8_compute_share": share,
                          "plan_counts": {k: len(v) for k, v in plan.items()},
                          "speed": report.speed})
    with staged_file(output, force=True) as staging:
        torch.save(state, staging)
    report.written = True
    report.output_bytes = output.stat().st_size
    report.seconds = round(time.monotonic() - started, 2)
    return report


def _speed(model: torch.nn.Module, network: torch.nn.Module, held: torch.Tensor,
           face_input: torch.Tensor, frames: int) -> dict[str, float]:
    """The plan's generation speed against bf16 and fp32 models of the same checkpoint."""
    import copy

    mels = held.repeat((frames + len(held) - 1) // len(held), 1, 1, 1)[:frames]
    bf16 = _Bf16Inputs(to_bf16(copy.deepcopy(model)))
    fps = generation_speed({"plan": network, "bf16": bf16, "fp32": model}, mels, face_input)
    return {"plan_fps": fps["plan"], "bf16_fps": fps["bf16"], "fp32_fps": fps["fp32"],
            "vs_bf16": fps["plan"] / fps["bf16"], "vs_fp32": fps["plan"] / fps["fp32"]}


class _Bf16Inputs(torch.nn.Module):
    """A to_bf16() model fed as the engine feeds it (bf16, channels_last inputs)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    @staticmethod
    def _cast(x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)

    def encode_face(self, faces: torch.Tensor) -> list[torch.Tensor]:
        return self.model.encode_face(self._cast(faces))

    def encode_audio(self, mels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_audio(self._cast(mels))

    def decode(self, audio: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        return self.model.decode(audio, features)


def calibration_inputs(audio_path: Path | str, face_path: Path | str, *,
                       box: tuple[int, int, int, int] | None = None,
                       cache_dir: Path | str | None = None,
                       runner: CommandRunner | None = None
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The user's narration (through the mel cache) and face -> mel windows, face, provenance."""
    from discriminator_cli.lipsync.faces import FixedBox
    from discriminator_cli.lipsync.media_io import check_photo_header
    from discriminator_cli.lipsync.pipeline import find_face_box, missing_face

    if not Path(face_path).is_file():
        raise missing_face(Path(face_path), "check the --calibration-face path")
    check_photo_header(Path(face_path))  # before the narration is analysed
    entry = get_or_compute_mel(audio_path, cache_dir, fps=CALIBRATION_FPS, runner=runner)
    # The crop lipsync would make (faces.face_box decides for both: a given box as is, a
    # detected one padded). A photo that is already a face crop (no face found) is used whole.
    box = find_face_box(Path(face_path), runner=runner or CommandRunner(),
                        detector=FixedBox(box, option="--calibration-box") if box else None)
    face = load_face_image(face_path, box=box, runner=runner)
    info = {"audio": str(audio_path), "audio_sha256": entry.audio_sha256,
            "face": str(face_path), "face_sha256": file_sha256(Path(face_path)),
            "face_box": list(box) if box else None}
    windows = mel_windows(entry.load(), CALIBRATION_FPS)
    if len(windows) < MIN_CALIBRATION_WINDOWS:
        least = MIN_CALIBRATION_WINDOWS / CALIBRATION_FPS
        raise BadInputError(f"too short to calibrate on: {len(windows)} mel window(s), "
                            f"{MIN_CALIBRATION_WINDOWS} needed", path=audio_path,
                            hint=f"calibrate on at least {least:g} s of speech (the narration "
                                 "itself is best)")
    return windows, face, info
