"""Ray mode: the same application as a Ray Serve application (`discriminator serve --ray`).

Two deployments:
- `LipSyncModel`, N replicas across the cluster's nodes, each holding one hot engine. Its
  `predict` is a `@serve.batch` handler: chunks that different viewers' drivers sent
  (one `(mels, face)` per call) are run as one `engine.predict_groups` call, up to
  `max_frames` frames, exactly what `worker.BatchingModel` does in local mode.
- `LipSyncIngress`, one replica, pinned to the node that ran `discriminator serve --ray`: the
  FastAPI app of `app.create_app` (built at replica start by `__serve_build_asgi_app__`, so the
  routes are the local mode's own) over the same `Service`: the SQLite store, uploads and
  clips in the data directory on that node, detection, pasting, encoding and C2PA signing.
  Its worker talks to the model replicas through `RayModelClient`, the `ModelClient` seam.

The store keeps one writer (the ingress), so its semantics are the local mode's: a job is
synced to SQLite before its 202, an interrupted job runs again when the ingress restarts.
Model replicas hold no state: a chunk whose replica died is sent again (to a live replica,
while Ray Serve starts a new one). Each model replica reads the checkpoint from the same path.
Needs the `ray` extra (`ray[serve]`); the local mode never imports this module (importing it
imports Ray; the CLI turns a missing Ray into a MissingExtraError).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from ray import serve

from discriminator_cli.serve.metrics import Metrics
from discriminator_cli.serve.service import ServiceConfig
from discriminator_cli.serve.worker import GATHER_SECONDS, EngineInfo, ModelClient

APP_NAME = "discriminator"
# Calls a model replica accepts at once: enough for every viewer's chunks in flight to wait in
# its batch queue (Ray Serve's default of 5 would cap a batch at 5 chunks).
MAX_ONGOING_PER_REPLICA = 64
REPLICA_RETRIES = 3  # sends of one chunk when its replica dies under it


@dataclasses.dataclass(frozen=True)
class BatchNote:
    """What a model call was: returned with each chunk so the ingress counts each batch once."""

    key: str
    viewers: int
    frames: int


def _frames(requests: list[tuple[np.ndarray, np.ndarray]]) -> int:
    return sum(len(mels) for mels, _ in requests)


@serve.deployment(name="LipSyncModel", max_ongoing_requests=MAX_ONGOING_PER_REPLICA)
class LipSyncModel:
    """One hot engine; `predict` runs the chunks of many calls as one model call."""

    def __init__(self, checkpoint: str, precision: str, device: str, max_frames: int,
                 threads: int) -> None:
        from discriminator_cli.lipsync.engine import load_engine

        # The replica's Ray CPUs are its cores, run as lanes (see lipsync/engine.py).
        self.engine = load_engine(checkpoint, precision, device, batch_size=max_frames,
                                  cores=threads)
        self._ids = itertools.count()
        self._tag = secrets.token_hex(4)
        self.predict.set_max_batch_size(max_frames)  # in frames: see batch_size_fn

    def info(self) -> EngineInfo:
        return EngineInfo.of(self.engine)

    @serve.batch(max_batch_size=128, batch_wait_timeout_s=GATHER_SECONDS,
                 batch_size_fn=_frames)
    async def predict(self, requests: list[tuple[np.ndarray, np.ndarray]]
                      ) -> list[tuple[np.ndarray, BatchNote]]:
        # In a worker thread: the replica's event loop keeps queueing the next batch (and
        # answering health checks) while this one runs; batches still run one at a time.
        mouths = await asyncio.to_thread(self.engine.predict_groups, requests)
        viewers = len({face.tobytes() for _, face in requests})
        note = BatchNote(f"{self._tag}-{next(self._ids)}", viewers, _frames(requests))
        return [(mouth, note) for mouth in mouths]


class RayModelClient:
    """The `ModelClient` of the ingress's worker: each chunk is one call to the model
    deployment; Ray Serve routes it to a replica, whose `@serve.batch` joins it to others."""

    def __init__(self, handle: Any, metrics: Metrics, info: EngineInfo | None = None) -> None:
        self.handle, self.metrics = handle, metrics
        self.info: EngineInfo = info or handle.info.remote().result()
        self._seen: deque[str] = deque(maxlen=4096)
        self._lock = threading.Lock()

    def submit(self, mels: np.ndarray, face: np.ndarray) -> _RayResult:
        return _RayResult(self, (mels, face))

    def record(self, note: BatchNote) -> None:
        with self._lock:
            if note.key in self._seen:
                return
            self._seen.append(note.key)
        self.metrics.batch(note.viewers, note.frames)


class _RayResult:
    """One chunk's call. The model step is pure (same chunk, same mouths), so a chunk whose
    replica died (node lost, process killed) is sent again: Ray Serve routes it to a live
    replica while it replaces the dead one; the job goes on instead of failing."""

    def __init__(self, client: RayModelClient, chunk: tuple[np.ndarray, np.ndarray]) -> None:
        self.client, self.chunk = client, chunk
        self.response = client.handle.predict.remote(chunk)

    def result(self, timeout: float | None = None) -> np.ndarray:
        from ray.exceptions import RayActorError

        for attempt in range(1, REPLICA_RETRIES + 1):
            try:
                mouths, note = self.response.result(timeout_s=timeout)
                break
            except RayActorError:
                if attempt == REPLICA_RETRIES:
                    raise
                self.client.metrics.resent()
                self.response = self.client.handle.predict.remote(self.chunk)
        self.client.record(note)
        return mouths


@serve.deployment(name="LipSyncIngress", num_replicas=1, max_ongoing_requests=1000)
@serve.ingress()
class LipSyncIngress:
    """The HTTP app and the `Service` (store, worker, expiry) in one replica; the app is the
    local mode's own, built here so that its routes find this replica's service."""

    def __init__(self, config: ServiceConfig, model: Any) -> None:
        from discriminator_cli.serve.local import build_service

        def clients(metrics: Metrics) -> list[ModelClient]:
            return [RayModelClient(model, metrics)]

        self.service = build_service(config, clients)

    def __serve_build_asgi_app__(self) -> Any:
        from discriminator_cli.serve.app import create_app
        from discriminator_cli.serve.local import lifespan_for

        return create_app(self.service, lifespan=lifespan_for(self.service))


@dataclasses.dataclass(frozen=True)
class RayPlan:
    replicas: int = 2
    replica_cpus: float = 1.0   # Ray CPUs per model replica; its torch threads follow


def application(config: ServiceConfig, plan: RayPlan, ingress_node: str | None) -> Any:
    """The bound application: N model replicas and one ingress (on `ingress_node`'s IP)."""
    max_frames = config.batch_size * config.slots
    # The decorators made Deployments of the classes (typed as the classes for mypy).
    model_deployment: Any = LipSyncModel
    ingress_deployment: Any = LipSyncIngress
    model = model_deployment.options(
        num_replicas=plan.replicas, ray_actor_options={"num_cpus": plan.replica_cpus},
    ).bind(str(config.checkpoint.absolute()), config.precision, config.device, max_frames,
           max(1, int(plan.replica_cpus)))
    # The ingress's own work (detect once, paste, encode, sign) is a few percent of a clip's
    # CPU: it takes no Ray CPU slot, so every slot can hold a model replica. It is pinned to
    # the node that holds the data directory.
    options: dict[str, Any] = {"num_cpus": 0}
    if ingress_node:
        options["resources"] = {f"node:{ingress_node}": 0.001}
    # Every viewer in flight on any replica is one slot of the ingress's single worker.
    ingress_config = dataclasses.replace(config, workers=1, slots=config.slots * plan.replicas)
    return ingress_deployment.options(ray_actor_options=options).bind(ingress_config, model)


def run_ray(config: ServiceConfig, plan: RayPlan, address: str, host: str, port: int,
            on_ready: Callable[[], None] | None = None,
            stop: threading.Event | None = None) -> None:
    """Join Ray at `address` (Ray's own meanings: "auto" the cluster this machine joined with
    `ray start`, "local" a new instance here, or HOST:PORT), deploy, wait until `stop` is set
    or Ctrl-C, then remove the application (and stop the instance if it was "local")."""
    import ray

    from discriminator_cli.serve.local import check_checkpoint

    check_checkpoint(config)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level="warning")
    try:
        serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly",
                    logging_config={"log_level": "WARNING"})
        app = application(config, plan, ray.util.get_node_ip_address())
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        wait_ready(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}")
        if on_ready:
            on_ready()
        waiter = stop or threading.Event()
        while not waiter.wait(1.0):
            pass
    finally:
        serve.delete(APP_NAME)
        if started_here and address == "local":
            serve.shutdown()
            ray.shutdown()


def wait_ready(url: str, timeout: float = 300.0) -> None:
    """Poll /readyz until the ingress answers 200 (used by callers that deploy in a thread)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become ready in {timeout:g} s")

