"""Playlist syntax and version rules, MPD helpers, languages, rate maths and the report."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import pytest
from lxml import etree

from discriminator_cli.bitrate import Segment, bucket_holds, peak_bitrate, required_bandwidth
from discriminator_cli.languages import normalize_language
from discriminator_cli.package_layout import parse_iso_duration as parse_duration
from discriminator_cli.validate.checks import unaligned_at
from discriminator_cli.validate.dash import parse_frame_rate, q, where
from discriminator_cli.validate.hls_syntax import check_syntax, check_version, scan
from discriminator_cli.validate.report import Report

PLAYLIST = Path("x.m3u8")
GOOD_MEDIA = """#EXTM3U
#EXT-X-VERSION:6
# a comment, as Bento4 writes them
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="v.mp4",BYTERANGE="886@0"
#EXTINF:1.920,
#EXT-X-BYTERANGE:1000@966
v.mp4

#EXTINF:1.920,
#EXT-X-BYTERANGE:900
v.mp4
#EXT-X-ENDLIST
"""


def syntax_findings(text: str) -> tuple[bool, Report]:
    report = Report()
    return check_syntax(scan(text), PLAYLIST, report), report


def test_scan_keeps_line_numbers_and_kinds() -> None:
    lines = scan(GOOD_MEDIA)
    assert lines[2].tag == "#" and lines[2].number == 3
    uri = [line for line in lines if line.tag is None]
    assert [line.number for line in uri] == [9, 13]  # the blank line 10 is skipped
    extinf = next(line for line in lines if line.tag == "EXTINF")
    assert extinf.value == "1.920," and extinf.where == "line 7"


def test_good_playlist_has_no_syntax_findings() -> None:
    ok, report = syntax_findings(GOOD_MEDIA)
    assert ok and not report.findings


@pytest.mark.parametrize(("text", "line"), [
    ("#EXTINF:2,\nv.ts\n", 1),  # no #EXTM3U
    ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:abc,\nv.ts\n", 3),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:2\nv.ts\n", 3),  # URI without EXTINF
    ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n#EXT-X-ENDLIST\n", 3),  # EXTINF, no URI
    ('#EXTM3U\n#EXT-X-MAP:URI="v.mp4" BYTERANGE="1@0"\n#EXTINF:2,\nv.mp4\n', 2),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:2.5\n#EXTINF:2,\nv.ts\n", 2),
    ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXTINF:2,\nv.ts\n", 4),  # mixed
])
def test_syntax_errors_name_their_line(text: str, line: int) -> None:
    _, report = syntax_findings(text)
    assert [f.check for f in report.errors] == ["hls.syntax"]
    assert report.errors[0].location == f"line {line}"


def test_empty_playlist_and_unknown_tags() -> None:
    ok, report = syntax_findings("\n\n")
    assert not ok and [f.check for f in report.errors] == ["hls.playlist-empty"]
    ok, report = syntax_findings("#EXTM3U\n#EXT-X-MADE-UP:1\n#EXT-X-TARGETDURATION:2\n")
    assert ok and [(f.severity, f.check) for f in report.findings] == \
        [("warning", "hls.unknown-tag")]


@pytest.mark.parametrize(("version", "needed"), [(6, None), (5, 6), (3, 6), (None, 6)])
def test_version_follows_features(version: int | None, needed: int | None) -> None:
    text = GOOD_MEDIA.replace("#EXT-X-VERSION:6\n", f"#EXT-X-VERSION:{version}\n"
                              if version else "")
    report = Report()
    check_version(scan(text), PLAYLIST, report)
    if needed is None:
        assert not report.findings
    else:
        (finding,) = report.errors
        assert finding.check == "hls.version-too-low"
        assert f"version {needed}" in finding.message
        assert finding.location == ("line 2" if version else "line 1")


def test_version_for_byteranges_and_iframes_without_map() -> None:
    text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-I-FRAMES-ONLY\n#EXTINF:2,\n" \
           "#EXT-X-BYTERANGE:10@0\nv.ts\n"
    report = Report()
    check_version(scan(text), PLAYLIST, report)
    assert "version 4" in report.errors[0].message
    report = Report()
    check_version(scan("#EXTM3U\n#EXT-X-VERSION:2\n#EXTINF:2.5,\nv.ts\n"), PLAYLIST, report)
    assert "version 3" in report.errors[0].message


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT6S", 6.0), ("PT6.000S", 6.0), ("PT1H2M3.5S", 3723.5), ("P1DT1S", 86401.0),
    ("PT0S", 0.0), ("6S", None), ("PT", None), ("", None), (None, None),
])
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_parse_frame_rate() -> None:
    assert parse_frame_rate("12800/512") == Fraction(25)
    assert parse_frame_rate("30000/1001") == Fraction(30000, 1001)
    assert parse_frame_rate("25") == 25
    assert parse_frame_rate("25/0") is None and parse_frame_rate("fast") is None


def test_where_names_line_and_path() -> None:
    xml = (b'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">\n<Period>\n<AdaptationSet/>\n'
           b'<AdaptationSet>\n<Representation id="a"/>\n<Representation id="b"/>\n'
           b'</AdaptationSet>\n</Period>\n</MPD>')
    root = etree.fromstring(xml)
    second = list(root.iter(q("Representation")))[1]
    assert where(second) == \
        "line 6 (/MPD/Period[1]/AdaptationSet[2]/Representation[2])"


@pytest.mark.parametrize(("tag", "code"), [("en", "eng"), ("en-GB", "eng"), ("eng", "eng"),
                                           ("ger", "deu"), ("de", "deu"), ("fre", "fra"),
                                           ("und", "und"), ("", None), (None, None)])
def test_normalize_language(tag: str | None, code: str | None) -> None:
    assert normalize_language(tag) == code


def segments(sizes: list[int], durations: list[float]) -> list[Segment]:
    out, start = [], 0.0
    for size, duration in zip(sizes, durations, strict=True):
        out.append(Segment(size, start, duration))
        start += duration
    return out


def test_peak_counts_a_short_last_segment_with_its_neighbour() -> None:
    # 2 s segments of 250 kB (1 Mbit/s) and a 0.5 s tail of 100 kB (1.6 Mbit/s alone).
    segs = segments([250_000] * 3 + [100_000], [2.0] * 3 + [0.5])
    assert peak_bitrate(segs, 2.0) == pytest.approx((250_000 + 100_000) * 8 / 2.5)
    assert peak_bitrate(segs[:-1], 2.0) == pytest.approx(1_000_000)


def brute_force_required(segs: list[Segment], buffer: float) -> float:
    """max over runs i..j of bits / (buffer + duration): the same rule, O(n^2)."""
    best = 0.0
    for i in range(len(segs)):
        bits = seconds = 0.0
        for seg in segs[i:]:
            bits += seg.size * 8
            seconds += seg.duration
            best = max(best, bits / (buffer + seconds))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_bandwidth_bucket_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    segs = segments([rng.randint(20_000, 400_000) for _ in range(40)],
                    [rng.choice([1.92, 2.0, 0.48]) for _ in range(40)])
    exact = brute_force_required(segs, 2.0)
    assert required_bandwidth(segs, 2.0) == pytest.approx(exact, abs=2.0)
    assert bucket_holds(segs, exact * 1.001, 2.0)
    assert not bucket_holds(segs, exact * 0.99, 2.0)


def test_unaligned_at() -> None:
    assert unaligned_at([[0.0, 1.92, 3.84], [0.0, 1.9201, 3.84]], 0.02) is None
    assert unaligned_at([[0.0, 1.92, 3.84], [0.0, 2.88]], 0.02) == (1, 1.92, 2.88)
    index, here, there = unaligned_at([[0.0, 1.92], [0.0, 1.92, 3.84]], 0.02)
    assert index == 2 and here != here and there == 3.84  # NaN: the first list has ended


def test_report_dedupes_counts_and_renders() -> None:
    report = Report(manifests=["/p/master.m3u8", "/p/stream.mpd"])
    for _ in range(2):  # the same media problem reached from DASH and from HLS
        report.error("media.segment-not-sync", "/p/v.mp4", 1234, "not sync")
    report.warning("hls.unknown-tag", "/p/master.m3u8", "line 10", "odd tag")
    report.warning("hls.unknown-tag", "/p/master.m3u8", "line 9", "odd tag")
    report.info("note", "/p/master.m3u8", "line 1", "fyi")
    assert len(report.errors) == 1 and report.errors[0].location == "byte 1234"
    assert report.exit_code() == 1 and Report().exit_code(strict=True) == 0
    only_warning = Report()
    only_warning.warning("w", "f", None, "w")
    assert only_warning.exit_code() == 0 and only_warning.exit_code(strict=True) == 1
    # Severity first, then file, then line numbers as numbers (9 before 10).
    assert [f.location for f in report.sorted_findings()] == \
        ["byte 1234", "line 9", "line 10", "line 1"]
    data = report.as_dict()
    assert data["ok"] is False and data["errors"] == 1 and data["warnings"] == 2
    junit = etree.fromstring(report.junit_xml())
    suites = {s.get("name"): s for s in junit.iter("testsuite")}
    assert set(suites) == {"/p/master.m3u8", "/p/stream.mpd", "/p/v.mp4"}
    assert suites["/p/stream.mpd"].find("testcase").get("name") == "valid"
    assert suites["/p/v.mp4"].find("testcase/failure").get("type") == "media.segment-not-sync"
    assert junit.get("failures") == "1"
    assert etree.fromstring(report.junit_xml(strict=True)).get("failures") == "3"


def test_iframe_playlist_rates_measure_the_byte_ranges(tmp_path: Path) -> None:
    """Peak over RFC 8216 windows with every entry (the short dense last one included) and
    the average over the whole playlist."""
    from discriminator_cli.validate.iframes import iframe_playlist_rates

    playlist = tmp_path / "iframes.m3u8"
    entries = [(20_000, 2.0), (20_000, 2.0), (10_000, 0.5)]
    lines = ["#EXTM3U", "#EXT-X-VERSION:4", "#EXT-X-TARGETDURATION:2", "#EXT-X-I-FRAMES-ONLY"]
    offset = 1000
    for size, seconds in entries:
        lines += [f"#EXTINF:{seconds},", f"#EXT-X-BYTERANGE:{size}@{offset}", "video.mp4"]
        offset += size * 3
    playlist.write_text("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n")
    peak, average = iframe_playlist_rates(playlist)
    assert peak == pytest.approx((20_000 + 10_000) * 8 / 2.5)  # the last two together
    assert average == pytest.approx(50_000 * 8 / 4.5)
