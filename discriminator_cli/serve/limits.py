"""What an uploaded photo must be, checked by its content (never its name or MIME header).

Order matters for bounded memory: the byte limit is enforced while the body streams in
(`BodyLimit`), the pixel count is read from the header before anything is decoded (a 20-byte
PNG can declare 50000x50000), and only then is the picture decoded once to prove it is whole.
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discriminator_cli.errors import BadInputError

KINDS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
PIL_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the small form fields
# Decoding a photo to prove it whole takes up to max_pixels x 4 bytes; at most this many at
# once, however many uploads arrive together (a 115 KB PNG can declare 40 MP).
_DECODES = threading.BoundedSemaphore(2)


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000    # a 12 MP phone photo passes with room to spare
    min_side: int = 64              # smaller than the model's 96x96 face holds no usable face


class UploadError(BadInputError):
    """An upload the service refuses; `status` is the HTTP status that says why."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def sniff(head: bytes) -> str | None:
    """'jpeg' | 'png' | 'webp' from the first bytes, else None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def too_large(limit: int) -> UploadError:
    return UploadError(413, "Photo too large",
                       f"the upload is over the {limit // 1024 // 1024} MiB limit; send a "
                       "smaller photo (a JPEG of the face is enough)")


_ORIENTATION = 0x0112        # EXIF: how the camera held the picture
_TURNED = {5, 6, 7, 8}       # orientations that swap width and height


def check_photo(path: Path, limits: UploadLimits) -> tuple[str, int, int]:
    """(kind, width, height) of a whole, decodable photo within the limits; UploadError.
    The size is the upright picture's (EXIF orientation applied), as a `box` refers to it."""
    from PIL import Image, UnidentifiedImageError

    size = path.stat().st_size
    if size > limits.max_bytes:
        raise too_large(limits.max_bytes)
    with path.open("rb") as handle:
        kind = sniff(handle.read(16))
    if kind is None:
        raise UploadError(415, "Not a photo", "the upload is not a JPEG, PNG or WebP image "
                          "(checked by its content); send a photo in one of those formats")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > limits.max_pixels:
                    raise _bomb(width * height, limits)
                if PIL_FORMATS.get(image.format or "") != kind:
                    raise UploadError(415, "Not a photo", f"the file starts like {kind} but "
                                      "is not one; send a photo straight from the camera")
                if min(width, height) < limits.min_side:
                    raise UploadError(422, "Photo too small",
                                      f"the photo is {width}x{height} pixels; a face needs at "
                                      f"least {limits.min_side}x{limits.min_side}")
                with _DECODES:
                    if kind == "jpeg":
                        # Every coded block is still read (a cut file fails), into an
                        # eighth of the pixels.
                        image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()  # the whole picture, once: a truncated file fails here
                if image.getexif().get(_ORIENTATION, 1) in _TURNED:
                    width, height = height, width  # as the worker will see it, upright
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fired first (far over its limit): its message has the count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _bomb(int(found.group(1)) if found else None, limits) from None
    except UnidentifiedImageError:  # its message names the upload's path on this server
        raise UploadError(422, "Unreadable photo", "the photo cannot be decoded; it may be "
                          "truncated or damaged: take or export it again") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(422, "Unreadable photo", f"the photo cannot be decoded ({exc}); it "
                          "may be truncated or damaged: take or export it again") from None
    return kind, width, height


def _bomb(pixels: int | None, limits: UploadLimits) -> UploadError:
    what = f"{pixels / 1e6:.0f} megapixels" if pixels else "too many pixels"
    return UploadError(413, "Photo too large", f"the photo declares {what}, over the limit of "
                       f"{limits.max_pixels // 1_000_000} megapixels; send a smaller photo")


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused with 413 as soon as it is
    known (Content-Length) or seen (counted while it streams), so memory and disk use stay
    bounded whatever a client sends."""

    def __init__(self, app: Any, max_bytes: int, problem: Callable[[UploadError], Any]) -> None:
        self.app, self.max_bytes, self.problem = app, max_bytes, problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        limit = self.max_bytes
        error = too_large(limit - MULTIPART_OVERHEAD)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self.problem(error)(scope, receive, send)
            return
        seen, started, overflowed = 0, False, False

        async def counting_receive() -> MutableMapping[str, Any]:
            nonlocal seen, overflowed
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    overflowed = True
                    raise _Overflow
            return message

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if overflowed:
                return  # the app's answer to a body it never got whole (FastAPI says 400)
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_Overflow):
            await self.app(scope, counting_receive, guarded_send)
        if overflowed and not started:
            await self.problem(error)(scope, receive, send)


class _Overflow(Exception):
    pass
