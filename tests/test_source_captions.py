"""Captions inside the source (mov_text, subrip): extracted for every language no --subtitles
file gives, checked like a file, packaged like one; streams that cannot be used are left out
with a warning that says how to add them."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

from discriminator_cli.encode.captions import parse_webvtt
from discriminator_cli.encode.captions_source import _checked
from discriminator_cli.probe import SourceInfo, SubtitleStream
from tests.editors_media import encode_json, ffmpeg, run_cli

FR = "1\n00:00:00,400 --> 00:00:01,400\nBonjour\n\n2\n00:00:02,000 --> 00:00:02,900\nEncore\n"
EN = "WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nHello\n\n00:00:02.000 --> 00:00:02.800\nAgain\n"
EN_FILE = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nFrom the file\n"


def _muxed(folder: Path, name: str, subtitle_codec: str, tags: list[str | None],
           texts: list[str], seconds: float = 3.0) -> Path:
    inputs, maps, metadata = [], ["-map", "0:v", "-map", "1:a"], []
    for n, (tag, text) in enumerate(zip(tags, texts, strict=True)):
        sub = folder / f"{name}_{n}.{'vtt' if text.startswith('WEBVTT') else 'srt'}"
        sub.write_text(text)
        inputs += ["-i", str(sub)]
        maps += ["-map", f"{n + 2}:s"]
        if tag:
            metadata += [f"-metadata:s:s:{n}", f"language={tag}"]
    out = folder / name
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=320x180:r=25:d={seconds}", "-f", "lavfi", "-i",
           f"sine=sample_rate=48000:d={seconds}", *inputs, *maps, "-c:v", "libx264", "-preset",
           "ultrafast", "-c:a", "aac", "-c:s", subtitle_codec, *metadata, str(out))
    return out


def test_mov_text_streams_fill_the_languages_no_file_gives(tmp_path: Path) -> None:
    source = _muxed(tmp_path, "film.mp4", "mov_text", ["fra", "eng"], [FR, EN])
    (tmp_path / "en.vtt").write_text(EN_FILE)
    result = encode_json(str(source), "--preset", "small", "-o", str(tmp_path / "pkg"),
                         "--subtitles", f"eng={tmp_path / 'en.vtt'}")
    assert result["caption_languages"] == ["eng", "fra"]
    assert result["caption_files"] == {"eng": str(tmp_path / "en.vtt"), "fra": str(source)}
    assert result["validation"]["errors"] == 0
    french = parse_webvtt((tmp_path / "pkg" / "text_fra.vtt").read_text())
    assert [(c.start, c.end, c.text) for c in french] == [(0.4, 1.4, "Bonjour"),
                                                          (2.0, 2.9, "Encore")]
    english = parse_webvtt((tmp_path / "pkg" / "text_eng.vtt").read_text())
    assert [c.text for c in english] == ["From the file"]  # the file wins over the stream
    master = (tmp_path / "pkg" / "master.m3u8").read_text()
    assert 'LANGUAGE="fr"' in master and 'LANGUAGE="en"' in master


def test_untagged_streams_are_left_out(tmp_path: Path) -> None:
    source = _muxed(tmp_path, "film.mkv", "srt", ["deu", None], [FR, FR], seconds=3.0)
    done = run_cli("encode", str(source), "--preset", "small", "-o", str(tmp_path / "pkg"),
                   "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    # The extraction runs under --dry-run too (its cues decide the plan) and is printed.
    assert any(line.startswith("# subtitle stream #2 (deu)") and "-map 0:s:0 -c:s webvtt"
               in line for line in done.stdout.splitlines()), done.stdout
    result = json.loads(done.stdout[done.stdout.index("\n{\n") + 1:])["results"][0]
    assert result["caption_languages"] == ["deu"]
    assert any("stream #3 has no language tag and was left out" in w
               for w in result["warnings"]), result["warnings"]


def test_cues_past_the_video_are_cut_at_its_end() -> None:
    """Muxers usually stretch the file's duration to the last cue; where the probed duration
    is shorter, the cue is cut there (with a warning) instead of failing the encode."""
    source = SourceInfo(path="film.mkv", size_bytes=1, duration=2.0, width=2, height=2,
                        coded_width=2, coded_height=2, rotation=0, frame_rate=Fraction(25),
                        variable_frame_rate=False, video_codec="h264", pix_fmt="yuv420p",
                        frame_count=50)
    stream = SubtitleStream(index=2, subtitle_index=0, codec="subrip", language="fra")
    warnings: list[str] = []
    raw = b"WEBVTT\n\n00:00.500 --> 00:01.000\na\n\n00:01.500 --> 00:09.000\nb\n\n" \
          b"00:05.000 --> 00:06.000\nc\n"
    track = _checked(stream, raw, source, warnings)
    assert [(c.start, c.end, c.text) for c in track.cues] == [(0.5, 1.0, "a"), (1.5, 2.0, "b")]
    assert warnings == ["subtitle stream #2 (fra): cues past the end of the video were cut at "
                        "2.000 s"]


def test_a_broken_stream_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    overlapping = ("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\na\n\n"
                   "00:00:01.000 --> 00:00:02.500\nb\n")
    # Matroska keeps each cue's own duration, so the overlap survives muxing (mov_text would
    # cut the first cue short).
    source = _muxed(tmp_path, "film.mkv", "webvtt", ["fra"], [overlapping])
    done = run_cli("encode", str(source), "--preset", "small", "-o", str(tmp_path / "pkg"))
    assert done.returncode == 2, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "subtitle stream #2 (fra)" in lines[0] \
        and "overlapping" in lines[0], lines
    assert not (tmp_path / "pkg").exists()
