"""Captions: strict WebVTT/SRT reading with line numbers, packaged in both manifests (DASH
sidecar, HLS segmented WebVTT with X-TIMESTAMP-MAP), checked by validate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from discriminator_cli.encode.captions import (
    CaptionSyntaxError,
    check_cue_times,
    load_captions,
    parse_srt,
    parse_webvtt,
    to_webvtt,
)
from discriminator_cli.errors import BadInputError
from tests.editors_media import encode_json, run_cli, tiny_source

VTT = "WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nHello\n\n00:00:02.000 --> 00:00:02.800\nAgain\n"
SRT = "1\n00:00:00,400 --> 00:00:01,400\nBonjour\n\n2\n00:00:02,000 --> 00:00:02,900\nEncore\n"


def test_srt_becomes_webvtt() -> None:
    cues = parse_srt(SRT)
    assert [(c.start, c.end, c.text) for c in cues] == [(0.4, 1.4, "Bonjour"),
                                                        (2.0, 2.9, "Encore")]
    assert to_webvtt(cues).startswith("WEBVTT\n\n00:00:00.400 --> 00:00:01.400\nBonjour\n")
    assert [c.start for c in parse_webvtt(to_webvtt(cues))] == [0.4, 2.0]


@pytest.mark.parametrize("text,line,problem", [
    ("WEBVTT\n\n00:00:01.000 -> 00:00:02.000\nx\n", 3, "malformed cue timing"),
    ("WEBVTT\n\n00:00:03.000 --> 00:00:02.000\nx\n", 3, "negative or zero duration"),
    ("WEBVTT\n\n-00:00:01.000 --> 00:00:02.000\nx\n", 3, "negative time"),
    ("WEBVT\n\n00:00:01.000 --> 00:00:02.000\nx\n", 1, "starts with 'WEBVTT'"),
    ("WEBVTT\n\nintro\nnot a timing\n", 4, "expected a cue timing line"),
])
def test_malformed_webvtt_names_the_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(CaptionSyntaxError) as info:
        parse_webvtt(text)
    assert info.value.line == line and problem in info.value.problem


def test_overlap_and_cues_past_the_end() -> None:
    cues = parse_webvtt("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\na\n\n"
                        "00:00:01.000 --> 00:00:03.000\nb\n")
    with pytest.raises(CaptionSyntaxError, match=r"line 6: .*overlapping"):
        check_cue_times(cues, None)
    with pytest.raises(CaptionSyntaxError, match="after the video"):
        check_cue_times(cues[:1], 1.5)


@pytest.mark.parametrize("language,content,message", [
    ("eng", b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\ncaf\xe9\n", "line 4: not UTF-8"),
    ("xyz", VTT.encode(), "'xyz' is not a known ISO 639-2 code"),
    ("english", VTT.encode(), "not a three-letter ISO 639-2 code"),
])
def test_bad_files_and_languages(tmp_path: Path, language: str, content: bytes,
                                 message: str) -> None:
    path = tmp_path / "c.vtt"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=message):
        load_captions(language, path, 10.0)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_source(tmp_path_factory.mktemp("captions") / "clip.mov", seconds=3.0)


@pytest.fixture(scope="module")
def caption_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("subs")
    (folder / "en.vtt").write_text(VTT)
    (folder / "fr.srt").write_text(SRT)
    return folder / "en.vtt", folder / "fr.srt"


def _package(source: Path, files: tuple[Path, Path], out: Path, packager: str) -> dict:
    return encode_json(str(source), "--preset", "small", "-o", str(out), "--packager", packager,
                       "--subtitles", f"eng={files[0]}", "--subtitles", f"fra={files[1]}")


@pytest.mark.parametrize("packager", ["shaka", pytest.param("bento4", marks=pytest.mark.bento4)])
def test_captions_in_both_manifests(source: Path, caption_files: tuple[Path, Path],
                                    tmp_path: Path, packager: str) -> None:
    if packager == "bento4":
        from discriminator_cli.tools import find_bento4

        if find_bento4() is None:
            pytest.skip("Bento4 not installed")
    out = tmp_path / "pkg"
    result = _package(source, caption_files, out, packager)
    assert result["caption_languages"] == ["eng", "fra"]
    assert result["validation"]["errors"] == 0
    mpd = (out / "stream.mpd").read_text()
    for lang in ("en", "fr"):
        assert f'lang="{lang}"' in mpd
    assert mpd.count('mimeType="text/vtt"') == 2
    master = (out / "master.m3u8").read_text()
    subtitle_lines = [x for x in master.splitlines() if "TYPE=SUBTITLES" in x]
    assert sorted('LANGUAGE="en"' in x for x in subtitle_lines) == [False, True]
    assert any('LANGUAGE="fr"' in x for x in subtitle_lines)
    assert all('SUBTITLES="' in x for x in master.splitlines()
               if x.startswith("#EXT-X-STREAM-INF"))
    playlist = out / subtitle_lines[0].split('URI="')[1].split('"')[0]
    segments = [x for x in playlist.read_text().splitlines() if x and not x.startswith("#")]
    assert len(segments) == 2  # 3 s of video in 1.92 s segments
    first = (playlist.parent / segments[0]).read_text()
    assert "X-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:0" in first


def test_validate_names_the_broken_cue_line_and_language_mismatch(
        source: Path, caption_files: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    _package(source, caption_files, out, "shaka")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    sidecar = broken / "text_eng.vtt"
    lines = sidecar.read_text().split("\n")
    broken_line = next(i for i, x in enumerate(lines, 1) if x.startswith("00:00:02.000 -->"))
    lines[broken_line - 1] = lines[broken_line - 1].replace("-->", "->")
    sidecar.write_text("\n".join(lines))
    (broken / "master.m3u8").write_text((broken / "master.m3u8").read_text()
                                        .replace('LANGUAGE="fr"', 'LANGUAGE="de"'))
    done = run_cli("validate", "--json", str(broken))
    assert done.returncode == 1
    findings = {(f["check"], Path(f["file"]).name, f["location"])
                for f in json.loads(done.stdout)["findings"]}
    assert ("captions.syntax", "text_eng.vtt", f"line {broken_line}") in findings
    assert any(check == "cross.caption-languages-differ" for check, _, _ in findings)


@pytest.mark.parametrize("content,message", [
    ("WEBVTT\n\n00:00:01.000 --> 00:00:00.500\nx\n", "line 3: cue ends at 0.500 s"),
    ("WEBVTT\n\n00:00:00.000 --> 00:00:09.000\nx\n", "after the video"),
])
def test_bad_captions_fail_encode_with_one_line_and_publish_nothing(
        source: Path, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.vtt"
    path.write_text(content)
    done = run_cli("encode", str(source), "--preset", "small", "-o", str(tmp_path / "pkg"),
                   "--subtitles", f"eng={path}")
    assert done.returncode == 2, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "pkg").exists()
