"""Filler data on a chunk's last picture: the buffer surplus taken out without an encode."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from discriminator_cli.encode.filler import pad_last_picture
from discriminator_cli.tools import ffmpeg_path, ffprobe_path


def _encode(path: Path, *extra: str) -> Path:
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x90:rate=25:duration=1", "-c:v", "libx264", "-preset",
                    "ultrafast", "-b:v", "200k", "-maxrate", "200k", "-bufsize", "200k",
                    "-x264-params", "nal-hrd=cbr", *extra, str(path)], check=True)
    return path


def _packet_sizes(path: Path) -> list[int]:
    out = subprocess.run([ffprobe_path(), "-v", "error", "-select_streams", "v:0",
                          "-show_entries", "packet=size", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return [int(v) for v in out.split()]


def _decoded(path: Path) -> bytes:
    result = subprocess.run([ffmpeg_path(), "-v", "error", "-xerror", "-i", str(path), "-f",
                             "rawvideo", "-"], check=True, capture_output=True)
    assert not result.stderr
    return result.stdout


def test_filler_grows_the_last_picture_and_changes_no_pixel(tmp_path: Path) -> None:
    chunk = _encode(tmp_path / "chunk.mp4")
    padded = tmp_path / "padded.mp4"
    assert pad_last_picture(chunk, 5000, padded)
    before, after = _packet_sizes(chunk), _packet_sizes(padded)
    assert after[:-1] == before[:-1] and after[-1] == before[-1] + 5000
    assert padded.stat().st_size == chunk.stat().st_size + 5000
    assert _decoded(padded) == _decoded(chunk)
    # The filler is one NAL unit of type 12 after the picture's own NAL units.
    annexb = subprocess.run([ffmpeg_path(), "-v", "error", "-i", str(padded), "-c", "copy",
                             "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-"],
                            check=True, capture_output=True).stdout
    assert annexb.endswith(b"\x00\x00\x01\x0c" + b"\xff" * (5000 - 6) + b"\x80")


def test_layouts_it_does_not_handle_are_refused_untouched(tmp_path: Path) -> None:
    chunk = _encode(tmp_path / "chunk.mp4")
    faststart = _encode(tmp_path / "faststart.mp4", "-movflags", "+faststart")
    fragmented = _encode(tmp_path / "fragmented.mp4", "-movflags", "+frag_keyframe+empty_moov")
    for source in (faststart, fragmented):  # moov first / no sample tables: refused
        assert not pad_last_picture(source, 5000, tmp_path / "out.mp4")
    assert not pad_last_picture(chunk, 5, tmp_path / "out.mp4")  # smaller than a NAL unit
    assert not (tmp_path / "out.mp4").exists()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x10notabox" + b"\x00" * 64)
    assert not pad_last_picture(garbage, 5000, tmp_path / "out.mp4")


@pytest.mark.parametrize("extra", [6, 7, 300])
def test_the_smallest_fillers_are_whole_nal_units(tmp_path: Path, extra: int) -> None:
    chunk = _encode(tmp_path / "chunk.mp4")
    padded = tmp_path / "padded.mp4"
    assert pad_last_picture(chunk, extra, padded)
    assert _packet_sizes(padded)[-1] == _packet_sizes(chunk)[-1] + extra
    assert _decoded(padded) == _decoded(chunk)
