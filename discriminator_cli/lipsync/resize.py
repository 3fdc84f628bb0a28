"""cv2.resize(image, (width, height)) with its default INTER_LINEAR, bit for bit, in numpy.

inference.py crops the face and pastes the generated one back with cv2.resize. Pillow's
bilinear antialiases when it shrinks (it widens the filter to the scale), so its 96x96 crop
differs from cv2's in about a third of the pixels; the model then sees another face. This
module reproduces OpenCV's uint8 fixed-point arithmetic instead of depending on a second cv2
wheel (face-alignment already pulls `opencv-python`; `opencv-python-headless` would install
into the same `cv2/` folder and the two wheels overwrite each other):

- pixel centres: source x = (dx + 0.5) * (src / dst) - 0.5, computed in float32;
- horizontally the position is clamped (weight 1 on the edge pixel); vertically it is not:
  the row indices are clamped but the weights are kept, as OpenCV does;
- weights are rounded to 11 bits (x2048), the horizontal pass is exact in integers, and the
  vertical pass rounds as OpenCV's SIMD kernel does: ((r0 >> 4) * b0 >> 16) +
  ((r1 >> 4) * b1 >> 16), then (+2) >> 2, saturated to [0, 255].

An exact 2x shrink (which OpenCV hands to INTER_AREA) gives the same numbers: every weight is
1/2 and the sum of four pixels is rounded the same way. tests/test_lipsync_resize.py checks
all of this against cv2 wherever cv2 is importable.
"""

from __future__ import annotations

import numpy as np

_COEF_SCALE = np.float32(2048.0)  # OpenCV's INTER_RESIZE_COEF_SCALE (11 fractional bits)


def _taps(src: int, dst: int, *, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray, np.ndarray]:
    """(first index, second index, first weight, second weight) for each output position."""
    scale = 1.0 / (dst / src)  # OpenCV inverts the inverse scale; the float rounding matters
    position = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = (position - first.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        low = first < 0
        fraction[low], first[low] = 0.0, 0
        high = first >= src - 1
        fraction[high], first[high] = 0.0, src - 1
    weight0 = np.rint((np.float32(1.0) - fraction) * _COEF_SCALE).astype(np.int32)
    weight1 = np.rint(fraction * _COEF_SCALE).astype(np.int32)
    return (np.clip(first, 0, src - 1), np.clip(first + 1, 0, src - 1), weight0, weight1)


def resize_linear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 -> (height, width[, C]) uint8, as cv2.resize INTER_LINEAR."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 (H, W[, C]) image, got {image.dtype} {image.shape}")
    if width < 1 or height < 1 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"cannot resize {image.shape[:2]} to {(height, width)}")
    if image.shape[:2] == (height, width):
        return image.copy()
    planar = image if image.ndim == 3 else image[:, :, None]
    x0, x1, a0, a1 = _taps(planar.shape[1], width, clamp_weights=True)
    y0, y1, b0, b1 = _taps(planar.shape[0], height, clamp_weights=False)
    source: np.ndarray = planar.astype(np.int32)
    # Horizontal pass, exact: at most 255 * 2048 per value.
    rows = source[:, x0] * a0[None, :, None] + source[:, x1] * a1[None, :, None]
    rows >>= 4
    out = (rows[y0] * b0[:, None, None] >> 16) + (rows[y1] * b1[:, None, None] >> 16)
    out = np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)
    return out if image.ndim == 3 else out[:, :, 0]
