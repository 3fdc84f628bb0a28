"""poster.jpg: in every package, at --poster-time / the preset's position, at the top rung's
size; listed in the summary; validate checks it decodes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from discriminator_cli.tools import ffmpeg_path
from tests.editors_media import encode_json, run_cli, tiny_source
from tests.helpers import video_stream


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_source(tmp_path_factory.mktemp("poster") / "clock.mov", seconds=3.0)


def _psnr(a: Path, b: Path) -> float:
    err = subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b),
                          "-lavfi", "psnr", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    value = err.rsplit("average:", 1)[1].split()[0]
    return 100.0 if value == "inf" else float(value)


def _frame(source: Path, at: float, out: Path) -> Path:
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-ss", f"{at}", "-i", str(source),
                    "-frames:v", "1", "-pix_fmt", "yuvj420p", str(out)], check=True)
    return out


def test_poster_at_requested_time_and_top_rung_size(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    result = encode_json(str(source), "--preset", "small", "-o", str(out), "--poster-time",
                         "1.2")
    poster = out / "poster.jpg"
    assert result["poster"] == {"file": "poster.jpg", "time": 1.2, "width": 160, "height": 90}
    assert "poster.jpg" in result["files"]
    assert result["loudness"] == []  # the small preset has no [loudness]: levels untouched
    top = max(result["rungs"], key=lambda r: r["width"])
    stream = video_stream(poster)
    assert (stream["codec_name"], stream["width"], stream["height"]) == \
        ("mjpeg", top["width"], top["height"])
    # The clock in testsrc2 moves: the poster is the frame at 1.2 s, not another one.
    at_time = _psnr(poster, _frame(source, 1.2, tmp_path / "at.jpg"))
    elsewhere = _psnr(poster, _frame(source, 2.4, tmp_path / "later.jpg"))
    assert at_time > 30 and at_time > elsewhere + 5


def test_poster_time_past_the_end_takes_the_last_frame(source: Path, tmp_path: Path) -> None:
    result = encode_json(str(source), "--preset", "small", "-o", str(tmp_path / "pkg"),
                         "--poster-time", "60")
    assert result["poster"]["time"] == pytest.approx(3.0 - 1 / 25)


def test_validate_refuses_a_poster_that_does_not_decode(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    encode_json(str(source), "--preset", "small", "-o", str(out))
    assert run_cli("validate", str(out)).returncode == 0
    (out / "poster.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    done = run_cli("validate", str(out))
    assert done.returncode == 1 and "poster.decode" in done.stdout
    (out / "poster.jpg").unlink()
    done = run_cli("validate", "--strict", str(out))
    assert done.returncode == 1 and "poster.missing" in done.stdout


def test_dry_run_prints_the_poster_argv(source: Path, tmp_path: Path) -> None:
    done = run_cli("encode", str(source), "--preset", "small", "-o", str(tmp_path / "pkg"),
                   "--poster-time", "2", "--dry-run")
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "poster.jpg" in x)
    assert "-ss 2.000" in line and f"file:{source}" in line and "-vframes 1" in line
    assert not (tmp_path / "pkg").exists()


def test_preview_page_uses_the_poster(tmp_path: Path) -> None:
    """The preview server names poster.jpg in config.json (the page sets <video poster>) only
    when the package has one."""
    from discriminator_cli.preview.server import PreviewServer

    (tmp_path / "stream.mpd").write_text("<MPD/>")
    with PreviewServer(tmp_path, None, port=0) as server:
        assert server.httpd.config()["poster"] is None
        (tmp_path / "poster.jpg").write_bytes(b"\xff\xd8\xff")
        assert server.httpd.config()["poster"] == "/media/poster.jpg"
    page = Path(__file__).parents[1] / "discriminator_cli" / "preview" / "page" / "app.js"
    assert "video.poster = config.poster" in page.read_text()
