"""Finding the face: S3FD (face-alignment) when its weights are on disk, else scikit-image's
bundled LBP frontal-face cascade, or a box the user gives. Boxes are padded and smoothed the
way Wav2Lip's inference does: a detected box is padded, a given box is used as is
(`face_box` decides, for lipsync and quantize alike).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from discriminator_cli.errors import BadInputError
from discriminator_cli.lipsync import DETECTORS

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2/y2 exclusive
DEFAULT_PADS = (0, 10, 0, 0)     # top, bottom, left, right: Wav2Lip's default, keeps the chin
SMOOTHING_FRAMES = 5             # inference.py's moving mean over the next 5 boxes
S3FD_WEIGHTS_NAME = "s3fd-619a316812.pth"
# The LBP cascade is run on at most this many pixels on the long side, then scaled back:
# webcam photos are large and the cascade's cost grows with the area.
LBP_MAX_SIDE = 640
MIN_FACE_PIXELS = 8  # a box narrower than this holds no usable face
NO_FACE_HINT = "pass --box x1,y1,x2,y2 (pixels) or use a photo with a frontal, unobstructed face"


class FaceDetector(Protocol):
    name: str

    def detect(self, frame_bgr: np.ndarray) -> Box | None:
        """The most prominent face in the frame, or None."""


@dataclass
class FixedBox:
    """A box the user gives: used as is (never padded, see face_box)."""

    box: Box
    name: str = "box"
    option: str = "--box"  # named in the error, so each command names its own option

    def detect(self, frame_bgr: np.ndarray) -> Box | None:
        height, width = frame_bgr.shape[:2]
        x1, y1, x2, y2 = self.box
        if x2 > width or y2 > height:
            raise BadInputError(f"{self.option} {x1},{y1},{x2},{y2} is outside the "
                                f"{width}x{height} frame", hint="give a box inside the picture")
        return self.box


class LbpDetector:
    """scikit-image's LBP frontal-face cascade (ships inside the wheel; works offline)."""

    name = "lbp"

    def __init__(self) -> None:
        from skimage import data, feature

        self._cascade = feature.Cascade(data.lbp_frontal_face_cascade_filename())

    def detect(self, frame_bgr: np.ndarray) -> Box | None:
        height, width = frame_bgr.shape[:2]
        scale = min(1.0, LBP_MAX_SIDE / max(height, width))
        gray = _gray(frame_bgr)
        if scale < 1.0:
            gray = _resize_gray(gray, round(width * scale), round(height * scale))
        side = min(gray.shape)
        found = self._cascade.detect_multi_scale(
            img=gray, scale_factor=1.2, step_ratio=1, min_size=(max(24, side // 12),) * 2,
            max_size=(side, side))
        if not found:
            return None
        best = max(found, key=lambda d: d["width"] * d["height"])
        x1, y1 = best["c"] / scale, best["r"] / scale
        return (round(x1), round(y1), round(x1 + best["width"] / scale),
                round(y1 + best["height"] / scale))


class S3fdDetector:
    """face-alignment's S3FD detector, given a local weights file (nothing is downloaded)."""

    name = "s3fd"

    def __init__(self, weights: Path, device: str = "cpu") -> None:
        try:
            from face_alignment.detection.sfd.sfd_detector import SFDDetector
        except ImportError as exc:
            from discriminator_cli.lipsync import missing_extra

            raise missing_extra("the S3FD face detector", exc) from exc
        self._detector = SFDDetector(device=device, path_to_detector=str(weights))

    def detect(self, frame_bgr: np.ndarray) -> Box | None:
        # face-alignment takes RGB (it flips to BGR itself before subtracting its means).
        found = self._detector.detect_from_image(frame_bgr[:, :, ::-1].copy())
        height, width = frame_bgr.shape[:2]
        # S3FD's regressed boxes may reach past the frame; a box wholly outside is no face.
        boxes = [clipped for d in (found if found is not None else [])
                 if (clipped := clip_box((round(d[0]), round(d[1]), round(d[2]), round(d[3])),
                                         width, height)) is not None]
        if not boxes:
            return None
        return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def s3fd_weights_in_hub_cache() -> Path | None:
    """face-alignment's own download location, if a previous online run left the file."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    candidate = Path(torch_home) / "hub" / "checkpoints" / S3FD_WEIGHTS_NAME
    return candidate if candidate.is_file() else None


def make_detector(kind: str = "auto", *, box: Box | None = None,
                  weights: Path | None = None, device: str = "cpu") -> FaceDetector:
    """auto: --box if given, S3FD if its weights are on disk, else the LBP cascade."""
    if box is not None:
        return FixedBox(box)
    if kind not in DETECTORS:
        raise BadInputError(f"unknown detector {kind!r}", hint=f"use {', '.join(DETECTORS)}")
    if weights is not None and not weights.is_file():
        raise BadInputError("detector weights not found", path=weights,
                            hint=f"point --detector-weights at {S3FD_WEIGHTS_NAME}")
    weights = weights or s3fd_weights_in_hub_cache()
    if kind == "s3fd" and weights is None:
        raise BadInputError("S3FD needs its weights file and none is on disk",
                            hint=f"pass --detector-weights path/to/{S3FD_WEIGHTS_NAME}, or use "
                                 "--detector lbp")
    if kind in ("auto", "s3fd") and weights is not None:
        return S3fdDetector(weights, device)
    return LbpDetector()


# ASCII digits only, and few of them: str.isdigit() also takes "²" and "٣", and int() of a
# 5000-digit string raises (a service takes boxes from anyone).
_PIXELS = re.compile(r"-?[0-9]{1,6}")


def _four_ints(text: str) -> tuple[int, int, int, int] | None:
    parts = text.replace(" ", "").split(",")
    if len(parts) != 4 or not all(_PIXELS.fullmatch(p) for p in parts):
        return None
    first, second, third, fourth = (int(p) for p in parts)
    return first, second, third, fourth


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def parse_box(text: str) -> Box:
    box = _four_ints(text)
    if box is None:
        raise BadInputError(f"--box {_shown(text)} is not x1,y1,x2,y2",
                            hint="e.g. --box 175,70,268,173 (whole pixels)")
    x1, y1, x2, y2 = box
    if x1 < 0 or y1 < 0 or x2 <= x1 or y2 <= y1:
        raise BadInputError(f"--box {_shown(text)} is empty or negative",
                            hint="x2 must exceed x1 and y2 exceed y1, all >= 0")
    return x1, y1, x2, y2


def parse_pads(text: str) -> tuple[int, int, int, int]:
    pads = _four_ints(text)
    if pads is None:
        raise BadInputError(f"--pads {_shown(text)} is not top,bottom,left,right",
                            hint="e.g. --pads 0,10,0,0")
    return pads


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """The part of the box inside the frame, or None when fewer than MIN_FACE_PIXELS remain
    on a side (too little to crop a face from)."""
    x1, y1, x2, y2 = max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3])
    if x2 - x1 < MIN_FACE_PIXELS or y2 - y1 < MIN_FACE_PIXELS:
        return None
    return x1, y1, x2, y2


def pad_box(box: Box, pads: tuple[int, int, int, int], width: int, height: int) -> Box:
    """Grow the box by the pads (top, bottom, left, right), clipped to the frame."""
    top, bottom, left, right = pads
    x1, y1, x2, y2 = box
    return (max(0, x1 - left), max(0, y1 - top), min(width, x2 + right),
            min(height, y2 + bottom))


def face_box(detector: FaceDetector, frame_bgr: np.ndarray,
             pads: tuple[int, int, int, int] = DEFAULT_PADS) -> Box | None:
    """The box the face crop comes from, or None when no face is found.

    As inference.py: a box the user gives (--box, --calibration-box) is the crop, exactly; only
    a detected box is grown by the pads (which keep the chin) and clipped to the frame.
    """
    found = detector.detect(frame_bgr)
    if found is None or isinstance(detector, FixedBox):
        return found
    return pad_box(found, pads, frame_bgr.shape[1], frame_bgr.shape[0])


def smooth_boxes(boxes: list[Box], window: int = SMOOTHING_FRAMES) -> list[Box]:
    """Each box becomes the mean of itself and the next window-1 boxes (the last boxes use the
    final full window), as Wav2Lip's inference smooths detections over a video."""
    if len(boxes) <= 1:
        return list(boxes)
    array = np.asarray(boxes, dtype=np.float64)
    count = len(array)
    span = min(window, count)
    smoothed = []
    for index in range(count):
        start = min(index, count - span)
        smoothed.append(tuple(int(v) for v in array[start:start + span].mean(axis=0)))
    return smoothed  # type: ignore[return-value]


def no_face_error(path: Path, frame_index: int | None) -> BadInputError:
    where = f"frame {frame_index}" if frame_index is not None else "the photo"
    return BadInputError(f"no face found in {where}", path=path, hint=NO_FACE_HINT)


def _gray(frame_bgr: np.ndarray) -> np.ndarray:
    weights = np.array([0.114, 0.587, 0.299], dtype=np.float32)  # BGR luma (ITU-R BT.601)
    return (frame_bgr.astype(np.float32) @ weights) / 255.0


def _resize_gray(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray((gray * 255).astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR),
                      dtype=np.float32) / 255.0
