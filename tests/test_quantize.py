"""int8 quantisation: round trip, size, reload without calibration, PSNR refusal, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from discriminator_cli.cli.app import main  # noqa: E402
from discriminator_cli.lipsync import int8 as int8_module  # noqa: E402
from discriminator_cli.lipsync.engine import load_engine  # noqa: E402
from discriminator_cli.lipsync.precision import psnr  # noqa: E402
from discriminator_cli.lipsync.quantize import (  # noqa: E402
    QuantizationRefusedError,
    calibration_inputs,
    load_face_image,
    quantize_checkpoint,
)
from discriminator_cli.runner import CommandRunner  # noqa: E402
from discriminator_cli.tools import ffmpeg_path, ffprobe_path  # noqa: E402
from tests.wav2lip_weights import (  # noqa: E402
    DATA,
    reference_faces,
    reference_mels,
    write_checkpoint,
)

pytestmark = pytest.mark.lipsync

SPEECH = DATA / "speech_3s_16k.wav"
FRAMES = {"calibration_frames": 8, "heldout_frames": 4}


@pytest.fixture(scope="module")
def bare_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("q") / "wav2lip.pth", official=False)


@pytest.fixture(scope="module")
def face_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96x96 face crop (from the parity data) saved as PNG, as a user would give it."""
    from PIL import Image

    png = tmp_path_factory.mktemp("face") / "face.png"
    Image.fromarray(reference_faces()[0][:, :, ::-1]).save(png)
    return png


@pytest.fixture(scope="module")
def calibration(face_png: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    return calibration_inputs(SPEECH, face_png, cache_dir=tmp_path_factory.mktemp("cache"))


def test_face_image_round_trip_and_box(face_png: Path, tmp_path: Path) -> None:
    face = reference_faces()[0]
    assert np.array_equal(load_face_image(face_png), face)
    cropped = load_face_image(face_png, box=(0, 0, 48, 48))
    assert cropped.shape == (96, 96, 3)
    # Upscaled top-left quarter: close to the source pixels it was made from.
    assert np.abs(cropped[::2, ::2].astype(int) - face[:48, :48]).mean() < 12
    # A video (no Pillow decoder) goes through ffmpeg: its first frame.
    video = tmp_path / "face.mp4"
    raw = tmp_path / "face.bgr"
    np.repeat(face[None], 5, axis=0).tofile(raw)
    CommandRunner().run([ffmpeg_path(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt",
                         "bgr24", "-s", "96x96", "-i", str(raw), "-c:v", "libx264", "-qp", "0",
                         "-pix_fmt", "yuv444p", str(video)], what="test video")
    runner = CommandRunner()
    decoded = load_face_image(video, runner=runner)
    assert [Path(argv[0]).name for argv in runner.history] == [Path(ffprobe_path()).name,
                                                               Path(ffmpeg_path()).name]
    assert np.abs(decoded.astype(int) - face).mean() < 3


def test_quantize_round_trip(bare_ckpt: Path, calibration: tuple, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    mels, face, info = calibration
    assert mels.shape == (72, 80, 16) and face.shape == (96, 96, 3)
    out = tmp_path / "wav2lip_int8.pt"
    report = quantize_checkpoint(bare_ckpt, out, mels=mels, face=face, threshold_db=30.0,
                                 calibration_info=info, **FRAMES)
    assert report.written and out.is_file()
    assert report.calibration_frames == 8 and report.heldout_frames == 4
    assert 30.0 <= report.psnr_db < float("inf")
    assert out.stat().st_size < 0.3 * bare_ckpt.stat().st_size
    # A plain-data file: loadable without running pickled code.
    saved = torch.load(out, weights_only=True)
    assert saved["meta"]["psnr_db"] == report.psnr_db
    assert saved["meta"]["audio_sha256"] == info["audio_sha256"]

    # Reloading must not calibrate again.
    def no_calibration(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("calibrate() called on reload")

    monkeypatch.setattr(int8_module, "calibrate", no_calibration)
    engine = load_engine(out)
    assert engine.precision == "int8" and engine.meta["psnr_db"] == report.psnr_db
    reference = load_engine(bare_ckpt, precision="fp32")
    faces = np.repeat(face[None], 4, axis=0)
    held = mels[1::2][:4]
    int8_out = engine.predict(held, faces)
    assert psnr(reference.predict(held, faces), int8_out) >= 30.0
    assert np.array_equal(engine.predict_still(held, face), int8_out)
    other = engine.predict(reference_mels(), reference_faces())
    assert psnr(reference.predict(reference_mels(), reference_faces()), other) >= 25.0


def test_refused_below_threshold_then_forced(bare_ckpt: Path, calibration: tuple,
                                            tmp_path: Path) -> None:
    mels, face, _info = calibration
    out = tmp_path / "refused.pt"
    with pytest.raises(QuantizationRefusedError) as info:
        quantize_checkpoint(bare_ckpt, out, mels=mels, face=face, threshold_db=99.0, **FRAMES)
    assert not out.exists() and not list(tmp_path.iterdir())
    assert info.value.report.psnr_db < 99.0 and not info.value.report.written
    assert "below the 99 dB threshold" in info.value.one_line()
    # Each option is named with the command that takes it (quantize has no --precision).
    assert "`discriminator lipsync --precision bf16`" in info.value.one_line()
    assert "`discriminator quantize` with --force" in info.value.one_line()
    report = quantize_checkpoint(bare_ckpt, out, mels=mels, face=face, threshold_db=99.0,
                                 force=True, **FRAMES)
    assert report.written and out.is_file()
    assert torch.load(out, weights_only=True)["meta"]["forced"] is True


def test_int8_needs_a_quantised_file(bare_ckpt: Path) -> None:
    from discriminator_cli.errors import BadInputError

    with pytest.raises(BadInputError) as info:
        load_engine(bare_ckpt, precision="int8")
    assert "int8 needs a quantised checkpoint" in info.value.one_line()
    assert "discriminator quantize" in info.value.one_line()


def test_quantize_cli(bare_ckpt: Path, face_png: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.pt"
    base = ["quantize", str(bare_ckpt), "-o", str(out), "--calibration-audio", str(SPEECH),
            "--calibration-face", str(face_png), "--calibration-frames", "6",
            "--cache-dir", str(tmp_path / "cache")]
    with pytest.raises(SystemExit) as info:
        main([*base, "--threshold", "99"])
    assert info.value.code == 1 and not out.exists()
    assert "below the 99 dB threshold" in capsys.readouterr().err
    main([*base, "--threshold", "99", "--force", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["written"] is True and report["forced"] is True
    assert report["heldout_frames"] == 3 and report["output_bytes"] == out.stat().st_size
    assert report["calibration"]["face_sha256"]
    assert load_engine(out).precision == "int8"
