"""The HTTP layer: thin FastAPI routes over `Service`, Pydantic bodies (the OpenAPI contract at
/docs), and every error as RFC 9457 `application/problem+json` from one function.

The service is found at `request.app.state.service`, so the same app runs under uvicorn
(local mode) and could be mounted by another host (e.g. a Ray Serve ingress).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from discriminator_cli import __version__
from discriminator_cli.errors import DiscriminatorError
from discriminator_cli.lipsync.faces import parse_box
from discriminator_cli.serve.limits import MULTIPART_OVERHEAD, BodyLimit, UploadError, check_photo
from discriminator_cli.serve.metrics import CONTENT_TYPE as METRICS_TYPE
from discriminator_cli.serve.service import Service, save_upload
from discriminator_cli.serve.store import Job

PROBLEM_TYPE = "application/problem+json"
PAGE = resources.files("discriminator_cli.serve") / "page"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


class ProblemBody(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str


class ClipAccepted(BaseModel):
    id: str
    status_url: str
    clip_url: str
    sidecar_url: str


class ClipStatus(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    narration: str
    position: int | None = Field(None, description="1-based place in the queue (queued)")
    progress: float | None = Field(None, description="0..1 of the frames made (running)")
    frames: int | None = None
    reason: str | None = Field(None, description="why it failed, and what to do (failed)")
    clip_url: str | None = None
    sidecar_url: str | None = None
    submitted: float
    finished: float | None = None


class Narrations(BaseModel):
    narrations: list[str]


def problem(status: int, title: str, detail: str,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape (RFC 9457)."""
    body = ProblemBody(title=title, status=status, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, Problem):
        return problem(exc.status, exc.title, exc.detail, exc.headers)
    if isinstance(exc, UploadError):
        return problem(exc.status, exc.title, exc.detail)
    if isinstance(exc, DiscriminatorError):
        return problem(422, "Unusable request", exc.one_line())
    if isinstance(exc, RequestValidationError):
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                           for e in exc.errors())
        return problem(422, "Invalid request", detail)
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, str(exc.detail), _http_detail(exc.status_code),
                   getattr(exc, "headers", None))


def _http_detail(status: int) -> str:
    return {404: "no such resource: unknown, deleted or expired (clips expire after the "
                 "service's TTL)",
            405: "this method is not allowed here; see /docs"}.get(status, "see /docs")


def _service(request: Request) -> Service:
    return request.app.state.service


def _authorised(request: Request) -> None:
    token = _service(request).config.token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    # Bytes, not text: compare_digest refuses non-ASCII str, and a header is whatever a
    # client sends (Starlette decodes it as Latin-1, so this gives back its bytes).
    sent = value.strip().encode("latin-1", "replace")
    if scheme.lower() != "bearer" or not secrets.compare_digest(sent, token.encode("utf-8")):
        raise Problem(401, "Unauthorised", "send the service's token as "
                      "'Authorization: Bearer TOKEN'", {"WWW-Authenticate": "Bearer"})


def _needs_token(path: str) -> bool:
    return path.startswith("/v1/") or path == "/metrics"


ServiceDep = Annotated[Service, Depends(_service)]
NOT_FOUND = {404: {"model": ProblemBody, "description": "unknown, deleted or expired id"}}


def _job_status(job: Job, request: Request) -> ClipStatus:
    status = ClipStatus(id=job.id, state=job.state, narration=job.narration,
                        submitted=job.submitted, finished=job.finished, frames=job.frames)
    if job.state == "queued":
        status.position = job.position
    elif job.state == "running":
        status.progress = round(job.progress / job.frames, 3) if job.frames else 0.0
    elif job.state == "failed":
        status.reason = job.error
    else:
        status.clip_url = str(request.url_for("clip_mp4", clip_id=job.id).path)
        status.sidecar_url = str(request.url_for("clip_sidecar", clip_id=job.id).path)
    return status


def create_app(service: Service, lifespan: Any = None) -> FastAPI:
    """The app for one service; `lifespan` (local mode) starts and stops it."""
    app = FastAPI(title="discriminator serve", version=__version__, lifespan=lifespan,
                  description="Lip-sync a viewer's photo to a narration. Every clip is "
                              "marked synthetic and comes with a provenance sidecar.",
                  responses={422: {"model": ProblemBody}})
    app.state.service = service

    @app.middleware("http")
    async def token_first_and_nosniff(request: Request,
                                      call_next: Callable[[Request], Awaitable[Response]],
                                      ) -> Response:
        # The one token check, before the body is read: without the token, nobody gets an
        # upload received and spooled.
        if _needs_token(request.url.path):
            try:
                _authorised(request)
            except Problem as exc:
                response: Response = problem(exc.status, exc.title, exc.detail, exc.headers)
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    # The body limit sees every byte before the form parser; CORS (outermost) also labels
    # its 413s, so a browser on the configured origin can read why.
    app.add_middleware(BodyLimit, max_bytes=service.config.limits.max_bytes + MULTIPART_OVERHEAD,
                       problem=lambda e: problem(e.status, e.title, e.detail))
    if service.config.cors_origin:
        app.add_middleware(CORSMiddleware, allow_origins=[service.config.cors_origin],
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Range"],
                           expose_headers=["Retry-After", "Content-Range", "Content-Length"])
    for kind in (Problem, UploadError, DiscriminatorError, RequestValidationError,
                 StarletteHTTPException):
        app.add_exception_handler(kind, _on_error)

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response((PAGE / "index.html").read_bytes(), media_type="text/html")

    @app.get("/page.js", include_in_schema=False)
    def page_script() -> Response:
        return Response((PAGE / "page.js").read_bytes(), media_type="text/javascript")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ProblemBody}})
    def readyz(service: ServiceDep) -> dict[str, str]:
        if not service.ready:
            raise Problem(503, "Not ready", "the model is still loading; try again shortly",
                          {"Retry-After": "2"})
        return {"status": "ready"}

    @app.get("/metrics", tags=["health"])
    def metrics(service: ServiceDep) -> Response:
        text = service.metrics.render(service.store.counts(), ready=service.ready)
        return Response(text, media_type=METRICS_TYPE)

    @app.get("/v1/narrations", response_model=Narrations)
    def narrations(service: ServiceDep) -> Narrations:
        return Narrations(narrations=sorted(service.narrations))

    @app.post("/v1/clips", status_code=202, response_model=ClipAccepted,
              responses={413: {"model": ProblemBody}, 415: {"model": ProblemBody},
                         429: {"model": ProblemBody}})
    async def submit(request: Request, service: ServiceDep,
                     photo: Annotated[UploadFile, File(description="JPEG, PNG or WebP")],
                     narration: Annotated[str, Form(description="a configured narration")],
                     box: Annotated[str | None, Form(description="x1,y1,x2,y2 instead of "
                                                                 "face detection")] = None,
                     ) -> ClipAccepted:
        if narration not in service.narrations:  # cheap checks first: nothing written yet
            shown = narration if len(narration) <= 40 else narration[:40] + "..."
            raise Problem(422, "Unknown narration", f"{shown!r} is not configured; use "
                          f"one of: {', '.join(sorted(service.narrations))}")
        limits = service.config.limits
        staged = await run_in_threadpool(save_upload, photo.file, service.uploads,
                                         limits.max_bytes)
        try:
            kind, width, height = await run_in_threadpool(check_photo, staged, limits)
            if box:
                _check_box(box, width, height)
            job = await run_in_threadpool(service.accept, staged, kind, narration, box or None)
        finally:
            staged.unlink(missing_ok=True)  # accepted uploads were renamed away already
        if job is None:
            raise Problem(429, "Queue full", f"{service.config.max_queue} jobs are waiting or "
                          "running; try again later", {"Retry-After": str(service.retry_after())})
        return ClipAccepted(id=job.id, status_url=request.url_for("clip_status",
                                                                  clip_id=job.id).path,
                            clip_url=request.url_for("clip_mp4", clip_id=job.id).path,
                            sidecar_url=request.url_for("clip_sidecar", clip_id=job.id).path)

    # The .mp4/.json routes come first: /v1/clips/{clip_id} would also match "ID.mp4".
    @app.get("/v1/clips/{clip_id}.mp4", name="clip_mp4",
             response_class=FileResponse, responses=NOT_FOUND)
    def clip_mp4(clip_id: str, service: ServiceDep) -> FileResponse:
        output, _ = _published(service, clip_id)
        return _clip_file(output, "video/mp4")

    @app.get("/v1/clips/{clip_id}.json", name="clip_sidecar",
             response_class=FileResponse, responses=NOT_FOUND)
    def clip_sidecar(clip_id: str, service: ServiceDep) -> FileResponse:
        _, sidecar = _published(service, clip_id)
        return _clip_file(sidecar, "application/json")

    @app.get("/v1/clips/{clip_id}", name="clip_status",
             response_model=ClipStatus, responses=NOT_FOUND)
    def clip_status(clip_id: str, request: Request, service: ServiceDep) -> ClipStatus:
        job = service.get(clip_id)
        if job is None:
            raise StarletteHTTPException(404, "Not found")
        return _job_status(job, request)

    # HEAD where players, CDNs and probes send it; the GET answers without the body (kept
    # out of /docs, where it would repeat every GET).
    for path, endpoint in (("/v1/clips/{clip_id}.mp4", clip_mp4),
                           ("/v1/clips/{clip_id}.json", clip_sidecar),
                           ("/v1/clips/{clip_id}", clip_status),
                           ("/healthz", healthz), ("/readyz", readyz)):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False,
                          name=f"{endpoint.__name__}_head")

    @app.delete("/v1/clips/{clip_id}", status_code=204, responses=NOT_FOUND)
    def delete_clip(clip_id: str, service: ServiceDep) -> Response:
        if not service.delete(clip_id):
            raise StarletteHTTPException(404, "Not found")
        return Response(status_code=204)

    return app


class ClipFile(FileResponse):
    """A file response whose Range refusals are problem+json, as every other error here
    (Starlette's own are plain text, the 416 with no body at all)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        wanted = Headers(scope=scope).get("range")
        parse = getattr(self, "_parse_range_header", None)  # Starlette's own parser
        if wanted is not None and parse is not None and self.stat_result is not None:
            size = self.stat_result.st_size
            try:
                parse(wanted, size)
            except MalformedRangeHeader as exc:
                await problem(400, "Bad Range header", f"{exc.content}; ask for e.g. "
                              "'Range: bytes=0-1023'")(scope, receive, send)
                return
            except RangeNotSatisfiable:
                await problem(416, "Range not satisfiable", f"the file has {size} bytes",
                              {"Content-Range": f"bytes */{size}"})(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _check_box(text: str, width: int, height: int) -> None:
    """A box must lie inside the upright photo: refused now, not as a failed job later."""
    x1, y1, x2, y2 = parse_box(text)
    if x2 > width or y2 > height:
        raise Problem(422, "Box outside the photo", f"box {x1},{y1},{x2},{y2} reaches past the "
                      f"{width}x{height} photo; give x1,y1,x2,y2 inside it, in its pixels")


def _clip_file(path: Any, media_type: str) -> ClipFile:
    try:
        found = os.stat(path)
    except FileNotFoundError:  # expired or deleted a moment ago
        raise StarletteHTTPException(404, "Not found") from None
    return ClipFile(path, media_type=media_type, stat_result=found)


def _published(service: Service, clip_id: str) -> tuple[Any, Any]:
    files = service.files(clip_id)
    if files is None or not files[0].is_file():
        job = service.get(clip_id)
        if job is not None and job.state != "done":
            raise Problem(409, "Clip not ready", f"the job is {job.state}; poll "
                          f"/v1/clips/{clip_id} until it is done")
        raise StarletteHTTPException(404, "Not found")
    return files
