"""The worker: takes jobs from the store, makes each clip with the lip-sync pipeline's own
still-photo steps, and shares model batches between viewers.

Per job a driver thread prepares the face (detect + crop once), sends its mel-window chunks to
a `ModelClient` two chunks ahead, and pastes + encodes the chunks that come back while the
model works on the next ones. The local `BatchingModel` gathers the chunks that several drivers
have waiting into model calls (`engine.predict_groups`), one gathering loop per engine lane:
frames of different viewers share a call. `ModelClient` is the seam where the other batcher
plugs in: `ray_app.RayModelClient`, a Ray Serve handle to model replicas whose `predict` is a
`@serve.batch` handler.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from discriminator_cli.errors import BadInputError, DiscriminatorError
from discriminator_cli.lipsync.engine import LipSyncEngine, join_faces
from discriminator_cli.lipsync.faces import DEFAULT_PADS, FaceDetector, FixedBox, parse_box
from discriminator_cli.lipsync.pipeline import (
    PHOTO_FPS,
    ClipResult,
    Paster,
    detect_photo_face,
    encode_frames,
    load_photo_frame,
    mel_chunks,
    paste_chunks,
    sidecar_path,
    write_sidecar,
)
from discriminator_cli.provenance.identity import SigningIdentity
from discriminator_cli.runner import CommandRunner
from discriminator_cli.serve.metrics import Metrics
from discriminator_cli.serve.store import Job, JobStore

AHEAD = 2                # chunks in flight per viewer: the model never waits for a paste
GATHER_SECONDS = 0.004   # how long a model call waits for other viewers' chunks


@dataclass(frozen=True)
class EngineInfo:
    """What the provenance sidecar records about the model (the engine's own attributes)."""

    precision: str
    device: str
    checkpoint_path: Path
    checkpoint_sha256: str

    @classmethod
    def of(cls, engine: LipSyncEngine) -> EngineInfo:
        return cls(engine.precision, engine.device, engine.checkpoint_path,
                   engine.checkpoint_sha256)


class ModelResult(Protocol):
    def result(self, timeout: float | None = None) -> np.ndarray: ...


class ModelClient(Protocol):
    info: EngineInfo

    def submit(self, mels: np.ndarray, face: np.ndarray) -> ModelResult: ...


@dataclass
class _Request:
    mels: np.ndarray
    face: np.ndarray
    future: Future[np.ndarray]


class _Parts:
    """One submitted chunk's mouths, from the slices the loops ran (in order)."""

    def __init__(self, futures: list[Future[np.ndarray]]) -> None:
        self._futures = futures

    def result(self, timeout: float | None = None) -> np.ndarray:
        deadline = None if timeout is None else time.monotonic() + timeout
        parts = [f.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
                 for f in self._futures]
        return join_faces(parts)


class BatchingModel:
    """One loaded engine behind gathering loops that run waiting chunks of all viewers together.

    One loop per engine lane, each making calls of the lane's size (`engine.call_rows`):
    measured on 2 cores, one loop handing whole batches to the lanes left a lane idle at each
    batch's end and while it gathered the next. A chunk larger than a call is cut into slices
    that any loop may take; its result is put back together in order.
    """

    def __init__(self, engine: LipSyncEngine, metrics: Metrics, *, max_frames: int) -> None:
        self.engine, self.info, self.metrics = engine, EngineInfo.of(engine), metrics
        self.loops = engine.lanes
        self.call_frames = max(1, max_frames if self.loops == 1
                               else min(max_frames, engine.call_rows))
        self._waiting: deque[_Request] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._loop, name=f"model-{n}", daemon=True)
                         for n in range(self.loops)]
        for thread in self._threads:
            thread.start()

    def submit(self, mels: np.ndarray, face: np.ndarray) -> ModelResult:
        step = self.call_frames
        parts = [_Request(mels[start:start + step], face, Future())
                 for start in range(0, len(mels), step)]
        with self._changed:
            if self._closed:
                raise RuntimeError("the model is closed")
            self._waiting.extend(parts)
            self._changed.notify(len(parts))
        return _Parts([part.future for part in parts])

    def close(self) -> None:
        """Stop once what was submitted has run."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def _gather(self) -> list[_Request] | None:
        """The next call's slices: the oldest one, and others that arrive within
        GATHER_SECONDS while they fit; None once closed and drained."""
        with self._changed:
            while not self._waiting:
                if self._closed:
                    return None
                self._changed.wait()
            batch = [self._waiting.popleft()]
            frames = len(batch[0].mels)
            deadline = time.monotonic() + GATHER_SECONDS
            while frames < self.call_frames:
                if self._waiting:
                    if frames + len(self._waiting[0].mels) > self.call_frames:
                        break
                    batch.append(self._waiting.popleft())
                    frames += len(batch[-1].mels)
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._changed.wait(left)
            return batch

    def _loop(self) -> None:
        while (batch := self._gather()) is not None:
            self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        try:
            mouths = self.engine.predict_groups([(r.mels, r.face) for r in batch])
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            # One viewer's bad chunk must not fail the others that shared its call.
            for request in batch:
                self._run([request])
            return
        # Each driver holds its own face array: one object per viewer in this call.
        self.metrics.batch(len({id(r.face) for r in batch}), sum(len(r.mels) for r in batch))
        for request, result in zip(batch, mouths, strict=True):
            request.future.set_result(result)


class ProgressBoard:
    """Frames made so far by each running job: in memory only (see `store`'s docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, tuple[int, int]] = {}

    def set(self, job_id: str, done: int, frames: int) -> None:
        with self._lock:
            self._done[job_id] = (done, frames)

    def get(self, job_id: str) -> tuple[int, int] | None:
        with self._lock:
            return self._done.get(job_id)

    def clear(self, job_id: str) -> None:
        with self._lock:
            self._done.pop(job_id, None)


@dataclass(frozen=True)
class Narration:
    name: str
    path: Path
    mel: np.ndarray
    frames: int


class Cancelled(Exception):
    """The job was deleted while it ran."""


@dataclass
class ClipContext:
    store: JobStore
    model: ModelClient
    narrations: dict[str, Narration]
    uploads: Path
    clips: Path
    detector: FaceDetector
    detector_lock: threading.Lock
    chunk_frames: int
    max_side: int
    metrics: Metrics
    progress: ProgressBoard
    signing: SigningIdentity | None = None   # None: provenance.identity.resolve_identity()


def resize_factor(path: Path, max_side: int) -> int:
    """The smallest integer divisor that brings the long side to max_side or less."""
    from PIL import Image

    with Image.open(path) as image:
        return max(1, math.ceil(max(image.size) / max_side))


def scaled_box(box: tuple[int, int, int, int], factor: int,
               shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A box in the uploaded photo's pixels, on the frame the service scaled it to (a photo's
    long side is brought to max_side by an integer factor), kept inside that frame."""
    height, width = shape[:2]
    x1, y1, x2, y2 = box
    return (min(x1 // factor, width - 1), min(y1 // factor, height - 1),
            min(-(-x2 // factor), width), min(-(-y2 // factor), height))


def make_clip(job: Job, ctx: ClipContext) -> ClipResult:
    """One job's clip through the pipeline's still-photo steps (published by rename)."""
    photo_path = ctx.uploads / job.photo
    narration = ctx.narrations.get(job.narration)
    if narration is None:
        raise BadInputError(f"narration {job.narration!r} is no longer configured",
                            hint="restart the service with it, or submit again")
    factor = resize_factor(photo_path, ctx.max_side)
    photo = load_photo_frame(photo_path, factor)
    if photo is None:
        raise BadInputError("unreadable image", hint="send the photo again as JPEG or PNG")
    detector: FaceDetector = (FixedBox(scaled_box(parse_box(job.box), factor, photo.shape))
                              if job.box else ctx.detector)
    with ctx.detector_lock:
        box, face96 = detect_photo_face(photo, photo_path, detector, DEFAULT_PADS)
    output = ctx.clips / f"{job.id}.mp4"
    height, width = photo.shape[:2]
    result = ClipResult(output=output, sidecar=sidecar_path(output), face=photo_path,
                        audio=narration.path, kind="photo", frames=narration.frames,
                        fps=PHOTO_FPS, width=width, height=height, box=box,
                        precision=ctx.model.info.precision, detector=detector.name,
                        mel_cache_hit=True)
    ctx.progress.set(job.id, 0, narration.frames)
    mouths = _ahead(ctx.model, face96, mel_chunks(narration.mel, PHOTO_FPS, narration.frames,
                                                   ctx.chunk_frames))
    batches = _watched(paste_chunks(mouths, photo, box, Paster(blend=False)), job, ctx,
                       narration.frames)
    started = time.perf_counter()
    encode_frames(batches, result, Fraction(PHOTO_FPS).limit_denominator(1001),
                  runner=CommandRunner(), force=True, engine=ctx.model.info,
                  signing=ctx.signing)
    result.timings["generate"] = time.perf_counter() - started
    write_sidecar(result, ctx.model.info)
    return result


def _ahead(model: ModelClient, face: np.ndarray,
           chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Mouths chunk by chunk, with AHEAD chunks already submitted to the model."""
    pending: deque[ModelResult] = deque()
    for mels in chunks:
        pending.append(model.submit(mels, face))
        if len(pending) > AHEAD:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _watched(batches: Iterator[list[np.ndarray]], job: Job, ctx: ClipContext,
             frames: int) -> Iterator[list[np.ndarray]]:
    """Progress onto the board after each chunk; stop when the job was deleted."""
    done = 0
    for batch in batches:
        yield batch
        done += len(batch)
        if ctx.store.get(job.id) is None:
            raise Cancelled(job.id)
        ctx.progress.set(job.id, done, frames)


def failure_reason(exc: BaseException) -> str:
    """A reason a person can act on; the upload's internal path is not theirs to see."""
    if isinstance(exc, DiscriminatorError):
        text = exc.message + (f" — {exc.hint}" if exc.hint else "")
        return " ".join(text.split())
    return f"internal error ({type(exc).__name__}); submit the photo again"


class Worker:
    """Keeps up to `slots` jobs in flight on one model client."""

    def __init__(self, ctx: ClipContext, slots: int, wake: threading.Event,
                 on_done: Callable[[Job, ClipResult | None, BaseException | None], None]) -> None:
        self.ctx, self.slots, self.wake, self.on_done = ctx, slots, wake, on_done
        self._free = threading.Semaphore(slots)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._dispatch, name="dispatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=30)

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            if not self._free.acquire(timeout=0.5):
                continue
            job = self.ctx.store.claim()
            if job is None:
                self._free.release()
                self.wake.wait(timeout=0.5)
                self.wake.clear()
                continue
            thread = threading.Thread(target=self._drive, args=(job,), name=f"job-{job.id[:6]}",
                                      daemon=True)
            thread.start()

    def _drive(self, job: Job) -> None:
        try:
            result = make_clip(job, self.ctx)
        except BaseException as exc:
            self.on_done(job, None, exc)
        else:
            self.on_done(job, result, None)
        finally:
            self._free.release()
            self.wake.set()


def clip_files(clips: Path, job_id: str) -> tuple[Path, Path]:
    output = clips / f"{job_id}.mp4"
    return output, sidecar_path(output)


def read_sidecar_frames(sidecar: Path) -> int | None:
    import json

    try:
        record: dict[str, Any] = json.loads(sidecar.read_text(encoding="utf-8"))
        return int(record["output"]["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
