"""Local mode: one process, uvicorn in front, the model loaded once per worker (no Ray)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from discriminator_cli.errors import BadInputError
from discriminator_cli.lipsync.audio import frame_count
from discriminator_cli.lipsync.faces import FaceDetector, make_detector
from discriminator_cli.lipsync.mel_cache import get_or_compute_mel
from discriminator_cli.lipsync.pipeline import PHOTO_FPS
from discriminator_cli.serve.metrics import Metrics
from discriminator_cli.serve.service import Service, ServiceConfig
from discriminator_cli.serve.worker import BatchingModel, ModelClient, Narration

# One inference loop per 8 cores: its engine already spreads each batch over its cores (up to
# 4 lanes, the rest as intra-op threads); more loops only split the viewers between them.
CORES_PER_WORKER = 8


def resolve_workers(workers: str, device: str = "cpu") -> int:
    if workers == "auto":
        return 1 if device != "cpu" else max(1, (os.cpu_count() or 1) // CORES_PER_WORKER)
    if not workers.isdigit() or int(workers) < 1:
        raise BadInputError(f"--workers {workers!r} is not a positive number",
                            hint="use --workers auto or e.g. --workers 2")
    return int(workers)


def parse_narrations(items: list[str]) -> dict[str, Path]:
    """NAME=FILE pairs; names are what clients send, so they are checked here."""
    found: dict[str, Path] = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise BadInputError(f"--narration {item!r} is not NAME=FILE",
                                hint="e.g. --narration intro=narration/intro.wav")
        if not name.replace("-", "").replace("_", "").isalnum():
            raise BadInputError(f"narration name {name!r} may only hold letters, digits, - "
                                "and _", hint="rename it")
        if name in found:
            raise BadInputError(f"narration {name!r} is given twice", hint="name each once")
        path = Path(file)
        if not path.is_file():
            raise BadInputError("narration file not found", path=path, hint="check the path")
        found[name] = path
    if not found:
        raise BadInputError("no narration given", hint="add --narration NAME=FILE")
    return found


def load_narrations(files: dict[str, Path], cache_dir: Path | None) -> dict[str, Narration]:
    """Every narration's mel, computed (or read from the mel cache) once, at start."""
    narrations = {}
    for name, path in files.items():
        mel = get_or_compute_mel(path, cache_dir, fps=PHOTO_FPS).load()
        narrations[name] = Narration(name, path.absolute(), mel,
                                     frame_count(mel.shape[1], PHOTO_FPS))
    return narrations


def local_clients(config: ServiceConfig) -> Callable[[Metrics], list[ModelClient]]:
    def make(metrics: Metrics) -> list[ModelClient]:
        from discriminator_cli.lipsync.engine import load_engine, process_cores

        # A shared batch holds up to `slots` viewers' chunks; each worker's engine runs it on
        # its share of the cores (lanes: see lipsync/engine.py).
        cores = max(1, process_cores() // config.workers)
        return [BatchingModel(load_engine(config.checkpoint, config.precision, config.device,
                                          batch_size=config.batch_size * config.slots,
                                          cores=cores),
                              metrics, max_frames=config.batch_size * config.slots)
                for _ in range(config.workers)]
    return make


def check_checkpoint(config: ServiceConfig) -> None:
    """Load the model once here and drop it, before a cluster is asked for replicas that could
    never load it (Ray retries a failing replica instead of stopping)."""
    from discriminator_cli.lipsync.engine import load_engine

    load_engine(config.checkpoint, config.precision, config.device)


def build_service(config: ServiceConfig,
                  clients: Callable[[Metrics], list[ModelClient]] | None = None) -> Service:
    """Checks and the narrations' mels now; the model loads when the service starts."""
    if not config.checkpoint.is_file():
        raise BadInputError("checkpoint not found", path=config.checkpoint,
                            hint="pass --checkpoint wav2lip.pth")
    narrations = load_narrations(config.narrations, config.cache_dir)
    detector: FaceDetector = make_detector(config.detector, weights=config.detector_weights,
                                           device=config.device)
    return Service(config, narrations, detector, clients or local_clients(config))


def lifespan_for(service: Service, on_ready: Callable[[], None] | None = None,
                 on_failure: Callable[[BaseException], None] | None = None) -> Any:
    """Start the service in the background (so /healthz answers while the model loads);
    a start that fails (a checkpoint that does not load) goes to `on_failure`."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        def start() -> None:
            try:
                service.start()
            except BaseException as exc:
                if on_failure is None:
                    raise
                on_failure(exc)
                return
            if on_ready:
                on_ready()
        thread = threading.Thread(target=start, name="start", daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join()
            service.stop()
    return lifespan


def run_local(config: ServiceConfig, host: str, port: int,
              on_ready: Callable[[], None] | None = None) -> None:
    import uvicorn

    from discriminator_cli.serve.app import create_app

    service = build_service(config)
    failures: list[BaseException] = []

    def on_failure(exc: BaseException) -> None:
        # Without a model the service can never be ready: stop, and say why (the CLI's one
        # line), rather than answer 503 forever.
        failures.append(exc)
        server.should_exit = True

    app = create_app(service, lifespan=lifespan_for(service, on_ready, on_failure))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=5))
    server.run()
    if failures:
        raise failures[0]
