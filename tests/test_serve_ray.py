"""`discriminator serve --ray`: the same app on Ray Serve (a local 2-CPU Ray instance, two model
replicas with `@serve.batch`): the same jobs give the same clips, frame for frame, as the local
mode; the clips are signed and carry their sidecar; the API and metrics are the local mode's."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
pytestmark = [pytest.mark.ray, pytest.mark.serve, pytest.mark.lipsync]

from fastapi.testclient import TestClient  # noqa: E402

from discriminator_cli.provenance.identity import resolve_identity  # noqa: E402
from discriminator_cli.provenance.verify import verify_clip  # noqa: E402
from discriminator_cli.serve.app import create_app  # noqa: E402
from discriminator_cli.serve.local import build_service, lifespan_for  # noqa: E402
from discriminator_cli.serve.service import ServiceConfig  # noqa: E402
from tests.helpers import start_local_ray  # noqa: E402
from tests.serve_helpers import SPEECH, decoded_frames, metric, wait_for  # noqa: E402

REPLICAS = 2
# (photo, narration, box): detection on the full photo and two given boxes; 7- and 2-frame
# narrations in chunks of at most 4 frames, so every model call holds 2 to 8 rows: on one
# thread oneDNN's fp32 convolutions give the same rows for any batch of 2 to 15 (not 1, not 16+).
JOBS = [("astronaut", "intro", None), ("face", "intro", "16,16,112,112"),
        ("face", "short", "20,12,116,108"), ("astronaut", "short", None)]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """One local 2-CPU instance for the module (reused if another module already started one)."""
    started = start_local_ray()
    yield
    from ray import serve

    serve.shutdown()
    if started:
        ray.shutdown()


def _config(assets: dict[str, Path], data_dir: Path) -> ServiceConfig:
    return ServiceConfig(
        checkpoint=assets["checkpoint"],
        narrations={"intro": assets["narration"], "short": assets["short"],
                    "long": SPEECH},
        data_dir=data_dir, precision="fp32", detector="lbp", slots=2, batch_size=4,
        signing=resolve_identity(None, None))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _submit_all(client: Any, assets: dict[str, Path]) -> list[str]:
    ids = []
    for photo, narration, box in JOBS:
        form = {"narration": narration} | ({"box": box} if box else {})
        response = client.post("/v1/clips", data=form,
                               files={"photo": (assets[photo].name, assets[photo].read_bytes())})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


@pytest.fixture(scope="module")
def ray_service(ray_instance: None, serve_assets: dict[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from discriminator_cli.serve.ray_app import RayPlan, run_ray

    data, port = tmp_path_factory.mktemp("ray-data"), _free_port()
    stop, ready = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            run_ray(_config(serve_assets, data), RayPlan(replicas=REPLICAS, replica_cpus=1),
                    "auto", "127.0.0.1", port, on_ready=ready.set, stop=stop)
        except BaseException as exc:  # reported by the waiting test
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="ray-serve", daemon=True)
    thread.start()
    assert ready.wait(600), "the Ray application never became ready"
    assert not failed, failed
    yield f"http://127.0.0.1:{port}", data
    stop.set()
    thread.join(timeout=120)


def test_ray_mode_makes_the_local_modes_clips(ray_service: tuple[str, Path],
                                             serve_assets: dict[str, Path],
                                             tmp_path: Path) -> None:
    import torch
    from ray import serve

    url, ray_data = ray_service
    with httpx.Client(base_url=url, timeout=60) as client:
        ids = _submit_all(client, serve_assets)  # at once: chunks of 4 viewers meet
        states = [wait_for(client, i, timeout=600) for i in ids]
        assert [s["state"] for s in states] == ["done"] * len(JOBS), states
        ray_clips = []
        for job_id in ids:
            clip = client.get(f"/v1/clips/{job_id}.mp4", headers={"Range": "bytes=0-"})
            assert clip.status_code == 206 and clip.headers["content-type"] == "video/mp4"
            path = tmp_path / f"ray-{job_id}.mp4"
            path.write_bytes(clip.content)
            ray_clips.append(path)
            sidecar = client.get(f"/v1/clips/{job_id}.json").json()
            assert sidecar["synthetic"] is True and sidecar["c2pa"]["c2pa_manifest"]
        text = client.get("/metrics").text
        assert metric(text, "discriminator_frames_total") == sum(s["frames"] for s in states)
        assert metric(text, "discriminator_batch_viewers_count") >= 1
        assert client.get("/v1/narrations").json() == {"narrations": ["intro", "long", "short"]}
        assert client.get("/v1/clips/" + "A" * 22).status_code == 404
    report = verify_clip(ray_data / "clips" / f"{ids[0]}.mp4")
    assert report.ok, report.as_dict()  # signed, sidecar and inputs match
    model = serve.status().applications["discriminator"].deployments["LipSyncModel"]
    assert model.replica_states.get("RUNNING") == REPLICAS

    # The local mode, its model on one thread like each replica's (oneDNN's fp32 convolutions
    # may round differently with another thread count).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        service = build_service(_config(serve_assets, tmp_path / "local"))
        with TestClient(create_app(service, lifespan=lifespan_for(service))) as local:
            deadline = time.monotonic() + 300
            while local.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            local_ids = _submit_all(local, serve_assets)
            for local_id, ray_clip, state in zip(local_ids, ray_clips, states, strict=True):
                assert wait_for(local, local_id, timeout=600)["state"] == "done"
                local_clip = service.clips / f"{local_id}.mp4"
                assert (decoded_frames(local_clip) == decoded_frames(ray_clip)).all()
                local_box = json.loads((service.clips / f"{local_id}.mp4.json").read_text())
                ray_box = json.loads((ray_data / "clips" / f"{ray_clip.stem[4:]}.mp4.json")
                                     .read_text())
                assert local_box["inputs"]["face"]["box"] == ray_box["inputs"]["face"]["box"]
                assert local_box["output"]["frames"] == state["frames"]
    finally:
        torch.set_num_threads(threads)


class _DeadThenLive:
    """A stand-in for a Ray Serve handle whose first `predict` call dies with its replica."""

    def __init__(self, deaths: int) -> None:
        self.deaths, self.calls = deaths, 0
        self.predict = self

    def remote(self, chunk: tuple[Any, Any]) -> Any:
        from ray.exceptions import ActorDiedError

        from discriminator_cli.serve.ray_app import BatchNote

        self.calls += 1
        dies = self.calls <= self.deaths
        mels = chunk[0]

        class Response:
            def result(self, timeout_s: float | None = None) -> Any:
                if dies:
                    raise ActorDiedError()
                return mels * 2, BatchNote(f"b{id(self)}", 1, len(mels))
        return Response()


def test_a_chunk_whose_replica_died_is_sent_again() -> None:
    import numpy as np
    from ray.exceptions import RayActorError

    from discriminator_cli.serve.metrics import Metrics
    from discriminator_cli.serve.ray_app import REPLICA_RETRIES, RayModelClient
    from discriminator_cli.serve.worker import EngineInfo

    def client(handle: _DeadThenLive) -> RayModelClient:
        info = EngineInfo("fp32", "cpu", Path("wav2lip.pth"), "0" * 64)
        return RayModelClient(handle, Metrics(), info)

    mels = np.ones((3, 80, 16), np.float32)
    handle = _DeadThenLive(deaths=REPLICA_RETRIES - 1)
    model = client(handle)
    assert (model.submit(mels, mels).result() == mels * 2).all()
    assert handle.calls == REPLICA_RETRIES and model.metrics.resends == REPLICA_RETRIES - 1
    assert "discriminator_model_resends_total 2" in model.metrics.render({}, ready=True)

    always_dead = client(_DeadThenLive(deaths=REPLICA_RETRIES))
    with pytest.raises(RayActorError):
        always_dead.submit(mels, mels).result()


def _replica_pids(deployment: str) -> list[int]:
    """Live replica processes of a deployment: Ray titles each `ray::ServeReplica:APP:NAME`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if title.startswith(f"ray::ServeReplica:discriminator:{deployment}"):
                pids.append(int(entry.name))
    return sorted(pids)


def test_killing_a_model_replica_mid_job_loses_nothing(ray_service: tuple[str, Path],
                                                      serve_assets: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """SIGKILL of one model replica while a job's chunks are on it: the chunks it held are sent
    again, the job finishes with the frames a fault-free run gives, Serve restarts the replica."""
    import os
    import signal

    from ray import serve

    url, ray_data = ray_service
    photo = serve_assets["astronaut"]
    with httpx.Client(base_url=url, timeout=60) as client:
        def submit() -> str:
            response = client.post("/v1/clips", data={"narration": "long"},
                                   files={"photo": (photo.name, photo.read_bytes())})
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        before = metric(client.get("/metrics").text, "discriminator_model_resends_total")
        job_id = submit()
        deadline = time.monotonic() + 300
        while True:  # kill once the job is well under way: its chunks are on the replicas
            status = client.get(f"/v1/clips/{job_id}").json()
            assert status["state"] in ("queued", "running"), status
            if status["state"] == "running" and (status["progress"] or 0) >= 0.15:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        replicas = _replica_pids("LipSyncModel")  # Ray's state API needs its dashboard
        assert len(replicas) == REPLICAS, replicas
        os.kill(replicas[0], signal.SIGKILL)
        faulted = wait_for(client, job_id, timeout=600)
        assert faulted["state"] == "done", faulted
        text = client.get("/metrics").text
        assert metric(text, "discriminator_model_resends_total") > before

        deadline = time.monotonic() + 300  # Serve replaces the dead replica
        while serve.status().applications["discriminator"].deployments[
                "LipSyncModel"].replica_states.get("RUNNING") != REPLICAS:
            assert time.monotonic() < deadline, "the killed replica was never replaced"
            time.sleep(1.0)
        again = submit()
        assert wait_for(client, again, timeout=600)["state"] == "done"
        clean = tmp_path / "clean.mp4"
        clean.write_bytes(client.get(f"/v1/clips/{again}.mp4").content)
    assert (decoded_frames(ray_data / "clips" / f"{job_id}.mp4") == decoded_frames(clean)).all()
