"""The real `discriminator serve` process: SIGKILL with jobs queued and running, then restart
(every job completes once, finished clips are still served); a client that disconnects
mid-upload leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytestmark = [pytest.mark.serve, pytest.mark.lipsync]

from tests.serve_helpers import make_assets, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(assets: dict[str, Path], data: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "discriminator_cli", "serve", "--checkpoint",
         str(assets["checkpoint"]), "--narration", f"intro={assets['narration']}",
         "--data-dir", str(data), "--port", str(port), "--precision", "fp32",
         "--detector", "lbp", "--batch-size", "4", "--slots", "2", "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _ready(client: httpx.Client, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("the service never became ready")


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_assets(tmp_path_factory.mktemp("durable-assets"), narration_seconds=1.0)


def test_sigkill_with_jobs_queued_and_running_then_restart(assets: dict[str, Path],
                                                          tmp_path: Path) -> None:
    data, port = tmp_path / "data", _free_port()
    process = _start(assets, data, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        _ready(client, process)
        ids = []
        for _ in range(6):
            response = client.post("/v1/clips", data={"narration": "intro", "box":
                                                      "16,16,112,112"},
                                   files={"photo": ("f.jpg", assets["face"].read_bytes())})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        first = wait_for(client, ids[0], timeout=300)
        assert first["state"] == "done"
        deadline = time.monotonic() + 120
        while not any(client.get(f"/v1/clips/{i}").json()["state"] == "running"
                      for i in ids[1:]):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        states = {i: client.get(f"/v1/clips/{i}").json()["state"] for i in ids}
        assert "queued" in states.values() and "running" in states.values(), states
        finished_clip = data / "clips" / f"{ids[0]}.mp4"
        before = finished_clip.stat()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

        process = _start(assets, data, port)
        _ready(client, process)
        for job_id in ids:
            assert wait_for(client, job_id, timeout=300)["state"] == "done"
            clip = client.get(f"/v1/clips/{job_id}.mp4")
            assert clip.status_code == 200 and len(clip.content) > 1000
        after = finished_clip.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert not list((data / "clips").glob(".staging-*"))
        metrics = client.get("/metrics").text
        assert 'discriminator_jobs{state="done"} 6' in metrics
    finally:
        process.kill()
        process.wait(timeout=30)
        client.close()


def test_a_client_that_disconnects_mid_upload_leaves_nothing(assets: dict[str, Path],
                                                            tmp_path: Path) -> None:
    data, port = tmp_path / "data", _free_port()
    process = _start(assets, data, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        _ready(client, process)
        body = assets["astronaut"].read_bytes()
        head = (b"--b\r\nContent-Disposition: form-data; name=\"narration\"\r\n\r\nintro\r\n"
                b"--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\n"
                b"Content-Type: image/png\r\n\r\n")
        length = len(head) + len(body) + len(b"\r\n--b--\r\n")
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(b"POST /v1/clips HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/"
                        b"form-data; boundary=b\r\nContent-Length: " + str(length).encode()
                        + b"\r\n\r\n" + head + body[: len(body) // 2])
            time.sleep(0.5)
        time.sleep(1.0)
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics").text
        assert 'discriminator_jobs_total{state="accepted"} 0' in metrics
        assert list((data / "uploads").iterdir()) == []
        accepted = client.post("/v1/clips", data={"narration": "intro"},
                               files={"photo": ("a.png", body)})
        assert accepted.status_code == 202  # and the service goes on
    finally:
        process.kill()
        process.wait(timeout=30)
        client.close()
