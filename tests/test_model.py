"""Wav2Lip model: layout, fp32 parity with the original, checkpoints, BN folding, bf16, engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from discriminator_cli.errors import BadInputError  # noqa: E402
from discriminator_cli.lipsync import precision as precision_module  # noqa: E402
from discriminator_cli.lipsync.checkpoint import load_wav2lip, read_checkpoint  # noqa: E402
from discriminator_cli.lipsync.engine import load_engine  # noqa: E402
from discriminator_cli.lipsync.model import Wav2Lip  # noqa: E402
from discriminator_cli.lipsync.precision import (  # noqa: E402
    fold_batchnorm,
    is_folded,
    psnr,
    resolve_precision,
)
from tests.wav2lip_weights import (  # noqa: E402
    DATA,
    LAYOUT_JSON,
    reference_faces,
    reference_mels,
    rule_tensors,
    write_checkpoint,
)

pytestmark = pytest.mark.lipsync


@pytest.fixture(scope="module")
def rule_model() -> Wav2Lip:
    model = Wav2Lip().eval()
    model.load_state_dict(rule_tensors())
    return model


@pytest.fixture(scope="module")
def official_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "wav2lip.pth")


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return dict(np.load(DATA / "reference_io.npz"))


def test_state_dict_layout_equals_official() -> None:
    info = json.loads(LAYOUT_JSON.read_text())
    model = Wav2Lip()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == info["layout"]
    assert len(ours) == info["n_tensors"] == 352
    trainable = sum(p.numel() for p in model.parameters())
    assert trainable == 36_298_035
    # The JSON's n_params also counts BatchNorm running means/variances (not parameters).
    running = sum(b.numel() for name, b in model.named_buffers()
                  if name.endswith(("running_mean", "running_var")))
    assert trainable + running == info["n_params"] == 36_320_787


def test_fp32_parity_with_original(rule_model: Wav2Lip, reference: dict) -> None:
    mels = torch.from_numpy(reference["mel_batch"])
    with torch.no_grad():
        out = rule_model(mels, torch.from_numpy(reference["face_batch"])).numpy()
        still = rule_model(mels, torch.from_numpy(reference["still_face_batch"])).numpy()
    assert out.shape == (4, 3, 96, 96)
    assert np.abs(out - reference["out"]).max() <= 1e-5
    assert np.abs(still - reference["still_out"]).max() <= 1e-5


def test_split_encoder_reuses_face_features_exactly(rule_model: Wav2Lip,
                                                    reference: dict) -> None:
    mels = torch.from_numpy(reference["mel_batch"])
    one_face = torch.from_numpy(reference["still_face_batch"][:1])
    with torch.no_grad():
        features = rule_model.encode_face(one_face)
        out = rule_model.decode(rule_model.encode_audio(mels), features).numpy()
    assert [f.shape[0] for f in features] == [1] * 7
    assert np.abs(out - reference["still_out"]).max() <= 1e-5


def test_batchnorm_folding_matches(rule_model: Wav2Lip, reference: dict) -> None:
    folded = Wav2Lip().eval()
    folded.load_state_dict(rule_model.state_dict())
    fold_batchnorm(folded)
    assert is_folded(folded)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        out = folded(torch.from_numpy(reference["mel_batch"]),
                     torch.from_numpy(reference["face_batch"])).numpy()
    assert np.abs(out - reference["out"]).max() <= 1e-5


@pytest.mark.parametrize("official", [True, False], ids=["official", "bare"])
def test_checkpoint_formats_load(tmp_path: Path, official: bool, reference: dict) -> None:
    path = write_checkpoint(tmp_path / "w.pth", official=official)
    checkpoint = read_checkpoint(path)
    assert checkpoint.layout == ("official" if official else "bare")
    assert not any(k.startswith("module.") for k in checkpoint.state_dict)
    model = load_wav2lip(path)
    with torch.no_grad():
        out = model(torch.from_numpy(reference["mel_batch"]),
                    torch.from_numpy(reference["face_batch"])).numpy()
    assert np.abs(out - reference["out"]).max() <= 1e-5


def _save_state(path: Path, state: dict) -> Path:
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    return path


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = dict(rule_tensors())
    del state["output_block.1.weight"]
    del state["audio_encoder.3.conv_block.1.running_var"]
    state["extra.head.weight"] = torch.zeros(2)
    path = _save_state(tmp_path / "partial.pth", state)
    with pytest.raises(BadInputError) as info:
        load_wav2lip(path)
    text = info.value.one_line()
    assert "2 missing keys" in text and "output_block.1.weight" in text
    assert "audio_encoder.3.conv_block.1.running_var" in text
    assert "1 unexpected keys: extra.head.weight" in text
    assert str(path) in text and "wav2lip.pth" in text  # path and a hint


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    state = dict(rule_tensors())
    state["face_encoder_blocks.0.0.conv_block.0.weight"] = torch.zeros(16, 3, 7, 7)
    with pytest.raises(BadInputError, match=r"face_encoder_blocks\.0\.0\.conv_block\.0\.weight "
                                            r"\(16, 3, 7, 7\) != \(16, 6, 7, 7\)"):
        load_wav2lip(_save_state(tmp_path / "shape.pth", state))


def test_truncated_and_foreign_files(tmp_path: Path, official_ckpt: Path) -> None:
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(official_ckpt.read_bytes()[: official_ckpt.stat().st_size // 2])
    text_file = tmp_path / "notes.pth"
    text_file.write_text("this is not a checkpoint\n")
    for bad in (truncated, text_file):
        with pytest.raises(BadInputError) as info:
            load_engine(bad, precision="fp32")
        assert "truncated or not a torch file" in info.value.message
        assert info.value.path == str(bad) and info.value.hint
    with pytest.raises(BadInputError, match="not found"):
        load_engine(tmp_path / "absent.pth")


def test_tensor_free_and_code_carrying_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pth"
    torch.save({"global_step": 3}, empty)
    with pytest.raises(BadInputError, match="no tensors"):
        read_checkpoint(empty)
    pickled = tmp_path / "object.pth"
    torch.save({"state_dict": {}, "cfg": Path("x")}, pickled)  # an arbitrary Python object
    with pytest.raises(BadInputError, match="other than tensors"):
        read_checkpoint(pickled)


def test_engine_matches_reference_and_still_path(official_ckpt: Path, reference: dict) -> None:
    engine = load_engine(official_ckpt, precision="fp32")
    assert engine.precision == "fp32" and engine.device == "cpu"
    assert len(engine.checkpoint_sha256) == 64
    mels, faces = reference_mels(), reference_faces()
    out = engine.predict(mels, faces)
    assert out.shape == (4, 96, 96, 3) and out.dtype == np.uint8
    expected = reference["out"].transpose(0, 2, 3, 1) * 255
    # Same truncation to uint8 as inference.py; float noise may cross an integer boundary.
    assert np.abs(out.astype(np.float64) - expected).max() < 1.0 + 1e-3
    face = reference_faces("still_face_batch")[0]
    repeated = engine.predict(mels, np.repeat(face[None], 4, axis=0))
    still = engine.predict_still(mels, face)
    assert np.array_equal(still, repeated)
    assert np.abs(still.astype(np.float64)
                  - reference["still_out"].transpose(0, 2, 3, 1) * 255).max() < 1.0 + 1e-3


def test_predict_still_runs_face_encoder_once(official_ckpt: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    engine = load_engine(official_ckpt, precision="fp32", batch_size=2)
    calls = []
    original = engine.model.encode_face
    monkeypatch.setattr(engine.model, "encode_face",
                        lambda x: calls.append(x.shape[0]) or original(x))
    mels = np.concatenate([reference_mels()] * 2)
    face = reference_faces()[1]
    first = engine.predict_still(mels, face)
    # Whole batches again: oneDNN may pick another kernel for a batch of 1 on some CPUs, so
    # bit-identity is asked of the same batch shapes (the cached features are what is tested).
    second = engine.predict_still(mels[:4], face)
    assert calls == [1]  # 8 frames over 4 batches, then another call: one encoder run
    assert np.array_equal(first[:4], second)


def test_bf16_psnr_against_fp32(official_ckpt: Path) -> None:
    fp32 = load_engine(official_ckpt, precision="fp32")
    bf16 = load_engine(official_ckpt, precision="bf16")
    assert bf16.precision == "bf16"
    mels, faces = reference_mels(), reference_faces()
    score = psnr(fp32.predict(mels, faces), bf16.predict(mels, faces))
    assert 40.0 <= score < float("inf")
    face = faces[2]
    assert np.array_equal(bf16.predict_still(mels, face),
                          bf16.predict(mels, np.repeat(face[None], 4, axis=0)))


def test_precision_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu", quantised_file=True) == "int8"
    with pytest.raises(BadInputError, match="needs a quantised checkpoint"):
        resolve_precision("int8", "cpu")
    with pytest.raises(BadInputError, match="cannot run as fp32"):
        resolve_precision("fp32", "cpu", quantised_file=True)
    with pytest.raises(BadInputError, match="unknown precision"):
        resolve_precision("fp16", "cpu")


def test_bad_engine_inputs(official_ckpt: Path) -> None:
    engine = load_engine(official_ckpt, precision="fp32")
    with pytest.raises(BadInputError, match="faces must be uint8"):
        engine.predict(reference_mels(), reference_faces().astype(np.float32))
    with pytest.raises(BadInputError, match="mel windows but"):
        engine.predict(reference_mels()[:2], reference_faces())


def test_lanes_change_the_schedule_not_the_frames(official_ckpt: Path) -> None:
    """An engine given 2 cores runs calls of LANE_ROWS rows on 2 single-threaded lanes at once:
    every path (predict, predict_still, predict_groups) gives exactly what the same calls give
    one after another on one thread, and the order of the rows is kept."""
    import threading

    import torch

    from discriminator_cli.lipsync.engine import LANE_ROWS, plan_lanes

    assert plan_lanes(None, "cpu") == (1, None)
    assert plan_lanes(2, "cpu") == (2, 1) and plan_lanes(16, "cpu") == (4, 4)
    assert plan_lanes(8, "cuda") == (1, None)
    threads = torch.get_num_threads()
    try:
        lanes = load_engine(official_ckpt, precision="fp32", batch_size=64, cores=2)
        assert lanes.lanes == 2 and lanes.call_rows == LANE_ROWS
        assert torch.get_num_threads() == 1
        # A benchmark's other call size is the size it gets (a batch still caps it).
        assert load_engine(official_ckpt, "fp32", batch_size=64, cores=2,
                           lane_rows=3).call_rows == 3
        assert load_engine(official_ckpt, "fp32", batch_size=2, cores=2,
                           lane_rows=16).call_rows == 2
        serial = load_engine(official_ckpt, precision="fp32", batch_size=LANE_ROWS)
        assert serial.lanes == 1
        rng = np.random.default_rng(7)
        mels = rng.standard_normal((3 * LANE_ROWS + 5, 80, 16)).astype(np.float32)
        face, other = reference_faces()[1], reference_faces()[2]
        used: set[str] = set()
        original = lanes.model.encode_audio

        def encode_audio(*args: object) -> object:  # the first clip's windows are all new
            used.add(threading.current_thread().name)
            return original(*args)  # type: ignore[arg-type]

        lanes.model.encode_audio = encode_audio  # type: ignore[method-assign]
        assert np.array_equal(lanes.predict_still(mels, face), serial.predict_still(mels, face))
        assert len(used) == 2 and all(name.startswith("model-lane") for name in used)
        mixed = np.stack([face if i % 3 else other for i in range(len(mels))])
        assert np.array_equal(lanes.predict(mels, mixed), serial.predict(mels, mixed))
        groups = [(mels[:20], face), (mels[20:], other)]
        for got, want in zip(lanes.predict_groups(groups), serial.predict_groups(groups),
                             strict=True):
            assert np.array_equal(got, want)
    finally:
        torch.set_num_threads(threads)
