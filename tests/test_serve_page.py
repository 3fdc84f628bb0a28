"""The try-it page at `/` in headless Chromium (Debian chromium + playwright-core, as the preview
tests use): a viewer chooses a photo, picks the narration, watches the progress and plays the
clip; and the webcam path, with Chromium's fake camera showing the astronaut."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
pytestmark = [pytest.mark.browser, pytest.mark.serve, pytest.mark.lipsync]

from discriminator_cli.preview.players import find_chromium, find_node  # noqa: E402
from discriminator_cli.serve.app import create_app  # noqa: E402
from discriminator_cli.serve.local import build_service, lifespan_for  # noqa: E402
from discriminator_cli.serve.service import ServiceConfig  # noqa: E402
from tests.serve_helpers import NARRATION_SECONDS  # noqa: E402
from tests.test_serve_durability import _free_port  # noqa: E402

DRIVER = Path(__file__).with_name("serve_page.mjs")


def _node_modules() -> Path | None:
    # playwright-core alone is enough here (the players are not needed).
    import os

    for candidate in (os.environ.get("DISCRIMINATOR_PLAYERS_DIR"),
                      str(Path(__file__).resolve().parent.parent / "node_modules")):
        if candidate and (Path(candidate) / "playwright-core").is_dir():
            return Path(candidate)
    return None


def _missing() -> str | None:
    if find_chromium() is None:
        return "chromium not found (apt-get install chromium)"
    if find_node() is None:
        return "node not found"
    if _node_modules() is None:
        return "playwright-core not installed (run `npm ci`)"
    return None


pytestmark.append(pytest.mark.skipif(_missing() is not None, reason=_missing() or ""))


@pytest.fixture(scope="module")
def page_url(serve_assets: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local service under uvicorn in this process (no token: the page's default)."""
    config = ServiceConfig(checkpoint=serve_assets["checkpoint"],
                           narrations={"intro": serve_assets["narration"],
                                       "short": serve_assets["short"]},
                           data_dir=tmp_path_factory.mktemp("page-data"), precision="fp32",
                           detector="lbp", batch_size=4)
    service = build_service(config)
    ready = threading.Event()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_app(service, lifespan=lifespan_for(service, ready.set)), host="127.0.0.1",
        port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    assert ready.wait(300), "the model never loaded"
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=60)


def _y4m(photo: Path, out: Path, frames: int = 2) -> Path:
    """A still as a YUV4MPEG2 file (4:2:0), what Chromium's fake camera can play (written
    here: the bundled ffmpeg has no PNG decoder)."""
    from PIL import Image

    with Image.open(photo) as image:
        ycbcr = image.convert("RGB").convert("YCbCr")
    width, height = ycbcr.size
    y, cb, cr = ycbcr.split()
    half = (width // 2, height // 2)
    planes = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    out.write_bytes(header + (b"FRAME\n" + planes) * frames)
    return out


def _drive(url: str, *, narration: str, photo: Path | None = None,
           fake_video: Path | None = None) -> dict[str, Any]:
    job = {"url": url, "chromium": find_chromium(), "nodeModules": str(_node_modules()),
           "narration": narration, "photo": str(photo) if photo else None,
           "fakeVideo": str(fake_video) if fake_video else None, "timeoutMs": 180_000}
    run = subprocess.run([find_node() or "node", str(DRIVER), json.dumps(job)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout)
    assert result["pageErrors"] == [], result
    return result


def test_choose_a_photo_watch_progress_and_play(page_url: str,
                                               serve_assets: dict[str, Path]) -> None:
    started = time.monotonic()
    seen = _drive(page_url, narration="intro", photo=serve_assets["astronaut"])
    assert seen["state"]["status"] == "done", seen
    statuses = seen["statuses"]
    assert statuses[0] == "uploading" and statuses[-1] == "done", statuses
    # Between them the viewer was told where the job stood (queued or running with a %).
    assert any(s.startswith(("queued", "running")) for s in statuses[1:-1]), statuses
    clip = seen["clip"]
    assert clip["error"] is None and clip["ended"] and not clip["hidden"], clip
    assert (clip["videoWidth"], clip["videoHeight"]) == (512, 512)
    assert abs(clip["duration"] - NARRATION_SECONDS) < 0.05
    assert clip["sidecar"].endswith(f"{seen['state']['id']}.json")
    assert time.monotonic() - started < 300


def test_webcam_photo_of_a_face_becomes_a_clip(page_url: str, serve_assets: dict[str, Path],
                                              tmp_path: Path) -> None:
    # Chromium's fake camera plays this file (a still of the astronaut) instead of its test
    # pattern, which has no face.
    camera = _y4m(serve_assets["astronaut"], tmp_path / "astronaut.y4m")
    seen = _drive(page_url, narration="short", fake_video=camera)
    assert seen["photoNote"] == "webcam photo 512x512", seen
    assert seen["state"]["status"] == "done", seen
    assert seen["clip"]["ended"] and (seen["clip"]["videoWidth"], seen["clip"]["videoHeight"]) \
        == (512, 512)


def test_webcam_without_a_face_shows_the_reason(page_url: str) -> None:
    # No file: the fake camera's own test pattern, which has no face in it.
    seen = _drive(page_url, narration="short", fake_video=None)
    assert seen["state"]["status"] == "failed", seen
    assert "no face found" in seen["error"], seen
