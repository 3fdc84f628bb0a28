"""Serving files safely: single byte ranges, content types, and confinement to one directory.

No HTTP here, so each rule can be tested on its own; server.py applies them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from discriminator_cli.confine import OutsideRoot, confined_path

_SNIFF_BYTES = 64 * 1024
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_POSITION_DIGITS = 19  # 10**19 bytes: no file is larger

MIME_TYPES = {
    ".mpd": "application/dash+xml",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4a": "audio/mp4",
    ".m4v": "video/mp4",
    ".ts": "video/mp2t",
    ".aac": "audio/aac",
    ".vtt": "text/vtt",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
}


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single byte range, None to send the whole file.

    Raises RangeNotSatisfiable for a well-formed range that misses the file. Malformed or
    multi-range headers are ignored (RFC 9110 lets a server answer those with 200).
    """
    if not header:
        return None
    match = _RANGE_RE.match(header.strip().replace(" ", ""))
    if not match:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    # A position with more digits than any file size needs (thousands of them overflow
    # int()'s digit limit) stands for "beyond the end": the rules below then apply as usual.
    if len(first_text) > _MAX_POSITION_DIGITS:
        raise RangeNotSatisfiable
    if len(last_text) > _MAX_POSITION_DIGITS:
        last_text = str(size) if first_text else ""
        if not first_text:  # a suffix longer than any file: all of it
            if size == 0:
                raise RangeNotSatisfiable
            return 0, size - 1
    if not first_text:  # suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None  # invalid syntax: ignore the header
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


@lru_cache(maxsize=256)
def _sniff_mp4_kind(path: str, mtime_ns: int, size: int) -> str:
    """'audio' when the file's first track handler is 'soun', else 'video'.

    On-demand and fragmented files carry the moov (with hdlr) at the front, so the first
    64 KiB is enough; mtime and size are part of the cache key so a re-encode is re-sniffed.
    """
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    position = head.find(b"hdlr")
    while position != -1:
        handler = head[position + 12:position + 16]
        if handler == b"soun":
            return "audio"
        if handler == b"vide":
            return "video"
        position = head.find(b"hdlr", position + 4)
    return "video"


def content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".mp4", ".m4s", ".cmfv", ".cmfa"):
        stat = path.stat()
        return f"{_sniff_mp4_kind(str(path), stat.st_mtime_ns, stat.st_size)}/mp4"
    return MIME_TYPES.get(suffix, "application/octet-stream")


class Forbidden(Exception):
    pass


def resolve_inside(root: Path, url_path: str) -> Path | None:
    """The file under `root` that a (still percent-encoded) URL path names, or None.

    Raises Forbidden for anything that would leave `root` (confine.confined_path, the rule
    `validate` applies to manifest references): '..' above the root (also percent-encoded),
    backslashes, NUL bytes, absolute paths, and symlinks whose target lies outside.
    """
    try:
        resolved = confined_path(root, url_path)
    except OutsideRoot as exc:
        raise Forbidden(exc.reason) from exc
    if resolved == root.resolve():
        return None
    return resolved if resolved.is_file() else None
