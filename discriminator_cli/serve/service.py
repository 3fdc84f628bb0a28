"""The service behind the HTTP layer: configuration, start-up recovery, accepting jobs, expiry.

Data directory layout: `jobs.sqlite` (the store), `uploads/<id>.<ext>` (accepted photos),
`clips/<id>.mp4` + `<id>.mp4.json` (published by rename), `service.lock` (one service per
directory: a second one would hand the same queued job out twice).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from discriminator_cli.errors import BadInputError
from discriminator_cli.lipsync.faces import FaceDetector, parse_box
from discriminator_cli.publish import STAGING_PREFIX
from discriminator_cli.serve.limits import KINDS, UploadLimits
from discriminator_cli.serve.metrics import Metrics
from discriminator_cli.serve.store import Job, JobStore
from discriminator_cli.serve.worker import (
    ClipContext,
    ClipResult,
    ModelClient,
    Narration,
    ProgressBoard,
    Worker,
    clip_files,
    failure_reason,
    read_sidecar_frames,
)

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16)
DEFAULT_RETRY_SECONDS = 5


if TYPE_CHECKING:
    from discriminator_cli.provenance.identity import SigningIdentity


@dataclass
class ServiceConfig:
    checkpoint: Path
    narrations: dict[str, Path]
    data_dir: Path
    workers: int = 1
    slots: int = 4                 # viewers in flight per worker, sharing its model batches
    max_queue: int = 64            # queued + running jobs before 429
    batch_size: int = 32
    precision: str = "auto"
    device: str = "cpu"
    detector: str = "auto"
    detector_weights: Path | None = None
    ttl_seconds: float = 24 * 3600.0
    max_side: int = 1280
    limits: UploadLimits = field(default_factory=UploadLimits)
    token: str | None = None
    cors_origin: str | None = None
    cache_dir: Path | None = None
    # The clips' C2PA signing identity (provenance.identity), resolved before the model loads.
    signing: SigningIdentity | None = None


def valid_id(job_id: str) -> bool:
    """Only ids this service could have made; anything else never reaches the filesystem."""
    return bool(ID_PATTERN.fullmatch(job_id))


class Service:
    """Owns the store and the workers; `make_clients` loads one model client per worker."""

    def __init__(self, config: ServiceConfig, narrations: dict[str, Narration],
                 detector: FaceDetector,
                 make_clients: Callable[[Metrics], list[ModelClient]]) -> None:
        self.config, self.narrations, self.detector = config, narrations, detector
        self._make_clients = make_clients
        self.metrics = Metrics()
        data = config.data_dir
        self.uploads, self.clips = data / "uploads", data / "clips"
        for folder in (data, self.uploads, self.clips):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock_file = _exclusive_lock(data / "service.lock")
        self.store = JobStore(data / "jobs.sqlite")
        self.wake = threading.Event()
        self.progress = ProgressBoard()
        self.workers: list[Worker] = []
        self.ready = False
        self._stop = threading.Event()
        self._janitor = threading.Thread(target=self._expire_loop, name="janitor", daemon=True)
        self._recent_seconds: list[float] = []

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._recover()
        clients = self._make_clients(self.metrics)
        detector_lock = threading.Lock()
        for client in clients:
            ctx = ClipContext(self.store, client, self.narrations, self.uploads, self.clips,
                              self.detector, detector_lock, self.config.batch_size,
                              self.config.max_side, self.metrics, self.progress,
                              self.config.signing)
            worker = Worker(ctx, self.config.slots, self.wake, self._job_ended)
            worker.start()
            self.workers.append(worker)
        self._janitor.start()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        self._stop.set()
        for worker in self.workers:
            worker.stop()
        # The store stays open: a clip still encoding records its end; the next start
        # requeues whatever is left running.
        with contextlib.suppress(OSError):
            self._lock_file.close()

    def _recover(self) -> None:
        """After a crash: half-written files go, interrupted jobs wait again, and a job whose
        clip and sidecar were both published before the crash is done (never made twice)."""
        for folder in (self.uploads, self.clips):
            for leftover in folder.glob(f"{STAGING_PREFIX}*"):
                leftover.unlink(missing_ok=True)
        self.store.requeue_interrupted()
        for job_id in self.store.all_ids():
            job = self.store.get(job_id)
            if job is None or job.state != "queued":
                continue
            output, sidecar = clip_files(self.clips, job_id)
            frames = read_sidecar_frames(sidecar) if output.is_file() else None
            if frames is not None and self.store.claim_specific(job_id):
                self.store.finish(job_id, frames)
        known = set(self.store.all_ids())
        for upload in self.uploads.iterdir():  # accepted-but-unrecorded uploads of a crash
            if upload.stem not in known:
                upload.unlink(missing_ok=True)

    # -- jobs --------------------------------------------------------------------------------
    def accept(self, upload: Path, kind: str, narration: str, box: str | None) -> Job | None:
        """Record a checked upload as a queued job (on disk before returning); None when the
        queue is full (the upload is removed)."""
        if narration not in self.narrations:
            raise BadInputError(f"unknown narration {narration!r}",
                                hint=f"use one of: {', '.join(sorted(self.narrations))}")
        if box is not None:
            parse_box(box)
        job_id = secrets.token_urlsafe(16)
        stored = self.uploads / f"{job_id}{KINDS[kind]}"
        os.replace(upload, stored)
        _fsync_dir(self.uploads)
        if not self.store.add_if_room(job_id, narration, stored.name, box,
                                      self.config.max_queue):
            stored.unlink(missing_ok=True)
            self.metrics.count("rejected")
            return None
        self.metrics.count("accepted")
        self.wake.set()
        return self.store.get(job_id)

    def get(self, job_id: str) -> Job | None:
        job = self.store.get(job_id) if valid_id(job_id) else None
        if job is None or job.state != "running":
            return job
        done, frames = self.progress.get(job_id) or (0, job.frames)
        return dataclasses.replace(job, progress=done, frames=frames)

    def files(self, job_id: str) -> tuple[Path, Path] | None:
        """The published clip and sidecar of a done job, else None."""
        job = self.get(job_id)
        if job is None or job.state != "done":
            return None
        return clip_files(self.clips, job_id)

    def delete(self, job_id: str) -> bool:
        if not valid_id(job_id):
            return False
        job = self.store.delete(job_id)
        if job is None:
            return False
        self._remove_files(job)
        return True

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: recent job time x jobs ahead / parallelism."""
        counts = self.store.counts()
        if not self._recent_seconds:
            return DEFAULT_RETRY_SECONDS
        mean = sum(self._recent_seconds) / len(self._recent_seconds)
        parallel = max(1, len(self.workers) * self.config.slots)
        waiting = counts["queued"] + counts["running"] - self.config.max_queue + 1
        return max(1, min(600, math.ceil(mean * max(1, waiting) / parallel)))

    def _job_ended(self, job: Job, result: ClipResult | None, exc: BaseException | None) -> None:
        self.progress.clear(job.id)
        if exc is None and result is not None and self.store.finish(job.id, result.frames):
            self.metrics.count("done")
            self.metrics.job_latency(time.time() - job.submitted)
            self._recent_seconds = [*self._recent_seconds[-19:], time.time() - (job.started
                                                                               or job.submitted)]
        elif exc is not None and self.store.fail(job.id, failure_reason(exc)):
            self.metrics.count("failed")
        if self.store.get(job.id) is None:  # deleted while it ran: leave nothing behind
            self._remove_files(job)

    def _remove_files(self, job: Job) -> None:
        for path in (*clip_files(self.clips, job.id), self.uploads / job.photo):
            path.unlink(missing_ok=True)

    def expire(self, now: float | None = None) -> list[str]:
        """Delete jobs (and their files) finished more than the TTL before `now`."""
        cutoff = (time.time() if now is None else now) - self.config.ttl_seconds
        gone = []
        for job in self.store.finished_before(cutoff):
            if self.store.delete(job.id) is not None:
                self._remove_files(job)
                gone.append(job.id)
        return gone

    def _expire_loop(self) -> None:
        interval = max(0.2, min(60.0, self.config.ttl_seconds / 4))
        while not self._stop.wait(interval):
            self.expire()


def _exclusive_lock(path: Path) -> IO[str]:
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BadInputError("another service is using this data directory", path=path.parent,
                            hint="stop it, or pass another --data-dir") from None
    return handle


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_upload(source: IO[bytes], folder: Path, limit: int) -> Path:
    """Copy an upload into a staging file beside the uploads (synced); UploadError when over
    the byte limit (counted here too: the body limit also counts the form's other fields)."""
    import tempfile

    from discriminator_cli.serve.limits import too_large

    fd, name = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=folder)
    staging = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            copied = 0
            while chunk := source.read(1 << 20):
                copied += len(chunk)
                if copied > limit:
                    raise too_large(limit)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return staging
