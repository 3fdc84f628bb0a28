"""The real `discriminator serve` process: SIGKILL with jobs queued and running, then restart
(every job completes once, finished clips are still served); a client that disconnects
mid-upload leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytestmark = [pytest.mark.serve, pytest.mark.lipsync]

from tests.serve_helpers import metric, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(assets: dict[str, Path], data: Path, port: int) -> subprocess.Popen[bytes]:
    # One viewer at a time, one frame per chunk: a running job stays running for 7 model
    # calls, so the kill lands mid-job while later jobs wait.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "discriminator_cli", "serve", "--checkpoint",
         str(assets["checkpoint"]), "--narration", f"intro={assets['narration']}",
         "--data-dir", str(data), "--port", str(port), "--precision", "fp32",
         "--detector", "lbp", "--batch-size", "1", "--slots", "1", "--quiet"],
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
def assets(serve_assets: dict[str, Path]) -> dict[str, Path]:
    return serve_assets


def _states(data: Path) -> dict[str, list[str]]:
    """The store as the killed process left it (state -> ids)."""
    with contextlib.closing(sqlite3.connect(data / "jobs.sqlite")) as db:
        rows = db.execute("SELECT state, id FROM jobs ORDER BY seq").fetchall()
    found: dict[str, list[str]] = {}
    for state, job_id in rows:
        found.setdefault(state, []).append(job_id)
    return found


def test_sigkill_with_jobs_queued_and_running_then_restart(assets: dict[str, Path],
                                                          tmp_path: Path) -> None:
    data, port = tmp_path / "data", _free_port()
    process = _start(assets, data, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        _ready(client, process)
        ids = []
        for _ in range(4):
            response = client.post("/v1/clips", data={"narration": "intro", "box":
                                                      "16,16,112,112"},
                                   files={"photo": ("f.jpg", assets["face"].read_bytes())})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        first = wait_for(client, ids[0], timeout=300)
        assert first["state"] == "done"
        deadline = time.monotonic() + 120
        while not (client.get(f"/v1/clips/{ids[1]}").json().get("progress") or 0) > 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        finished_clip = data / "clips" / f"{ids[0]}.mp4"
        before = finished_clip.stat()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        at_kill = _states(data)  # read after the kill: exactly what the dead process left
        assert at_kill["done"][0] == ids[0] and len(at_kill["running"]) == 1, at_kill
        assert at_kill["queued"], at_kill
        # A job whose clip and sidecar were published just before the kill is done at restart
        # without running again; every other job runs (again) exactly once.
        unfinished = sum(not (data / "clips" / f"{i}.mp4.json").exists()
                         for i in at_kill["running"] + at_kill["queued"])

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
        assert 'discriminator_jobs{state="done"} 4' in metrics
        # Only the unfinished jobs ran again, each once: 7 frames apiece.
        assert metric(metrics, "discriminator_frames_total") == 7 * unfinished
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


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_the_service_cleanly_and_keeps_its_jobs(
        assets: dict[str, Path], tmp_path: Path, how: signal.Signals) -> None:
    # How systemd, docker stop or a terminal stop a service: uvicorn shuts down, then the
    # process exits 0 (not "interrupted"), and an accepted job runs at the next start.
    data, port = tmp_path / "data", _free_port()
    process = _start(assets, data, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        _ready(client, process)
        response = client.post("/v1/clips", data={"narration": "intro", "box": "16,16,112,112"},
                               files={"photo": ("f.jpg", assets["face"].read_bytes())})
        assert response.status_code == 202, response.text
        process.send_signal(how)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert b"Traceback" not in stderr and b"interrupted" not in stderr
        process = _start(assets, data, port)
        _ready(client, process)
        assert wait_for(client, response.json()["id"], timeout=300)["state"] == "done"
    finally:
        process.kill()
        process.wait(timeout=30)
        client.close()


@pytest.mark.parametrize("content", [b"\x00not a torch file" * 64, b"PK\x03\x04truncated zip"])
def test_a_checkpoint_that_does_not_load_stops_the_service_with_one_line(
        assets: dict[str, Path], tmp_path: Path, content: bytes) -> None:
    # The model loads after the HTTP server is up (so /healthz answers meanwhile); a load that
    # fails must end the process with the reason, not leave it answering 503 forever.
    bad = tmp_path / "wav2lip.pth"
    bad.write_bytes(content)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "discriminator_cli", "serve", "--checkpoint", str(bad),
         "--narration", f"intro={assets['narration']}", "--data-dir", str(tmp_path / "data"),
         "--port", str(_free_port()), "--detector", "lbp"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0], done.stderr
