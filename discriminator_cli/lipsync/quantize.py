"""`discriminator quantize`: calibrate static int8 on the user's narration and face, check it.

The int8 model's activation ranges come from the user's own mel windows and face, so they fit
what it will run on. Every other window is used for calibration; the rest are held out and
the int8 output is compared with fp32 there (PSNR over 8-bit faces). Below the threshold the
file is not written unless forced: an int8 model that visibly changes the face is worse than
a slower bf16 one.
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
from discriminator_cli.errors import BadInputError, DiscriminatorError
from discriminator_cli.lipsync.audio import mel_windows
from discriminator_cli.lipsync.checkpoint import load_wav2lip, read_checkpoint
from discriminator_cli.lipsync.engine import faces_to_input, output_to_faces
from discriminator_cli.lipsync.int8 import Int8Wav2Lip, calibrate, export_state, quiet_quantized
from discriminator_cli.lipsync.mel_cache import get_or_compute_mel
from discriminator_cli.lipsync.precision import fold_batchnorm, psnr
from discriminator_cli.progress import NullProgress, ProgressSink
from discriminator_cli.publish import staged_file
from discriminator_cli.runner import CommandRunner

DEFAULT_THRESHOLD_DB = 35.0
DEFAULT_CALIBRATION_FRAMES = 32
DEFAULT_HELDOUT_FRAMES = 16
CALIBRATION_FPS = 25.0


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

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["psnr_db"] = None if math.isinf(self.psnr_db) else round(self.psnr_db, 2)
        return data


class QuantizationRefusedError(DiscriminatorError):
    """int8 is too far from fp32 on the held-out frames; nothing was written."""

    exit_code = 1

    def __init__(self, report: QuantizeReport):
        super().__init__(
            f"int8 PSNR vs fp32 on {report.heldout_frames} held-out frames is "
            f"{report.psnr_db:.1f} dB, below the {report.threshold_db:g} dB threshold; "
            "nothing written", path=report.output,
            hint="run `discriminator lipsync --precision bf16` on the fp32 checkpoint "
                 "instead, or rerun `discriminator quantize` with --force (or a lower "
                 "--threshold) to write it anyway")
        self.report = report


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


def quantize_checkpoint(checkpoint_path: Path | str, output: Path | str, *,
                        mels: np.ndarray, face: np.ndarray,
                        threshold_db: float = DEFAULT_THRESHOLD_DB, force: bool = False,
                        calibration_frames: int = DEFAULT_CALIBRATION_FRAMES,
                        heldout_frames: int = DEFAULT_HELDOUT_FRAMES,
                        calibration_info: dict[str, Any] | None = None,
                        progress: ProgressSink | None = None) -> QuantizeReport:
    """Quantise an fp32 checkpoint; write `output` when PSNR >= threshold (or force).

    mels: (N, 80, 16) windows of the user's narration; face: (96, 96, 3) uint8 BGR crop.
    Raises QuantizationRefusedError (carrying the report) when refused.
    """
    started = time.monotonic()
    checkpoint_path, output = Path(checkpoint_path), Path(output)
    if output.exists() and not force:
        raise BadInputError("output file already exists", path=output,
                            hint="pass --force to replace it, or choose another -o")
    checkpoint = read_checkpoint(checkpoint_path)
    model = fold_batchnorm(load_wav2lip(checkpoint_path, checkpoint))
    cal_mels, held_mels = split_windows(np.asarray(mels, np.float32), calibration_frames,
                                        heldout_frames)
    face_input = faces_to_input(np.ascontiguousarray(face)[None])
    with torch.inference_mode():
        ranges = calibrate(model, torch.from_numpy(cal_mels).unsqueeze(1),
                           face_input.expand(len(cal_mels), -1, -1, -1),
                           progress=progress or NullProgress())
    source_sha = file_sha256(checkpoint_path)
    meta = {"source_sha256": source_sha, "source_name": checkpoint_path.name,
            "calibration_frames": len(cal_mels), "heldout_frames": len(held_mels),
            "threshold_db": threshold_db, "tool_version": __version__,
            "torch_version": str(torch.__version__), **(calibration_info or {})}
    state = export_state(model, ranges, meta)
    quantised = Int8Wav2Lip(state).eval()
    score = _heldout_psnr(model, quantised, held_mels, face_input)
    state["meta"]["psnr_db"] = score
    state["meta"]["forced"] = bool(force and score < threshold_db)
    report = QuantizeReport(str(output), False, score, threshold_db, bool(force),
                            len(cal_mels), len(held_mels), str(checkpoint_path), source_sha,
                            checkpoint_path.stat().st_size, 0, 0.0, calibration_info or {})
    if score < threshold_db and not force:
        report.seconds = round(time.monotonic() - started, 2)
        raise QuantizationRefusedError(report)
    with staged_file(output, force=True) as staging:
        torch.save(state, staging)
    report.written = True
    report.output_bytes = output.stat().st_size
    report.seconds = round(time.monotonic() - started, 2)
    return report


def _heldout_psnr(model: torch.nn.Module, quantised: Int8Wav2Lip, mels: np.ndarray,
                  face_input: torch.Tensor) -> float:
    mel_tensor = torch.from_numpy(mels).unsqueeze(1)
    faces = face_input.expand(len(mels), -1, -1, -1).contiguous()
    with torch.inference_mode(), quiet_quantized():
        reference = output_to_faces(model(mel_tensor, faces))
        candidate = output_to_faces(quantised(mel_tensor, faces))
    return psnr(reference, candidate)


def calibration_inputs(audio_path: Path | str, face_path: Path | str, *,
                       box: tuple[int, int, int, int] | None = None,
                       cache_dir: Path | str | None = None,
                       runner: CommandRunner | None = None
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The user's narration (through the mel cache) and face -> mel windows, face, provenance."""
    from discriminator_cli.lipsync.faces import FixedBox
    from discriminator_cli.lipsync.media_io import check_photo_header
    from discriminator_cli.lipsync.pipeline import find_face_box

    if not Path(face_path).is_file():
        raise BadInputError("face file not found", path=face_path,
                            hint="check the --calibration-face path")
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
    return mel_windows(entry.load(), CALIBRATION_FPS), face, info
