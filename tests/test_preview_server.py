"""The preview server over real HTTP on an ephemeral port: ranges, MIME types, confinement.

No browser: these run in well under a second each.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from discriminator_cli.errors import BadInputError, MissingToolError
from discriminator_cli.preview.files import RangeNotSatisfiable, parse_range
from discriminator_cli.preview.install import ENV_NPM, NPM_DIR, NPM_FILES, install_players
from discriminator_cli.preview.players import (
    ENV_PLAYERS_DIR,
    PLAYER_LIBRARIES,
    find_node_modules,
    require_node_modules,
)
from discriminator_cli.preview.server import PreviewServer
from discriminator_cli.runner import CommandRunner

MEDIA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable by content
SECRET = b"secret-outside-the-package"


def _mp4_head(handler: bytes) -> bytes:
    """Just enough of an ISO BMFF file for the audio/video sniff: ftyp, then an hdlr box."""
    ftyp = (16).to_bytes(4, "big") + b"ftypisom" + b"\0\0\0\1"
    hdlr = (33).to_bytes(4, "big") + b"hdlr" + b"\0" * 8 + handler + b"\0" * 13
    return ftyp + hdlr + MEDIA


@pytest.fixture
def package(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "video_360p.mp4").write_bytes(_mp4_head(b"vide"))
    (pkg / "audio_eng.mp4").write_bytes(_mp4_head(b"soun"))
    (pkg / "stream.mpd").write_text("<MPD/>")
    (pkg / "master.m3u8").write_text("#EXTM3U\n")
    (pkg / "blob.bin").write_bytes(MEDIA)
    (pkg / "empty.bin").write_bytes(b"")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "inner.m4s").write_bytes(MEDIA[:100])
    (pkg / "link_out.txt").symlink_to(tmp_path / "secret.txt")
    (pkg / "link_in.bin").symlink_to(pkg / "blob.bin")
    return pkg


@pytest.fixture
def players(tmp_path: Path) -> Path:
    """A stand-in node_modules with the three bundles (and one file that must not be served)."""
    node_modules = tmp_path / "node_modules"
    for lib in PLAYER_LIBRARIES.values():
        bundle = node_modules / lib.npm_package / lib.bundle
        bundle.parent.mkdir(parents=True, exist_ok=True)
        bundle.write_text(f"/* {lib.key} */")
        (node_modules / lib.npm_package / "package.json").write_text("{}")
    return node_modules


@pytest.fixture
def server(package: Path, players: Path) -> Iterator[PreviewServer]:
    with PreviewServer(package, players, port=0) as running:
        yield running


def request(server: PreviewServer, path: str, *, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})  # the path is sent verbatim
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def test_listens_on_loopback_by_default(server: PreviewServer) -> None:
    assert server.httpd.server_address[0] == "127.0.0.1"
    assert server.base_url.startswith("http://127.0.0.1:")


def test_whole_file(server: PreviewServer) -> None:
    status, headers, body = request(server, "/media/blob.bin")
    assert status == 200
    assert body == MEDIA
    assert headers["content-length"] == str(len(MEDIA))
    assert headers["accept-ranges"] == "bytes"
    assert "content-range" not in headers


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-99", 0, 99),
    ("bytes=1000-1999", 1000, 1999),
    ("bytes=10000-", 10000, 10239),       # open-ended
    ("bytes=-100", 10140, 10239),         # suffix
    ("bytes=10200-99999", 10200, 10239),  # end clipped to the file
    ("bytes=-99999", 0, 10239),           # suffix longer than the file
    ("bytes=10239-10239", 10239, 10239),  # the last byte
])
def test_single_ranges(server: PreviewServer, header: str, first: int, last: int) -> None:
    status, headers, body = request(server, "/media/blob.bin", headers={"Range": header})
    assert status == 206
    assert headers["content-range"] == f"bytes {first}-{last}/{len(MEDIA)}"
    assert headers["content-length"] == str(last - first + 1)
    assert body == MEDIA[first:last + 1]


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-30000", "bytes=-0"])
def test_unsatisfiable_range_is_416(server: PreviewServer, header: str) -> None:
    status, headers, body = request(server, "/media/blob.bin", headers={"Range": header})
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(MEDIA)}"
    assert body == b""


def test_range_on_empty_file_is_416(server: PreviewServer) -> None:
    status, headers, _ = request(server, "/media/empty.bin", headers={"Range": "bytes=0-"})
    assert (status, headers["content-range"]) == (416, "bytes */0")


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=abc", "items=0-5", "bytes=9-3"])
def test_ignored_range_headers_get_the_whole_file(server: PreviewServer, header: str) -> None:
    status, _, body = request(server, "/media/blob.bin", headers={"Range": header})
    assert status == 200
    assert body == MEDIA


def test_head(server: PreviewServer) -> None:
    status, headers, body = request(server, "/media/blob.bin", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(MEDIA))
    status, headers, body = request(server, "/media/blob.bin", method="HEAD",
                                    headers={"Range": "bytes=5-9"})
    assert (status, body) == (206, b"")
    assert headers["content-range"] == f"bytes 5-9/{len(MEDIA)}"
    assert headers["content-length"] == "5"


@pytest.mark.parametrize(("path", "mime"), [
    ("/media/stream.mpd", "application/dash+xml"),
    ("/media/master.m3u8", "application/vnd.apple.mpegurl"),
    ("/media/video_360p.mp4", "video/mp4"),
    ("/media/audio_eng.mp4", "audio/mp4"),
    ("/media/sub/inner.m4s", "video/mp4"),
    ("/", "text/html; charset=utf-8"),
    ("/_preview/app.js", "text/javascript; charset=utf-8"),
    ("/_preview/config.json", "application/json"),
    ("/_players/dashjs/dash.all.min.js", "text/javascript; charset=utf-8"),
])
def test_mime_types(server: PreviewServer, path: str, mime: str) -> None:
    status, headers, _ = request(server, path)
    assert status == 200
    assert headers["content-type"] == mime


@pytest.mark.parametrize("path", [
    "/media/../secret.txt",
    "/media/%2e%2e/secret.txt",
    "/media/%2E%2E%2Fsecret.txt",
    "/media/..%2fsecret.txt",
    "/media/sub/../../secret.txt",
    "/media/sub/%2e%2e/%2e%2e/secret.txt",
    "/media/..%5csecret.txt",
    "/media/link_out.txt",
    "/media/%00stream.mpd",
])
def test_paths_outside_the_package_are_refused(server: PreviewServer, path: str) -> None:
    status, _, body = request(server, path)
    assert status == 403
    assert SECRET not in body


@pytest.mark.parametrize("path", [
    "/media/missing.mp4", "/media/", "/media/sub", "/secret.txt", "/favicon.ico",
    "/_players/dashjs/package.json", "/_players/dashjs/../../dashjs/package.json",
    "/node_modules/dashjs/package.json", "/_preview/../media/blob.bin",
    "/media/%252e%252e/secret.txt",  # double-encoded: a literal name that does not exist
])
def test_everything_else_is_not_found(server: PreviewServer, path: str) -> None:
    status, _, body = request(server, path)
    assert status in (403, 404)
    assert SECRET not in body and body != b"{}"


def test_symlink_inside_the_package_is_served(server: PreviewServer) -> None:
    status, _, body = request(server, "/media/link_in.bin")
    assert (status, body) == (200, MEDIA)


def test_player_bundles_are_served_from_node_modules(server: PreviewServer) -> None:
    for lib in PLAYER_LIBRARIES.values():
        status, _, body = request(server, lib.url)
        assert (status, body) == (200, f"/* {lib.key} */".encode())


def test_config_describes_the_package(server: PreviewServer) -> None:
    status, _, body = request(server, "/_preview/config.json")
    config = json.loads(body)
    assert status == 200
    assert config["package"] == "pkg"
    assert config["manifests"] == {"dash": "/media/stream.mpd", "hls": "/media/master.m3u8"}
    assert {c["id"] for c in config["choices"]} == {"dashjs", "shaka", "shaka-hls", "hlsjs"}


def test_request_log(server: PreviewServer) -> None:
    request(server, "/media/blob.bin", headers={"Range": "bytes=0-9"})
    request(server, "/media/blob.bin", headers={"Range": "bytes=99999-"})
    request(server, "/media/missing.mp4", method="HEAD")
    # The server records a request after answering it: give its thread a moment.
    deadline = time.monotonic() + 5
    while len(server.requests()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    log = [(r.method, r.path, r.range, r.status, r.bytes) for r in server.requests()]
    assert log == [("GET", "/media/blob.bin", "bytes=0-9", 206, 10),
                   ("GET", "/media/blob.bin", "bytes=99999-", 416, 0),
                   ("HEAD", "/media/missing.mp4", None, 404, 0)]


def test_keep_alive_serves_several_ranges_on_one_connection(server: PreviewServer) -> None:
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        for first in (0, 4096, 8192):
            conn.request("GET", "/media/blob.bin", headers={"Range": f"bytes={first}-{first + 9}"})
            response = conn.getresponse()
            assert (response.status, response.read()) == (206, MEDIA[first:first + 10])
    finally:
        conn.close()


def test_parse_range_directly() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-", 10) == (2, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)


def test_busy_port_is_a_bad_input(server: PreviewServer, package: Path) -> None:
    port = server.httpd.server_address[1]
    with pytest.raises(BadInputError, match="cannot listen"):
        PreviewServer(package, None, port=port)


def test_missing_player_libraries_say_run_npm_ci(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PLAYERS_DIR, str(tmp_path / "nowhere"))
    assert find_node_modules() is None
    with pytest.raises(MissingToolError) as excinfo:
        require_node_modules()
    assert "npm ci" in excinfo.value.one_line()


def test_players_dir_override(players: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PLAYERS_DIR, str(players.parent))  # the folder holding node_modules
    assert find_node_modules() == players.resolve()


def _read_json_document(stream: object, deadline: float) -> dict[str, object]:
    text = ""
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            break
        text += line
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no JSON document on stdout: {text!r}")


def test_cli_serves_until_interrupted(package: Path, players: Path) -> None:
    env = {**os.environ, ENV_PLAYERS_DIR: str(players)}
    proc = subprocess.Popen([sys.executable, "-m", "discriminator_cli", "preview", str(package),
                             "--port", "0", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = _read_json_document(proc.stdout, time.monotonic() + 20)
        assert info["host"] == "127.0.0.1"
        assert info["manifests"]["dash"].endswith("/media/stream.mpd")
        players_urls = {p["id"]: p["url"] for p in info["players"]}
        assert players_urls["hlsjs"] == f"{info['url']}?player=hlsjs"
        host_port = str(info["url"]).split("//", 1)[1].rstrip("/")
        conn = http.client.HTTPConnection(host_port, timeout=5)
        conn.request("GET", "/media/blob.bin", headers={"Range": "bytes=0-3"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (206, MEDIA[:4])
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_a_directory_without_manifests(tmp_path: Path, players: Path) -> None:
    env = {**os.environ, ENV_PLAYERS_DIR: str(players)}
    done = subprocess.run([sys.executable, "-m", "discriminator_cli", "preview", str(tmp_path),
                           "--port", "0"], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 2
    assert "stream.mpd" in done.stderr


HUGE = "9" * 5000  # more digits than int() converts by default


@pytest.mark.parametrize(("header", "status"), [
    (f"bytes={HUGE}-", 416),        # starts past any end
    (f"bytes={HUGE}-{HUGE}", 416),
    (f"bytes=0-{HUGE}", 206),       # ends past the end: clipped
    (f"bytes=-{HUGE}", 206),        # a suffix longer than the file: all of it
])
def test_range_with_thousands_of_digits_is_answered(server: PreviewServer, header: str,
                                                    status: int) -> None:
    answered, headers, body = request(server, "/media/blob.bin", headers={"Range": header})
    assert answered == status
    if status == 206:
        assert (headers["content-range"], body) == (f"bytes 0-10239/{len(MEDIA)}", MEDIA)
    else:
        assert headers["content-range"] == f"bytes */{len(MEDIA)}"


def _connect_all(address: tuple[str, int], count: int, seconds: float) -> list[socket.socket]:
    """Open `count` connections at once (non-blocking); the ones established in time."""
    chooser = selectors.DefaultSelector()
    pending = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(address)
        chooser.register(sock, selectors.EVENT_WRITE)
        pending.append(sock)
    done: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    while len(done) < count and time.monotonic() < deadline:
        for key, _ in chooser.select(timeout=0.1):
            chooser.unregister(key.fileobj)
            done.append(key.fileobj)  # type: ignore[arg-type]
    chooser.close()
    for sock in pending:
        if sock not in done or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            sock.close()
    return [s for s in done if s.fileno() != -1]


def test_200_simultaneous_connections_are_all_answered(package: Path, players: Path) -> None:
    """All 200 connect before the server accepts any (the listen backlog holds them; the old
    backlog of 5 held 6), then each gets its answer."""
    server = PreviewServer(package, players, port=0)  # listening, not yet accepting
    connected: list[socket.socket] = []
    try:
        connected = _connect_all(server.httpd.server_address[:2], 200, 5.0)
        assert len(connected) == 200
        server.start()
        for sock in connected:
            sock.setblocking(True)
            sock.settimeout(20)
            sock.sendall(b"GET /media/blob.bin HTTP/1.1\r\nHost: test\r\n"
                         b"Range: bytes=100-109\r\nConnection: close\r\n\r\n")
        for sock in connected:
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 206") and answer.endswith(MEDIA[100:110])
    finally:
        for sock in connected:
            sock.close()
        server.close()


def test_serving_without_player_libraries(package: Path, tmp_path: Path) -> None:
    """A pip install without node_modules: the package is served with ranges, the page and
    the console say the players are missing and how to install them."""
    empty = tmp_path / "no-players"
    empty.mkdir()
    env = {**os.environ, ENV_PLAYERS_DIR: str(empty), "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "discriminator_cli", "preview", str(package),
                             "--port", "0", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = _read_json_document(proc.stdout, time.monotonic() + 20)
        assert info["players"] == []
        host_port = str(info["url"]).split("//", 1)[1].rstrip("/")
        conn = http.client.HTTPConnection(host_port, timeout=5)
        conn.request("GET", "/media/blob.bin", headers={"Range": "bytes=0-3"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (206, MEDIA[:4])
        conn.request("GET", "/_preview/config.json")
        config = json.loads(conn.getresponse().read())
        assert "discriminator players install" in config["players_missing"]
        conn.request("GET", "/")
        assert b'id="notice"' in conn.getresponse().read()
        conn.request("GET", "/_preview/app.js")
        assert b"players_missing" in conn.getresponse().read()
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "discriminator players install" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_lockfile_ships_inside_the_package() -> None:
    """pip users get package.json + package-lock.json as package data; a checkout's root
    files are the same ones (links), so `npm ci` there installs what `players install` does."""
    shipped = NPM_DIR / "package-lock.json"
    lock = json.loads(shipped.read_text())
    pinned = lock["packages"][""]["dependencies"]
    assert {lib.npm_package for lib in PLAYER_LIBRARIES.values()} | {"playwright-core"} \
        <= set(pinned)
    root = Path(__file__).resolve().parents[1]
    for name in NPM_FILES:
        assert (root / name).resolve() == (NPM_DIR / name).resolve()


def test_players_install_dry_run_prints_the_argv_and_touches_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stand_in = tmp_path / "npm"  # would fail if run: a dry run must not run it
    stand_in.write_text("#!/bin/sh\nexit 1\n")
    stand_in.chmod(0o755)
    env = {**os.environ, "XDG_DATA_HOME": str(data), ENV_NPM: str(stand_in)}
    done = subprocess.run([sys.executable, "-m", "discriminator_cli", "players", "install",
                           "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    target = data / "discriminator" / "players"
    assert done.stdout == f"cd {target} && {stand_in} ci --no-audit --no-fund --loglevel=error\n"
    assert not data.exists()


def test_players_install_runs_npm_ci_from_the_lockfile(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in npm that checks it was given the shipped lockfile and lays out the
    bundles: the result is published into the data directory, where preview finds it."""
    stand_in = tmp_path / "npm"
    bundles = [f"node_modules/{lib.npm_package}/{lib.bundle}" for lib in PLAYER_LIBRARIES.values()]
    stand_in.write_text(f"""#!{sys.executable}
import pathlib, sys
assert sys.argv[1:] == ["ci", "--no-audit", "--no-fund", "--loglevel=error"], sys.argv
assert pathlib.Path("package-lock.json").read_bytes() == \\
    pathlib.Path({str(NPM_DIR / "package-lock.json")!r}).read_bytes()
for bundle in {bundles!r}:
    pathlib.Path(bundle).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(bundle).write_text("/* bundle */")
""")
    stand_in.chmod(0o755)
    monkeypatch.setenv(ENV_NPM, str(stand_in))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv(ENV_PLAYERS_DIR, raising=False)
    runner = CommandRunner()
    installed = install_players(runner)
    assert installed == tmp_path / "data" / "discriminator" / "players" / "node_modules"
    assert runner.history == [[str(stand_in), "ci", "--no-audit", "--no-fund",
                               "--loglevel=error"]]
    monkeypatch.chdir(tmp_path)
    found = find_node_modules()
    assert found is not None and found.parent.parent == (tmp_path / "data" / "discriminator")
