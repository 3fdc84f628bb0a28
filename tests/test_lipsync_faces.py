"""Face boxes: detectors (LBP, S3FD, a given box), pads, clipping and video smoothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytestmark = pytest.mark.lipsync

from discriminator_cli.errors import BadInputError  # noqa: E402
from discriminator_cli.lipsync.faces import (  # noqa: E402
    FixedBox,
    LbpDetector,
    S3fdDetector,
    clip_box,
    make_detector,
    pad_box,
    parse_box,
    parse_pads,
    smooth_boxes,
)

# Real S3FD weights cannot be downloaded here; a run that has them can point this at the file.
REAL_S3FD_WEIGHTS = os.environ.get("DISCRIMINATOR_TEST_S3FD_WEIGHTS")


@pytest.fixture(scope="module")
def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def test_lbp_finds_the_astronaut_and_nothing_in_a_flat_picture(astronaut_bgr: np.ndarray) -> None:
    detector = LbpDetector()
    x1, y1, x2, y2 = detector.detect(astronaut_bgr)  # type: ignore[misc]
    assert abs(x1 - 175) < 15 and abs(y1 - 70) < 15
    assert 75 < x2 - x1 < 115 and 75 < y2 - y1 < 115  # about 93x93
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) is None


def test_lbp_on_a_large_photo_scales_the_box_back(astronaut_bgr: np.ndarray) -> None:
    """A 1536x1536 photo is searched at 640 px; the box comes back in full-size pixels."""
    from PIL import Image

    big = np.asarray(Image.fromarray(astronaut_bgr).resize((1536, 1536),
                                                           Image.Resampling.BILINEAR))
    small = LbpDetector().detect(astronaut_bgr)
    large = LbpDetector().detect(big)
    assert small is not None and large is not None
    assert all(abs(a * 3 - b) < 30 for a, b in zip(small, large, strict=True))


def test_pads_grow_the_box_and_stay_inside_the_frame() -> None:
    assert pad_box((175, 70, 268, 163), (0, 10, 0, 0), 512, 512) == (175, 70, 268, 173)
    assert pad_box((5, 5, 95, 95), (10, 10, 10, 10), 100, 100) == (0, 0, 100, 100)


def test_clip_box_drops_boxes_outside_the_frame() -> None:
    assert clip_box((97, -5, 352, 224), 128, 128) == (97, 0, 128, 128)
    assert clip_box((125, 0, 352, 224), 128, 128) is None  # 3 px wide: no face in there
    assert clip_box((200, 10, 300, 90), 128, 128) is None


def test_smoothing_is_inference_py_moving_mean_over_the_next_five() -> None:
    boxes = [(10 * i + (i % 3), 2 * i, 10 * i + 50, 2 * i + 60) for i in range(10)]
    expected = []
    for i in range(len(boxes)):  # inference.py: window i..i+4, the last ones the final window
        window = boxes[i:i + 5] if i + 5 <= len(boxes) else boxes[len(boxes) - 5:]
        expected.append(tuple(int(v) for v in np.mean(window, axis=0)))  # int array: truncates
    assert smooth_boxes(boxes) == expected
    assert smooth_boxes(boxes[:3]) == [tuple(int(v) for v in np.mean(boxes[:3], axis=0))] * 3
    assert smooth_boxes(boxes[:1]) == boxes[:1]


def test_box_and_pads_parsing() -> None:
    assert parse_box("175,70,268,173") == (175, 70, 268, 173)
    assert parse_pads("0, 10, 0, 0") == (0, 10, 0, 0)
    for bad in ("1,2,3", "a,b,c,d", "10,10,5,20", "-1,0,5,5"):
        with pytest.raises(BadInputError, match="--box"):
            parse_box(bad)
    with pytest.raises(BadInputError, match="--pads"):
        parse_pads("0,10")


def test_fixed_box_outside_the_frame_is_refused() -> None:
    with pytest.raises(BadInputError, match="outside the 100x80 frame"):
        FixedBox((10, 10, 120, 60)).detect(np.zeros((80, 100, 3), np.uint8))


@pytest.fixture(scope="module")
def random_s3fd_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """S3FD's real architecture with seeded random weights: exercises the loading and the
    box handling of the S3FD path (not its accuracy) without the downloadable file."""
    pytest.importorskip("face_alignment")
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("s3fd") / "s3fd-random.pth"
    torch.save(s3fd().state_dict(), path)
    return path


def test_s3fd_path_loads_local_weights_and_returns_boxes_inside_the_frame(
        random_s3fd_weights: Path, astronaut_bgr: np.ndarray) -> None:
    detector = make_detector("auto", weights=random_s3fd_weights)
    assert isinstance(detector, S3fdDetector) and detector.name == "s3fd"
    for frame in (astronaut_bgr[::4, ::4], np.full((96, 128, 3), 90, np.uint8)):
        height, width = frame.shape[:2]
        box = detector.detect(np.ascontiguousarray(frame))
        # Random weights fire anywhere (often past the edge): whatever comes back is clipped.
        assert box is None or (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height)


def test_s3fd_is_found_in_torch_hub_cache(random_s3fd_weights: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "s3fd-619a316812.pth").write_bytes(random_s3fd_weights.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert make_detector("auto").name == "s3fd"
    assert make_detector("lbp").name == "lbp"


@pytest.mark.skipif(not REAL_S3FD_WEIGHTS, reason="real S3FD weights are not on disk (offline "
                    "here); set DISCRIMINATOR_TEST_S3FD_WEIGHTS=path/to/s3fd-619a316812.pth")
def test_real_s3fd_finds_the_astronaut(astronaut_bgr: np.ndarray) -> None:
    box = make_detector("s3fd", weights=Path(str(REAL_S3FD_WEIGHTS))).detect(astronaut_bgr)
    assert box is not None
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    assert 190 < centre_x < 250 and 90 < centre_y < 160
