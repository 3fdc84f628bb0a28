"""`discriminator serve` in process (FastAPI's TestClient, real workers and model): the API,
bad input and faults, auth, CORS, expiry, Range, health and metrics, and 100 jobs at once.

Cheap by construction: one service (one loaded model) for the module, whose engine also makes
the CLI-path reference clip; jobs use the 2-frame `short` narration unless they need more.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytestmark = [pytest.mark.serve, pytest.mark.lipsync]

from fastapi.testclient import TestClient  # noqa: E402

from discriminator_cli.cache import file_sha256  # noqa: E402
from discriminator_cli.lipsync.faces import LbpDetector  # noqa: E402
from discriminator_cli.lipsync.pipeline import lipsync_clip  # noqa: E402
from discriminator_cli.serve.app import create_app  # noqa: E402
from discriminator_cli.serve.limits import UploadLimits  # noqa: E402
from discriminator_cli.serve.local import build_service, lifespan_for  # noqa: E402
from discriminator_cli.serve.service import ServiceConfig  # noqa: E402
from tests.helpers import ffprobe_json  # noqa: E402
from tests.serve_helpers import (  # noqa: E402
    decoded_frames,
    metric,
    one_pixel_png,
    png_bomb,
    truncated_jpeg,
    wait_for,
)

TOKEN = "t" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORIGIN = "https://documentary.example"
MAX_BYTES = 1024 * 1024


@pytest.fixture(scope="module")
def assets(serve_assets: dict[str, Path]) -> dict[str, Path]:
    return serve_assets


def _config(assets: dict[str, Path], data_dir: Path, **overrides: object) -> ServiceConfig:
    values: dict[str, object] = dict(
        checkpoint=assets["checkpoint"],
        narrations={"intro": assets["narration"], "short": assets["short"]},
        data_dir=data_dir, precision="fp32", detector="lbp", max_queue=128, slots=4,
        batch_size=4, limits=UploadLimits(max_bytes=MAX_BYTES), token=TOKEN, cors_origin=ORIGIN)
    values.update(overrides)
    return ServiceConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(assets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    service = build_service(_config(assets, tmp_path_factory.mktemp("serve-data")))
    app = create_app(service, lifespan=lifespan_for(service))
    with TestClient(app) as test_client:
        deadline = time.monotonic() + 120
        while test_client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the model never loaded"
            time.sleep(0.2)
        yield test_client


def _submit(client: TestClient, photo: bytes | Path, narration: str = "short",
            name: str = "photo.jpg", box: str | None = None, headers: dict | None = None):  # type: ignore[no-untyped-def]
    content = photo.read_bytes() if isinstance(photo, Path) else photo
    form = {"narration": narration} | ({"box": box} if box else {})
    return client.post("/v1/clips", files={"photo": (name, content, "image/jpeg")}, data=form,
                       headers=AUTH if headers is None else headers)


def _problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_a_photo_becomes_the_same_clip_lipsync_makes(client: TestClient,
                                                     assets: dict[str, Path],
                                                     tmp_path: Path) -> None:
    accepted = _submit(client, assets["astronaut"], narration="intro", name="me.png")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert len(body["id"]) == 22 and body["clip_url"] == f"/v1/clips/{body['id']}.mp4"
    status = wait_for(client, body["id"], headers=AUTH)
    assert status["state"] == "done", status
    clip = client.get(body["clip_url"], headers=AUTH)
    assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
    served = tmp_path / "served.mp4"
    served.write_bytes(clip.content)
    sidecar = client.get(body["sidecar_url"], headers=AUTH).json()
    assert sidecar["synthetic"] is True and sidecar["output"]["sha256"] == file_sha256(served)
    assert "SYNTHETIC" in ffprobe_json(served, "-show_format")["format"]["tags"]["comment"]

    # The CLI's own path on the same photo and narration gives the same frames (the service's
    # 7 frames went to the model as two chunks; the CLI's in one call).
    cli = tmp_path / "cli.mp4"
    engine = client.app.state.service.workers[0].ctx.model.engine  # type: ignore[attr-defined]
    result = lipsync_clip(engine, assets["astronaut"], assets["narration"], cli, LbpDetector())
    assert list(result.box) == sidecar["inputs"]["face"]["box"]
    assert (decoded_frames(served) == decoded_frames(cli)).all()

    ranged = client.get(body["clip_url"], headers={**AUTH, "Range": "bytes=100-299"})
    assert ranged.status_code == 206 and ranged.content == clip.content[100:300]
    assert ranged.headers["content-range"] == f"bytes 100-299/{len(clip.content)}"
    for bad, status in [("bytes=abc", 400), ("bytes=5-2", 400), ("bytes=999999999-", 416),
                        ("bytes=0-" + "9" * 5000, 400)]:
        refused = _problem(client.get(body["clip_url"], headers={**AUTH, "Range": bad}), status)
        if status == 416:
            assert refused["detail"] == f"the file has {len(clip.content)} bytes"
            assert client.get(body["clip_url"], headers={**AUTH, "Range": bad}).headers[
                "content-range"] == f"bytes */{len(clip.content)}"
    head = client.head(body["clip_url"], headers=AUTH)  # what players and CDNs ask first
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(clip.content))
    assert head.headers["content-type"] == "video/mp4"
    assert client.head(body["status_url"], headers=AUTH).status_code == 200
    assert client.head(body["clip_url"]).status_code == 401
    assert client.head("/healthz").status_code == 200


@pytest.mark.parametrize(("make", "status", "words"), [
    (lambda a: b"%PDF-1.7 not a photo at all" * 10, 415, "not a JPEG, PNG or WebP"),
    (lambda a: b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 64, 415, "not a JPEG"),
    (lambda a: truncated_jpeg(a["face"]), 422, "truncated"),
    (lambda a: png_bomb(), 413, "900 megapixels"),
    (lambda a: png_bomb(8000, 6000), 413, "48 megapixels"),
    (lambda a: one_pixel_png(), 422, "1x1"),
])
def test_bad_photos_are_refused_by_content(client: TestClient, assets: dict[str, Path],
                                           make, status: int, words: str) -> None:  # type: ignore[no-untyped-def]
    before = client.get("/metrics", headers=AUTH).text
    body = _problem(_submit(client, make(assets), name="photo.jpg"), status)
    assert words in body["detail"]
    after = client.get("/metrics", headers=AUTH).text
    name = 'discriminator_jobs_total{state="accepted"}'
    assert metric(after, name) == metric(before, name)  # nothing was recorded


def test_unknown_narration_and_bad_box_are_422(client: TestClient,
                                               assets: dict[str, Path]) -> None:
    body = _problem(_submit(client, assets["face"], narration="outro"), 422)
    assert "intro, short" in body["detail"]  # names the ones that exist
    _problem(_submit(client, assets["face"], box="1,2,3"), 422)
    _problem(client.post("/v1/clips", data={"narration": "intro"}, headers=AUTH), 422)
    # Digits str.isdigit() takes but int() refuses (or reads as another number), a doubled
    # minus, and a number too long to convert: each a 422 that says what a box is.
    for box in ["\u00b2,1,100,100", "\u0663,0,100,100", "--5,0,100,100", "9" * 5000 + ",0,1,1"]:
        body = _problem(_submit(client, assets["face"], box=box), 422)
        assert "is not x1,y1,x2,y2" in body["detail"] and len(body["detail"]) < 300
    body = _problem(_submit(client, assets["face"], narration="x" * 100_000), 422)
    assert len(body["detail"]) < 300  # what was sent is not echoed whole


def test_oversized_uploads_are_413_declared_or_streamed(client: TestClient) -> None:
    big = b"\xff\xd8\xff" + b"\x00" * (MAX_BYTES + 200_000)
    _problem(_submit(client, big), 413)

    def chunks():  # no Content-Length: counted while it streams
        yield b"--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\n\r\n"
        for _ in range(40):
            yield b"\xff" * 65536

    response = client.post("/v1/clips", content=chunks(), headers={
        **AUTH, "Content-Type": "multipart/form-data; boundary=b"})
    _problem(response, 413)


def test_no_face_fails_the_job_with_a_reason_and_the_service_goes_on(
        client: TestClient, assets: dict[str, Path]) -> None:
    failed = _submit(client, assets["gray"], name="gray.png").json()
    good = _submit(client, assets["face"], box="16,16,112,112").json()
    status = wait_for(client, failed["id"], headers=AUTH)
    assert status["state"] == "failed" and "no face found" in status["reason"]
    assert "--box" in status["reason"] or "frontal" in status["reason"]
    _problem(client.get(failed["clip_url"], headers=AUTH), 409)
    assert wait_for(client, good["id"], headers=AUTH)["state"] == "done"


def test_other_and_path_like_ids_are_404_without_touching_files(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    looked_up: list[str] = []
    real_get = service.store.get
    monkeypatch.setattr(service.store, "get", lambda i: looked_up.append(i) or real_get(i))
    _problem(client.get("/v1/clips/AAAAAAAAAAAAAAAAAAAAAA", headers=AUTH), 404)
    _problem(client.get("/v1/clips/AAAAAAAAAAAAAAAAAAAAAA.mp4", headers=AUTH), 404)
    assert set(looked_up) == {"AAAAAAAAAAAAAAAAAAAAAA"}  # well-formed: looked up, not found
    looked_up.clear()
    for path in ("/v1/clips/..", "/v1/clips/..%2F..%2Fjobs.sqlite", "/v1/clips/jobs.sqlite",
                 "/v1/clips/%2e%2e%2fservice.lock.json", "/v1/clips/..%2Fclips%2Fx.mp4",
                 "/v1/clips/" + "A" * 21 + "%00.mp4", "/v1/clips/../../etc/passwd"):
        assert client.get(path, headers=AUTH).status_code == 404, path
        assert client.delete(path, headers=AUTH).status_code in (404, 405), path
    assert looked_up == []  # ids this service cannot have made never reach the store


def test_bearer_token_and_cors_for_the_configured_origin_only(client: TestClient,
                                                              assets: dict[str, Path]) -> None:
    _problem(client.get("/v1/narrations"), 401)
    _problem(client.get("/v1/narrations", headers={"Authorization": "Bearer wrong"}), 401)
    for odd in ["Bearer \u00e9\u00e9".encode("latin-1"), "Bearer \u00e9".encode()]:
        denied = _problem(client.get("/v1/narrations", headers={"Authorization": odd}), 401)
        assert denied["title"] == "Unauthorised"  # not a 500 from comparing non-ASCII text
    assert client.get("/healthz").headers["x-content-type-options"] == "nosniff"
    _problem(_submit(client, assets["face"], headers={}), 401)
    assert client.get("/v1/narrations", headers=AUTH).json() == {"narrations": ["intro",
                                                                                 "short"]}
    assert client.get("/healthz").status_code == 200  # health stays open for probes

    allowed = client.get("/v1/narrations", headers={**AUTH, "Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = client.get("/v1/narrations", headers={**AUTH, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = client.options("/v1/clips", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_a_box_is_in_the_uploaded_photos_pixels(client: TestClient, assets: dict[str, Path],
                                               tmp_path: Path) -> None:
    """Outside the upright photo: 422 at once. On a photo the service scales down (long side
    over 1280), the box is scaled with it."""
    from PIL import Image

    body = _problem(_submit(client, assets["face"], box="0,0,200,100"), 422)  # 128x128
    assert "past the 128x128 photo" in body["detail"]
    large = tmp_path / "large.jpg"  # the test service takes 1 MiB: a JPEG of 1536x1536 fits
    Image.open(assets["astronaut"]).resize((1536, 1536)).save(large, quality=60)  # frame 768
    accepted = _submit(client, large, box="354,132,544,342")
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert wait_for(client, job["id"], headers=AUTH)["state"] == "done"
    sidecar = client.get(job["sidecar_url"], headers=AUTH).json()
    assert sidecar["inputs"]["face"]["box"] == [177, 66, 272, 171]
    assert (sidecar["output"]["width"], sidecar["output"]["height"]) == (768, 768)


def test_no_upload_is_read_without_the_token(client: TestClient) -> None:
    """A client without the token gets its 401 before a byte of its body is received."""
    import asyncio

    read: list[bytes] = []
    sent: list[dict] = []

    async def receive() -> dict:
        read.append(b"body")
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/clips", "raw_path": b"/v1/clips",
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 5000),
             "headers": [(b"host", b"test"), (b"content-length", b"1048576"),
                         (b"content-type", b"multipart/form-data; boundary=x")]}
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 401 and read == []


def test_expired_clips_are_deleted_with_their_files(client: TestClient,
                                                    assets: dict[str, Path]) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    job = _submit(client, assets["face"], box="16,16,112,112").json()
    wait_for(client, job["id"], headers=AUTH)
    clip = service.clips / f"{job['id']}.mp4"
    assert clip.is_file()
    assert job["id"] not in service.expire()  # within the TTL
    assert job["id"] in service.expire(now=time.time() + service.config.ttl_seconds + 1)
    _problem(client.get(job["status_url"], headers=AUTH), 404)
    _problem(client.get(job["clip_url"], headers=AUTH), 404)
    assert not clip.exists() and not list(service.uploads.glob(f"{job['id']}.*"))


def test_delete_removes_a_clip(client: TestClient, assets: dict[str, Path]) -> None:
    job = _submit(client, assets["face"], box="16,16,112,112").json()
    wait_for(client, job["id"], headers=AUTH)
    assert client.delete(job["status_url"], headers=AUTH).status_code == 204
    _problem(client.get(job["clip_url"], headers=AUTH), 404)
    _problem(client.delete(job["status_url"], headers=AUTH), 404)


def test_health_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    text = client.get("/metrics", headers=AUTH).text
    for name in ("discriminator_queue_depth", 'discriminator_jobs{state="done"}',
                 "discriminator_job_latency_seconds_count", "discriminator_frames_per_second",
                 "discriminator_frames_total"):
        metric(text, name)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/clips", "/v1/clips/{clip_id}", "/v1/clips/{clip_id}.mp4"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/clips"]["post"]["requestBody"]["content"]


def test_a_hundred_jobs_at_once_all_finish_once_sharing_batches(
        client: TestClient, assets: dict[str, Path]) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    before = client.get("/metrics", headers=AUTH).text
    photo = assets["face"].read_bytes()
    ids = []
    for _ in range(100):
        response = _submit(client, photo, box="16,16,112,112")
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    assert len(set(ids)) == 100
    states = [wait_for(client, i, headers=AUTH, timeout=600) for i in ids]
    assert [s["state"] for s in states] == ["done"] * 100
    frames = states[0]["frames"]
    after = client.get("/metrics", headers=AUTH).text
    made = metric(after, "discriminator_frames_total") - metric(before,
                                                                "discriminator_frames_total")
    assert made == 100 * frames  # every frame generated once: no job ran twice
    assert all(service.store.get(i).attempts == 1 for i in ids)
    for job_id in ids[::17]:
        sidecar = json.loads((service.clips / f"{job_id}.mp4.json").read_text())
        assert sidecar["output"]["frames"] == frames
    shared = (metric(after, "discriminator_batch_viewers_sum")
              - metric(before, "discriminator_batch_viewers_sum"))
    calls = (metric(after, "discriminator_batch_viewers_count")
             - metric(before, "discriminator_batch_viewers_count"))
    # Each engine lane takes the oldest waiting chunk and whatever else fits its call, so
    # sharing depends on timing here (tests/test_serve_batching.py pins it down); with 100
    # viewers waiting some calls must still hold several.
    assert shared / calls > 1.0, "frames of different viewers should share model calls"


def test_a_full_queue_answers_429_with_retry_after(assets: dict[str, Path],
                                                  tmp_path: Path) -> None:
    # Not started (no lifespan): nothing takes jobs, so the queue fills deterministically.
    service = build_service(_config(assets, tmp_path / "data", max_queue=2, token=None))
    client = TestClient(create_app(service))
    for position in (1, 2):
        accepted = _submit(client, assets["face"], headers={})
        assert accepted.status_code == 202
        assert client.get(accepted.json()["status_url"]).json()["position"] == position
    full = _submit(client, assets["face"], headers={})
    _problem(full, 429)
    assert int(full.headers["retry-after"]) >= 1
    assert service.store.counts()["queued"] == 2 and len(list(service.uploads.iterdir())) == 2
    _problem(client.get("/readyz"), 503)
