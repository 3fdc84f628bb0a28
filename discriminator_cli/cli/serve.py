"""`discriminator serve`: the lip-sync service (one machine with uvicorn, or `--ray`: the same
app as a Ray Serve application with N model replicas)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from discriminator_cli.cli.options import JsonOption, QuietOption
from discriminator_cli.cli.output import info
from discriminator_cli.errors import BadInputError, MissingExtraError
from discriminator_cli.lipsync import DetectorName, Device, Precision
from discriminator_cli.provenance import provenance_imports

DEFAULT_DATA_DIR = Path("serve-data")
RAY_HINT = "pip install 'discriminator-cli[lipsync,serve,ray]' (on every node)"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    checkpoint: Annotated[Path, typer.Option(help="wav2lip.pth, or a file from `discriminator "
                                             "quantize`.")],
    narration: Annotated[list[str], typer.Option(help="NAME=FILE, repeatable: the narrations "
                                                 "clients may ask for.")],
    host: Annotated[str, typer.Option(help="Address to bind (only this machine by "
                                      "default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8080,
    data_dir: Annotated[Path, typer.Option(help="Job store, uploads and clips.")]
    = DEFAULT_DATA_DIR,
    workers: Annotated[str, typer.Option(help="Model instances: auto or a number.")] = "auto",
    max_queue: Annotated[int, typer.Option(min=1, help="Jobs waiting or running before "
                                           "429.")] = 64,
    slots: Annotated[int, typer.Option(min=1, help="Viewers in flight per worker, sharing "
                                       "model batches.")] = 4,
    token_file: Annotated[Path | None, typer.Option(help="Require 'Authorization: Bearer' "
                                                    "with the token in this file.")] = None,
    cors_origin: Annotated[str | None, typer.Option(help="The one web origin allowed to call "
                                                    "the API from a browser.")] = None,
    ttl: Annotated[float, typer.Option(min=1, help="Hours before a finished clip is "
                                       "deleted.")] = 24.0,
    max_upload_mb: Annotated[float, typer.Option(min=0.1, help="Largest photo upload.")] = 10.0,
    precision: Annotated[Precision, typer.Option(help="auto: bf16 where the CPU has it, else "
                                                 "fp32.")] = "auto",
    device: Annotated[Device, typer.Option(help="Where the models run.")] = "cpu",
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per viewer chunk.")] = 32,
    detector: Annotated[DetectorName, typer.Option(help="auto: S3FD if its weights are on "
                                                   "disk, else LBP.")] = "auto",
    detector_weights: Annotated[Path | None, typer.Option(help="S3FD weights.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Mel cache.")] = None,
    sign_cert: Annotated[Path | None, typer.Option(help="Certificate chain (PEM: leaf, then its "
                                                   "CA) for the clips' C2PA manifests; "
                                                   "default: signing.toml, else a local "
                                                   "identity.")] = None,
    sign_key: Annotated[Path | None, typer.Option(help="The --sign-cert leaf's private key "
                                                  "(PEM).")] = None,
    ray: Annotated[str | None, typer.Option(metavar="ADDRESS", help="Run on Ray Serve (extra "
                                            "'ray'): auto = the cluster this machine joined "
                                            "with `ray start`, local = a new Ray instance "
                                            "here, or HOST:PORT.")] = None,
    replicas: Annotated[int, typer.Option(min=1, help="--ray: model replicas across the "
                                          "cluster.")] = 2,
    replica_cpus: Annotated[float, typer.Option(min=0.1, help="--ray: Ray CPUs per model "
                                                "replica (its cores: model lanes).")] = 1.0,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Serve lip-sync over HTTP: POST a photo, get a synthetic-marked clip (API at /docs)."""
    from discriminator_cli.lipsync import lipsync_imports
    from discriminator_cli.serve import SERVE_HINT

    with lipsync_imports("discriminator serve"):
        import torch  # noqa: F401  # the lipsync extra, checked before the serve extra
    try:
        from discriminator_cli.serve.limits import UploadLimits
        from discriminator_cli.serve.local import parse_narrations, resolve_workers, run_local
        from discriminator_cli.serve.service import ServiceConfig
    except ImportError as exc:
        raise MissingExtraError(f"discriminator serve needs the serve extra ({exc.name} is not "
                                "installed)", hint=SERVE_HINT) from exc

    token = None
    if token_file is not None:
        if not token_file.is_file():
            raise BadInputError("token file not found", path=token_file, hint="check the path")
        token = token_file.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise BadInputError("the token is shorter than 16 characters", path=token_file,
                                hint="use e.g. `openssl rand -hex 32 > token`")
    with provenance_imports("discriminator serve"):
        from discriminator_cli.provenance.identity import resolve_identity
    signing = resolve_identity(sign_cert, sign_key)  # a bad certificate fails before the model
    config = ServiceConfig(
        checkpoint=checkpoint, narrations=parse_narrations(narration), data_dir=data_dir,
        workers=resolve_workers(workers, device), slots=slots, max_queue=max_queue,
        batch_size=batch_size, precision=precision, device=device, detector=detector,
        detector_weights=detector_weights, ttl_seconds=ttl * 3600.0,
        limits=UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024)), token=token,
        cors_origin=cors_origin, cache_dir=cache_dir, signing=signing)
    url = f"http://{host}:{port}"

    def on_ready() -> None:
        if json_output:
            print(json.dumps({"url": url, "ready": True, "data_dir": str(data_dir),
                              "narrations": sorted(config.narrations)}), flush=True)
        else:
            info(f"ready: {url} (API at {url}/docs); data in {data_dir}", quiet=quiet)

    if ray is not None:
        try:
            from discriminator_cli.serve.ray_app import RayPlan, run_ray
        except ImportError as exc:
            raise MissingExtraError(f"discriminator serve --ray needs Ray Serve ({exc.name} is "
                                    "not installed)", hint=RAY_HINT) from exc
        if not (quiet or json_output):
            info(f"starting {url} on Ray ({ray}): {replicas} model replica(s) of "
                 f"{replica_cpus:g} CPU, narrations {', '.join(sorted(config.narrations))}")
        with _stopped_by_signal(data_dir, quiet=quiet or json_output):
            run_ray(config, RayPlan(replicas, replica_cpus), ray, host, port,
                    on_ready=on_ready)
        return
    if not (quiet or json_output):
        info(f"starting {url}: {config.workers} worker(s), narrations "
             f"{', '.join(sorted(config.narrations))}; loading the model")
    with _stopped_by_signal(data_dir, quiet=quiet or json_output):
        run_local(config, host, port, on_ready=on_ready)


@contextlib.contextmanager
def _stopped_by_signal(data_dir: Path, *, quiet: bool) -> Iterator[None]:
    """Ctrl-C or SIGTERM (systemd, docker stop) is how a service is stopped: after uvicorn's
    graceful shutdown (it re-raises the signal once done) that is a clean exit, not an
    interrupted command. Jobs not finished wait in the store for the next start."""
    try:
        yield
    except KeyboardInterrupt:
        info(f"stopped; unfinished jobs run at the next start on {data_dir}", quiet=quiet)
