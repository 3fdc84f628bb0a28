"""The Ray engine: each chunk of each film is a Ray task; the driver (this process) keeps the
cache, joins, encodes the audio, packages, validates and publishes.

- Workers return their encoded chunks through the object store, so only the SOURCES must be
  readable by them: a path on shared storage (same path on every node), or, with
  `ship_sources`, the file itself put in the object store once per film (each node then keeps
  one local copy for all the chunks it runs).
- A worker killed mid-chunk: Ray reruns the task (`max_retries`); chunks are idempotent.
- Ctrl-C (or a cancelled batch): every pending task is cancelled (its ffmpeg killed with the
  worker) and nothing is published.
Every node needs this package and its ffmpeg (`pip install "discriminator-cli[ray]"`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from discriminator_cli.encode.chunked import ChunkDone, ChunkedEncoder, ChunkTask, encode_chunk
from discriminator_cli.encode.engine import EncodeContext
from discriminator_cli.errors import DiscriminatorError, MissingExtraError, ToolFailedError
from discriminator_cli.runner import CommandRunner

TASK_RETRIES = 3
WAIT_SECONDS = 0.5  # how often the driver looks up from ray.wait (Ctrl-C, cancellation)
SHIPPED_DIR = "discriminator-ray-sources"

_init_lock = threading.Lock()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("the ray engine needs Ray",
                                hint='pip install "discriminator-cli[ray]" (on every node)'
                                ) from None
    return ray


def connect(address: str | None) -> Any:
    """Join the cluster at `address` (or start Ray on this machine) unless already joined."""
    ray = _ray()
    with _init_lock:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="warning")
    return ray


def _shipped_copy(film: str, data: bytes, suffix: str) -> Path:
    """The node-local copy of a shipped source (written once per node, by rename)."""
    folder = Path(tempfile.gettempdir()) / SHIPPED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{film}{suffix}"
    if not target.is_file() or target.stat().st_size != len(data):
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".part-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, target)
    return target


def run_chunk_on_worker(task: ChunkTask, shipped: bytes | None) -> dict[str, bytes]:
    """The body of a Ray task: encode one chunk, return each rung's chunk file as bytes."""
    input_path = None
    if shipped is not None:
        input_path = _shipped_copy(task.film, shipped, Path(task.source.path).suffix)
    work = Path(tempfile.mkdtemp(prefix="discriminator-chunk-"))
    try:
        outputs = encode_chunk(task, work, CommandRunner(), input_path=input_path)
        return {name: path.read_bytes() for name, path in outputs.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


_remote: Any = None


def _remote_function(ray: Any) -> Any:
    global _remote
    if _remote is None:
        # retry_exceptions stays off: a chunk that fails in ffmpeg fails the same way again;
        # only a lost worker (killed, node gone) is retried.
        _remote = ray.remote(max_retries=TASK_RETRIES, num_cpus=1)(run_chunk_on_worker)
    return _remote


class RayEncoder(ChunkedEncoder):
    name = "ray"

    def __init__(self, chunk_seconds: float, *, address: str | None = None,
                 ship_sources: bool = False) -> None:
        super().__init__(chunk_seconds)
        self.address = address
        self.ship_sources = ship_sources

    def run_chunks(self, ctx: EncodeContext, tasks: list[ChunkTask], stored: ChunkDone,
                   audio_argv: list[str] | None) -> None:
        if ctx.runner.dry_run:
            super().run_chunks(ctx, tasks, stored, audio_argv)
            return
        ray = connect(self.address)
        remote = _remote_function(ray)
        shipped = None
        if self.ship_sources and tasks:
            shipped = ray.put(Path(ctx.source.path).read_bytes())
        pending = {remote.remote(task, shipped): task for task in tasks}
        try:
            # The audio is encoded here while the cluster encodes the video chunks.
            if audio_argv is not None:
                ctx.runner.run(audio_argv, what="ffmpeg audio", path=ctx.source.path)
            while pending:
                self.check_interrupted()
                done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                for ref in done:
                    task = pending.pop(ref)
                    self._store(ctx, task, self._result(ray, ref, task), stored)
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise

    def _result(self, ray: Any, ref: Any, task: ChunkTask) -> dict[str, bytes]:
        try:
            result: dict[str, bytes] = ray.get(ref)
            return result
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, DiscriminatorError):
                raise cause from None
            raise ToolFailedError(f"{task.label} failed on a Ray worker: {cause or exc}",
                                  argv=[], returncode=1) from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
            raise ToolFailedError(f"{task.label}: its Ray worker died {TASK_RETRIES + 1} times "
                                  f"({type(exc).__name__})", argv=[], returncode=1,
                                  hint="check the nodes' memory and logs (ray status)"
                                  ) from None

    def _store(self, ctx: EncodeContext, task: ChunkTask, result: dict[str, bytes],
               stored: ChunkDone) -> None:
        with tempfile.TemporaryDirectory(dir=ctx.work, prefix="ray-") as name:
            files = {}
            for rung, data in result.items():
                files[rung] = Path(name) / f"{rung}.mp4"
                files[rung].write_bytes(data)
            stored(task, files)

