"""What a still photo and a fixed narration let the engine skip: the split decoder
(still_decoder) and the audio embeddings remembered per mel window (audio_embeddings)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from discriminator_cli.lipsync.audio_embeddings import AudioEmbeddingCache  # noqa: E402
from discriminator_cli.lipsync.engine import faces_to_input, load_engine  # noqa: E402
from discriminator_cli.lipsync.model import Wav2Lip  # noqa: E402
from discriminator_cli.lipsync.precision import fold_batchnorm, psnr, to_bf16  # noqa: E402
from discriminator_cli.lipsync.still_decoder import StillDecoder  # noqa: E402
from tests.wav2lip_weights import (  # noqa: E402
    reference_faces,
    reference_mels,
    rule_tensors,
    write_checkpoint,
)

pytestmark = pytest.mark.lipsync


def _rule_model() -> Wav2Lip:
    model = Wav2Lip().eval()
    model.load_state_dict(rule_tensors())
    return model


@pytest.fixture(scope="module")
def folded() -> Wav2Lip:
    return fold_batchnorm(_rule_model())


def _face_input(face: np.ndarray, bf16: bool = False) -> torch.Tensor:
    x = faces_to_input(face[None])
    return x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last) if bf16 else x


def _mels(bf16: bool = False) -> torch.Tensor:
    x = torch.from_numpy(reference_mels()).unsqueeze(1)
    return x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last) if bf16 else x


def test_split_decoder_equals_the_full_decoder_in_fp32(folded: Wav2Lip) -> None:
    still = StillDecoder.for_model(folded)
    assert still is not None
    with torch.inference_mode():
        audio = folded.encode_audio(_mels())
        for face in reference_faces()[:3]:
            features = folded.encode_face(_face_input(face))
            full = folded.decode(audio, features)
            split = still.decode(audio, still.face_terms(features))
            assert split.shape == full.shape == (4, 3, 96, 96)
            assert (split - full).abs().max().item() <= 1e-5
    # The face's terms really carry the face: another face's terms give another picture.
    with torch.inference_mode():
        one, two = (still.face_terms(folded.encode_face(_face_input(f)))
                    for f in reference_faces()[:2])
        assert (still.decode(audio, one) - still.decode(audio, two)).abs().max().item() > 0.05


def test_rows_of_different_faces_in_one_call(folded: Wav2Lip) -> None:
    """serve's shared calls: each row's terms stacked, each row as its own face alone."""
    still = StillDecoder.for_model(folded)
    assert still is not None
    faces = reference_faces()[:2]
    with torch.inference_mode():
        audio = folded.encode_audio(_mels())
        terms = [still.face_terms(folded.encode_face(_face_input(f))) for f in faces]
        owners = [0, 1, 1, 0]
        stacked = [torch.cat([terms[o][level] for o in owners]) for level in range(7)]
        mixed = still.decode(audio, stacked)
        for row, owner in enumerate(owners):
            alone = still.decode(audio[row:row + 1], terms[owner])
            assert (mixed[row:row + 1] - alone).abs().max().item() <= 1e-5


def test_split_decoder_in_bf16_stays_within_bf16s_own_error(folded: Wav2Lip) -> None:
    model = to_bf16(fold_batchnorm(_rule_model()))
    still = StillDecoder.for_model(model)
    assert still is not None
    with torch.inference_mode():
        face = reference_faces()[1]
        reference = folded.decode(folded.encode_audio(_mels()),
                                  folded.encode_face(_face_input(face)))
        audio = model.encode_audio(_mels(bf16=True))
        features = model.encode_face(_face_input(face, bf16=True))
        full = model.decode(audio, features)
        split = still.decode(audio, still.face_terms(features))

    def picture(x: torch.Tensor) -> np.ndarray:
        return (x.float().clamp(0, 1) * 255).numpy().astype(np.uint8)

    assert psnr(picture(reference), picture(split)) >= 40.0
    assert (split.float() - full.float()).abs().max().item() * 255 <= 4.0


def test_models_without_an_exact_split_keep_the_full_decoder() -> None:
    assert StillDecoder.for_model(_rule_model()) is None  # BatchNorm not folded
    assert StillDecoder.for_model(torch.nn.Identity()) is None


def test_audio_cache_encodes_each_window_once() -> None:
    calls: list[int] = []

    def encode(mels: np.ndarray) -> torch.Tensor:
        calls.append(len(mels))
        return torch.from_numpy(mels.sum(axis=(1, 2))).reshape(-1, 1, 1, 1).repeat(1, 4, 1, 1)

    cache = AudioEmbeddingCache(encode, capacity=6)
    rng = np.random.default_rng(3)
    windows = rng.standard_normal((8, 80, 16)).astype(np.float32)
    want = encode(windows)
    calls.clear()
    assert torch.equal(cache.embed(windows[:4]), want[:4])
    assert calls == [4]
    # Windows 2, 3 are known; 4, 5 are new: only they are encoded, rows stay in order.
    assert torch.equal(cache.embed(windows[2:6]), want[2:6])
    assert calls == [4, 2] and (cache.hits, cache.misses) == (2, 6)
    assert len(cache) == 6
    assert torch.equal(cache.embed(windows[6:7]), want[6:7])  # one past capacity: 0 goes
    assert len(cache) == 6
    cache.embed(windows[:1])
    assert calls == [4, 2, 1, 1]
    # Equal windows share an entry whatever clip or position they come from.
    cache.embed(np.ascontiguousarray(windows[[6, 6]]))
    assert calls == [4, 2, 1, 1]


def test_audio_cache_from_several_threads() -> None:
    def encode(mels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(mels[:, :4, 0].copy()).reshape(-1, 4, 1, 1)

    cache = AudioEmbeddingCache(encode)
    windows = np.random.default_rng(4).standard_normal((64, 80, 16)).astype(np.float32)
    want = encode(windows)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for _ in range(20):
                for start in range(offset, 64, 8):
                    assert torch.equal(cache.embed(windows[start:start + 8]),
                                       want[start:start + 8])
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in (0, 3, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(cache) == 64


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_engine_reuses_the_narrations_audio(tmp_path: Path, precision: str) -> None:
    engine = load_engine(write_checkpoint(tmp_path / "wav2lip.pth"), precision=precision,
                         batch_size=2)
    encoded: list[int] = []
    original = engine.model.encode_audio

    def encode_audio(mels: torch.Tensor) -> torch.Tensor:
        encoded.append(mels.shape[0])
        return original(mels)

    engine.model.encode_audio = encode_audio  # type: ignore[method-assign]
    mels = reference_mels()
    first, second = reference_faces()[:2]
    one = engine.predict_still(mels, first)
    assert encoded == [2, 2]
    two = engine.predict_still(mels, second)  # another viewer, the same narration
    again = engine.predict_still(mels, first)
    assert encoded == [2, 2]
    assert np.array_equal(one, again) and not np.array_equal(one, two)
