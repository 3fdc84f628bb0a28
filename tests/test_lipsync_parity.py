"""Parity with the original inference.py: cv2's INTER_LINEAR resize bit for bit, a given box
used as is, and whole frames equal to the reference frames the original code wrote.

tests/data/wav2lip/reference_frames.npz holds what inference.py wrote for the astronaut photo,
speech_3s_16k.wav, the stand-in weights and `--box 66 171 177 272` (before its video encode).
`lipsync --crf 0` writes lossless frames, so the clip itself is compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytestmark = pytest.mark.lipsync

from discriminator_cli.lipsync.faces import FixedBox, LbpDetector, face_box  # noqa: E402
from discriminator_cli.lipsync.media_io import writer_argv  # noqa: E402
from discriminator_cli.lipsync.pipeline import crop_face  # noqa: E402
from discriminator_cli.lipsync.resize import resize_linear  # noqa: E402
from discriminator_cli.tools import ffmpeg_path  # noqa: E402
from tests.helpers import ffprobe_json  # noqa: E402
from tests.wav2lip_weights import DATA, write_checkpoint  # noqa: E402

SPEECH = DATA / "speech_3s_16k.wav"


def _shapes(count: int, seed: int) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    fixed = [(192, 192, 96, 96), (288, 96, 96, 96), (105, 95, 96, 96), (96, 96, 105, 95),
             (96, 96, 1000, 700), (1, 1, 96, 96), (2, 3, 96, 96), (640, 480, 96, 96),
             (96, 96, 96, 96)]
    return fixed + [tuple(int(v) for v in rng.integers(1, 300, 4)) for _ in range(count)]


def test_resize_is_cv2_inter_linear_bit_for_bit() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(7)
    for height, width, out_h, out_w in _shapes(150, 1):
        for channels in (None, 1, 3, 4):
            shape = (height, width) if channels is None else (height, width, channels)
            image = rng.integers(0, 256, shape, dtype=np.uint8)
            expected = cv2.resize(image, (out_w, out_h))
            ours = resize_linear(image, out_w, out_h)
            assert np.array_equal(ours.reshape(expected.shape), expected), (shape, out_h, out_w)


def test_resize_does_not_antialias_and_rounds_like_cv2() -> None:
    # Shrinking 4 -> 1 samples between pixels 1 and 2 only (Pillow's bilinear would also
    # weigh pixels 0 and 3); halves round up, as cv2's fixed point does.
    assert resize_linear(np.array([[0, 100, 201, 255]], np.uint8), 1, 1)[0, 0] == 151
    assert resize_linear(np.array([[0, 255]], np.uint8), 1, 1)[0, 0] == 128
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    assert np.array_equal(resize_linear(image, 4, 2), image)
    with pytest.raises(ValueError):
        resize_linear(image.astype(np.float32), 2, 2)


def test_a_given_box_is_used_as_is_a_detected_box_is_padded() -> None:
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    assert face_box(FixedBox((177, 66, 272, 171)), photo, (0, 10, 0, 0)) == (177, 66, 272, 171)
    detected = LbpDetector().detect(photo)
    assert detected is not None
    x1, y1, x2, y2 = detected
    assert face_box(LbpDetector(), photo, (0, 10, 0, 0)) == (x1, y1, x2, y2 + 10)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("parity")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    write_checkpoint(folder / "wav2lip.pth", official=True)
    return folder


def _decoded_bgr(path: Path) -> np.ndarray:
    stream = ffprobe_json(path, "-show_streams", "-select_streams", "v:0")["streams"][0]
    raw = subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "bgr24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, stream["height"], stream["width"], 3)


def test_clip_frames_match_the_original_inference_py(astronaut: Path, tmp_path: Path) -> None:
    reference = np.load(DATA / "reference_frames.npz")
    top, bottom, left, right = (int(v) for v in reference["box_tblr"])
    out = tmp_path / "clip.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "discriminator_cli", "lipsync", "--face",
         str(astronaut / "astronaut.png"), "--audio", str(SPEECH), "--checkpoint",
         str(astronaut / "wav2lip.pth"), "-o", str(out), "--precision", "fp32",
         "--box", f"{left},{top},{right},{bottom}", "--crf", "0", "--json",
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, check=False, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    clip = json.loads(result.stdout)["clips"][0]
    assert clip["box"] == [left, top, right, bottom]  # the given box, no pads
    frames = _decoded_bgr(out)
    assert frames.shape[0] == len(reference["box_bgr"]) == 72
    from PIL import Image

    photo = np.asarray(Image.open(astronaut / "astronaut.png").convert("RGB"))[..., ::-1]
    outside = np.ones(photo.shape[:2], bool)
    outside[top:bottom, left:right] = False
    assert all(np.array_equal(frame[outside], photo[outside]) for frame in frames)
    diff = np.abs(frames[:, top:bottom, left:right].astype(int) - reference["box_bgr"])
    # The model itself matches the original to ~1e-6; a value that lands on an integer
    # boundary may truncate to the neighbouring level (inference.py: astype(np.uint8)).
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4


def test_crf_reaches_the_encoder(tmp_path: Path) -> None:
    from fractions import Fraction

    lossless = writer_argv(tmp_path / "a.mp4", 64, 64, Fraction(25), SPEECH, {}, crf=0)
    assert "libx264rgb" in lossless and lossless[lossless.index("-qp") + 1] == "0"
    lossy = writer_argv(tmp_path / "a.mp4", 64, 64, Fraction(25), SPEECH, {}, crf=28)
    assert lossy[lossy.index("-crf") + 1] == "28" and "yuv420p" in lossy


def test_quantize_box_crops_what_lipsync_crops(astronaut: Path, tmp_path: Path) -> None:
    from discriminator_cli.lipsync.pipeline import first_frame
    from discriminator_cli.lipsync.quantize import calibration_inputs
    from discriminator_cli.runner import CommandRunner

    box = (177, 66, 272, 171)
    _, face, info = calibration_inputs(SPEECH, astronaut / "astronaut.png", box=box,
                                       cache_dir=tmp_path)
    frame = first_frame(astronaut / "astronaut.png", CommandRunner())
    assert tuple(info["face_box"]) == box
    assert np.array_equal(face, crop_face(frame, face_box(FixedBox(box), frame)))
