"""serve's local batcher: one gathering loop per engine lane, chunks cut into call-sized slices
that any loop may take, and every viewer's mouths put back together in order."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytest.importorskip("fastapi")

from discriminator_cli.errors import BadInputError  # noqa: E402
from discriminator_cli.lipsync.engine import LANE_ROWS, LipSyncEngine, load_engine  # noqa: E402
from discriminator_cli.serve.metrics import Metrics  # noqa: E402
from discriminator_cli.serve.worker import BatchingModel, _ahead  # noqa: E402
from tests.wav2lip_weights import reference_faces, write_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "wav2lip.pth")


@pytest.fixture()
def restore_threads():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_viewers_chunks_run_on_every_lane_and_come_back_whole(
        checkpoint: Path, restore_threads: None) -> None:
    engine = load_engine(checkpoint, precision="fp32", batch_size=64, cores=2)
    serial = load_engine(checkpoint, precision="fp32", batch_size=LANE_ROWS)
    metrics = Metrics()
    model = BatchingModel(engine, metrics, max_frames=64)
    assert model.loops == 2 and model.call_frames == LANE_ROWS
    callers: set[str] = set()
    original = engine.predict_groups

    def predict_groups(groups):  # type: ignore[no-untyped-def]
        callers.add(threading.current_thread().name)
        assert sum(len(mels) for mels, _ in groups) <= LANE_ROWS
        return original(groups)

    engine.predict_groups = predict_groups  # type: ignore[method-assign]
    rng = np.random.default_rng(3)
    faces = reference_faces()[:3]
    # Chunks that are not a whole number of calls: slices of 8 and a tail of 4 share calls.
    mels = [rng.standard_normal((43 + 7 * n, 80, 16)).astype(np.float32) for n in range(3)]
    got: dict[int, np.ndarray] = {}

    def viewer(n: int) -> None:
        chunks = (mels[n][start:start + 20] for start in range(0, len(mels[n]), 20))
        got[n] = np.concatenate(list(_ahead(model, faces[n], chunks)))

    threads = [threading.Thread(target=viewer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    model.close()
    assert callers == {"model-0", "model-1"}
    for n in range(3):
        want = serial.predict_still(mels[n], faces[n])
        assert got[n].shape == want.shape
        # Rows of several viewers in one call: the same arithmetic per row, but a call's
        # size can change how oneDNN blocks it, so allow the last bit of rounding.
        assert np.abs(got[n].astype(int) - want.astype(int)).max() <= 1
    assert metrics.frames == sum(len(m) for m in mels)


def test_a_failed_call_fails_its_chunk_and_the_loops_go_on(
        checkpoint: Path, restore_threads: None) -> None:
    model = BatchingModel(load_engine(checkpoint, precision="fp32", cores=2), Metrics(),
                          max_frames=32)
    mels = np.zeros((12, 80, 16), np.float32)
    bad = model.submit(mels, np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(BadInputError, match="faces must be"):
        bad.result(timeout=120)
    good = model.submit(mels, reference_faces()[0])
    assert good.result(timeout=120).shape == (12, 96, 96, 3)
    assert model.submit(mels[:0], reference_faces()[0]).result().shape == (0, 96, 96, 3)
    model.close()


def test_close_runs_what_was_submitted_then_refuses(
        checkpoint: Path, restore_threads: None) -> None:
    model = BatchingModel(load_engine(checkpoint, precision="fp32", cores=2), Metrics(),
                          max_frames=32)
    mels = np.zeros((30, 80, 16), np.float32)
    pending = [model.submit(mels, reference_faces()[n]) for n in range(3)]
    model.close()
    assert [p.result(timeout=0).shape for p in pending] == [(30, 96, 96, 3)] * 3
    with pytest.raises(RuntimeError, match="closed"):
        model.submit(mels, reference_faces()[0])


class _HeldLanes:
    """Both model loops held inside a call (on a blocker chunk) until `release()`; the groups
    of every call after that are recorded."""

    def __init__(self, engine: LipSyncEngine, model: BatchingModel) -> None:
        self._released, busy = threading.Event(), threading.Semaphore(0)
        self.groups: list[list[tuple[np.ndarray, np.ndarray]]] = []
        original = engine.predict_groups

        def predict_groups(groups):  # type: ignore[no-untyped-def]
            if not self._released.is_set():
                busy.release()
                assert self._released.wait(timeout=60)
            else:
                self.groups.append(groups)
            return original(groups)

        engine.predict_groups = predict_groups  # type: ignore[method-assign]
        self._blocker = model.submit(np.zeros((2 * LANE_ROWS, 80, 16), np.float32),
                                     reference_faces()[0])
        for _ in range(2):
            assert busy.acquire(timeout=60)  # both loops hold a full call

    def release(self) -> None:
        self._released.set()
        self._blocker.result(timeout=120)


def test_chunks_waiting_together_share_a_call(checkpoint: Path, restore_threads: None) -> None:
    """While both lanes are busy, small chunks of four viewers pile up; each call that follows
    takes a full call's rows from two viewers instead of one chunk each."""
    engine = load_engine(checkpoint, precision="fp32", batch_size=32, cores=2)
    model = BatchingModel(engine, Metrics(), max_frames=32)
    half = LANE_ROWS // 2
    faces = [np.ascontiguousarray(face) for face in reference_faces()[:4]]
    mels = np.random.default_rng(5).standard_normal((half, 80, 16)).astype(np.float32)
    held = _HeldLanes(engine, model)
    pending = [(n, model.submit(mels, faces[n])) for _ in range(2) for n in range(4)]
    held.release()
    for n, result in pending:
        assert np.abs(result.result(timeout=120).astype(int)
                      - engine.predict_still(mels, faces[n]).astype(int)).max() <= 1
    model.close()
    calls = [len({id(face) for _, face in groups}) for groups in held.groups]
    assert calls[:4] == [2, 2, 2, 2]


def test_a_bad_chunk_does_not_fail_the_viewer_it_shared_a_call_with(
        checkpoint: Path, restore_threads: None) -> None:
    engine = load_engine(checkpoint, precision="fp32", batch_size=32, cores=2)
    model = BatchingModel(engine, Metrics(), max_frames=32)
    mels = np.zeros((LANE_ROWS // 2, 80, 16), np.float32)
    held = _HeldLanes(engine, model)
    bad = model.submit(mels, np.zeros((50, 50, 3), np.uint8))
    good = model.submit(mels, reference_faces()[1])
    held.release()
    with pytest.raises(BadInputError, match="faces must be"):
        bad.result(timeout=120)
    assert good.result(timeout=120).shape == (LANE_ROWS // 2, 96, 96, 3)
    model.close()
    assert len(held.groups[0]) == 2  # they did share a call, which failed; each then ran alone
