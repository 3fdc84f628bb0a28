"""A threaded HTTP server for one package: the preview page, the player libraries, the media.

Python's http.server has no Range support, and DASH on-demand (SegmentBase + sidx) and HLS
byte-range playlists cannot play without it, so this handler implements single byte ranges
(`a-b`, open-ended `a-` and suffix `-n`): 206 with Content-Range, 416 with
`Content-Range: bytes */SIZE` when unsatisfiable. Every request is recorded in memory so a
test can assert that the players never met a 4xx/5xx (they retry quietly).

URL layout:
  /                       the preview page (package data in ./page/)
  /_preview/<file>        the page's own files; /_preview/config.json describes the package
  /_players/<key>/<file>  a fixed list of npm player bundles (players.library_files), when
                          installed; without them the page says how to install them
  /media/<path>           files inside the package directory, nothing outside it
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from discriminator_cli.errors import BadInputError
from discriminator_cli.package_layout import HLS_MASTER_NAME, MPD_NAME, POSTER_NAME
from discriminator_cli.preview.files import (
    Forbidden,
    RangeNotSatisfiable,
    content_type,
    parse_range,
    resolve_inside,
)
from discriminator_cli.preview.players import (
    NPM_HINT,
    PAGE_PLAYERS,
    PLAYER_LIBRARIES,
    PLAYERS_URL_PREFIX,
    library_files,
)

PAGE_DIR = Path(__file__).with_name("page")
MEDIA_URL_PREFIX = "/media/"
PAGE_URL_PREFIX = "/_preview/"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    range: str | None
    status: int
    bytes: int  # body bytes actually written
    at: float  # time.time() when the request arrived, to attribute it to a player run
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class PreviewRequestHandler(BaseHTTPRequestHandler):
    server: PreviewHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: players make many small range requests
    server_version = "discriminator-preview"

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _serve(self, *, send_body: bool) -> None:
        arrived, started = time.time(), time.monotonic()
        self._status, self._sent = 0, 0
        path = urlsplit(self.path).path
        range_header = self.headers.get("Range")
        try:
            self._route(path, range_header, send_body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the player aborted a request; that is normal
        finally:
            self.server.record(RequestRecord(self.command, path, range_header, int(self._status),
                                             self._sent, arrived, time.monotonic() - started))

    def _route(self, path: str, range_header: str | None, send_body: bool) -> None:
        if path in ("/", "/index.html"):
            self._send_file(PAGE_DIR / "index.html", None, send_body)
        elif path == PAGE_URL_PREFIX + "config.json":
            self._send_bytes(json.dumps(self.server.config()).encode(), "application/json",
                             send_body)
        elif path.startswith(PAGE_URL_PREFIX):
            self._send_from(PAGE_DIR, path[len(PAGE_URL_PREFIX):], range_header, send_body)
        elif path.startswith(PLAYERS_URL_PREFIX):
            target = self.server.player_files.get(path)
            if target is None:
                self._send_error(HTTPStatus.NOT_FOUND, send_body)
            else:
                self._send_file(target, range_header, send_body)
        elif path.startswith(MEDIA_URL_PREFIX):
            self._send_from(self.server.package_dir, path[len(MEDIA_URL_PREFIX):],
                            range_header, send_body)
        else:
            self._send_error(HTTPStatus.NOT_FOUND, send_body)

    def _send_from(self, root: Path, url_path: str, range_header: str | None,
                   send_body: bool) -> None:
        try:
            target = resolve_inside(root, url_path)
        except Forbidden:
            self._send_error(HTTPStatus.FORBIDDEN, send_body)
            return
        if target is None:
            self._send_error(HTTPStatus.NOT_FOUND, send_body)
        else:
            self._send_file(target, range_header, send_body)

    def _common_headers(self, type_: str, length: int) -> None:
        self.send_header("Content-Type", type_)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        # An editor re-encodes and reloads: never let the browser show a stale package.
        self.send_header("Cache-Control", "no-store")

    def _send_file(self, path: Path, range_header: str | None, send_body: bool) -> None:
        try:
            handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError:
            self._send_error(HTTPStatus.NOT_FOUND, send_body)
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            try:
                byte_range = parse_range(range_header, size)
            except RangeNotSatisfiable:
                self._status = HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
                self.send_response(self._status)
                self.send_header("Content-Range", f"bytes */{size}")
                self._common_headers("text/plain; charset=utf-8", 0)
                self.end_headers()
                return
            first, last = byte_range if byte_range else (0, size - 1)
            length = max(0, last - first + 1)
            self._status = HTTPStatus.PARTIAL_CONTENT if byte_range else HTTPStatus.OK
            self.send_response(self._status)
            if byte_range:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self._common_headers(content_type(path), length)
            self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
            self.end_headers()
            if not send_body:
                return
            handle.seek(first)
            remaining = length
            while remaining > 0:
                chunk = handle.read(min(_CHUNK, remaining))
                if not chunk:
                    break  # the file shrank while being served
                self.wfile.write(chunk)
                self._sent += len(chunk)
                remaining -= len(chunk)

    def _send_bytes(self, body: bytes, type_: str, send_body: bool) -> None:
        self._status = HTTPStatus.OK
        self.send_response(self._status)
        self._common_headers(type_, len(body))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
            self._sent = len(body)

    def _send_error(self, status: HTTPStatus, send_body: bool) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self._status = status
        self.send_response(status)
        self._common_headers("text/plain; charset=utf-8", len(body))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
            self._sent = len(body)


class PreviewHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a player opening many range requests at once, or a
    # few devices on a LAN, overflows it and connections wait for SYN retries (1 s, 3 s, ...).
    # The kernel caps this at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], package_dir: Path,
                 players_dir: Path | None, *, verbose: bool = False):
        self.package_dir = package_dir.resolve()
        self.player_files = library_files(players_dir) if players_dir else {}
        self.verbose = verbose
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        super().__init__(address, PreviewRequestHandler)

    def record(self, entry: RequestRecord) -> None:
        with self._log_lock:
            self._log.append(entry)

    def requests(self) -> list[RequestRecord]:
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket],
                     client_address: Any) -> None:
        # A player closing a keep-alive connection mid-read is routine, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError) and not self.verbose:
            return
        super().handle_error(request, client_address)

    def config(self) -> dict[str, Any]:
        """What the page needs: the manifests present and the player bundle URLs."""
        manifests = {kind: MEDIA_URL_PREFIX + name
                     for kind, name in (("dash", MPD_NAME), ("hls", HLS_MASTER_NAME))
                     if (self.package_dir / name).is_file()}
        players = {key: lib.url for key, lib in PLAYER_LIBRARIES.items()
                   if lib.url in self.player_files}
        choices = [asdict(p) for p in PAGE_PLAYERS.values()
                   if p.manifest in manifests and p.library in players]
        # The page says so instead of failing silently; the media are served regardless.
        missing = None if players else f"The player libraries are not installed, so this " \
            f"page cannot play the package (its files are still served under " \
            f"{MEDIA_URL_PREFIX}). {NPM_HINT[0].upper()}{NPM_HINT[1:]}, then restart preview."
        poster = MEDIA_URL_PREFIX + POSTER_NAME if (self.package_dir / POSTER_NAME).is_file() \
            else None
        return {"package": self.package_dir.name, "manifests": manifests, "players": players,
                "choices": choices, "players_missing": missing, "poster": poster}


class PreviewServer:
    """The server on a background thread; a context manager for tests and the check."""

    def __init__(self, package_dir: Path, players_dir: Path | None, *,
                 host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, verbose: bool = False):
        if not package_dir.is_dir():
            raise BadInputError("not a directory", path=package_dir,
                                hint="pass a package directory made by `discriminator encode`")
        try:
            self.httpd = PreviewHTTPServer((host, port), package_dir, players_dir,
                                           verbose=verbose)
        except OSError as exc:
            raise BadInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                                hint="choose another --port (0 picks a free one)") from exc
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        if shown in ("0.0.0.0", "[::]"):
            shown = "127.0.0.1"  # a wildcard address is not something a browser can open
        return f"http://{shown}:{port}"

    def requests(self) -> list[RequestRecord]:
        return self.httpd.requests()

    def urls(self) -> dict[str, object]:
        """The page (one URL per usable player) and the manifests, for printing."""
        base = self.base_url
        config = self.httpd.config()
        manifests = {kind: base + path for kind, path in config["manifests"].items()}
        players = [{"id": c["id"], "label": c["label"], "url": f"{base}/?player={c['id']}"}
                   for c in config["choices"]]
        return {"package": str(self.httpd.package_dir), "url": base + "/",
                "host": self.httpd.server_address[0], "port": self.httpd.server_address[1],
                "manifests": manifests, "players": players}

    def start(self) -> PreviewServer:
        # A short poll interval keeps close() (and so each test) fast.
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        name="discriminator-preview", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> PreviewServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
