"""Properties of real packages made by `encode` (both packager backends)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from tests.helpers import attributes, box_type_at, byte_ranges, keyframe_indices, video_stream

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
GOP = 48


def _video_files(package: Path) -> list[Path]:
    mpd = etree.parse(str(package / "stream.mpd"))
    sets = mpd.xpath("//d:AdaptationSet[d:Representation[starts-with(@codecs, 'avc1')]]",
                     namespaces=NS)
    return [package / url for url in sets[0].xpath(".//d:BaseURL/text()", namespaces=NS)]


def test_keyframes_every_gop_and_aligned_across_rungs(any_package: Path) -> None:
    files = _video_files(any_package)
    assert len(files) == 2
    positions = []
    for path in files:
        keys, count = keyframe_indices(path)
        assert count == 200  # 8 s at 25 fps
        assert keys == list(range(0, count, GOP)), path
        positions.append(keys)
    assert positions[0] == positions[1]


def test_rungs_have_declared_codec_profile_level_and_size(any_package: Path) -> None:
    sizes = set()
    for path in _video_files(any_package):
        stream = video_stream(path)
        assert stream["codec_name"] == "h264" and stream["profile"] == "High"
        assert stream["level"] == 42 and stream["pix_fmt"] == "yuv420p"
        assert stream["r_frame_rate"] == "25/1"
        sizes.add((stream["width"], stream["height"]))
    assert sizes == {(640, 360), (320, 180)}


def test_mpd_is_on_demand_with_segment_base_and_language(any_package: Path) -> None:
    mpd = etree.parse(str(any_package / "stream.mpd")).getroot()
    assert "urn:mpeg:dash:profile:isoff-on-demand:2011" in mpd.get("profiles")
    assert mpd.get("type") == "static"
    reps = mpd.xpath("//d:Representation", namespaces=NS)
    assert len(reps) == 3
    for rep in reps:
        base = rep.find("d:SegmentBase", NS)
        assert base is not None and base.get("indexRange")
        assert base.find("d:Initialization", NS).get("range")
        url = rep.find("d:BaseURL", NS).text
        start = int(base.get("indexRange").split("-")[0])
        assert box_type_at(any_package / url, start) == "sidx"
    audio_sets = mpd.xpath("//d:AdaptationSet[d:Representation[starts-with(@codecs, 'mp4a')]]",
                           namespaces=NS)
    assert [s.get("lang") for s in audio_sets] == ["en"]


def test_hls_master_attributes(any_package: Path) -> None:
    lines = (any_package / "master.m3u8").read_text().splitlines()
    assert lines[0] == "#EXTM3U"
    version = next(int(x.split(":")[1]) for x in lines if x.startswith("#EXT-X-VERSION:"))
    assert version >= 6
    assert "#EXT-X-INDEPENDENT-SEGMENTS" in lines or all(
        "#EXT-X-INDEPENDENT-SEGMENTS" in (any_package / u).read_text()
        for u in _media_playlists(lines))
    streams = [attributes(x) for x in lines if x.startswith("#EXT-X-STREAM-INF:")]
    assert len(streams) == 2
    for attrs in streams:
        for key in ("BANDWIDTH", "AVERAGE-BANDWIDTH", "CODECS", "RESOLUTION", "FRAME-RATE"):
            assert key in attrs
        assert attrs["CODECS"].lower().startswith("avc1.64002a") and "mp4a.40.2" in attrs["CODECS"]
        assert float(attrs["FRAME-RATE"]) == 25.0
    media = [attributes(x) for x in lines if x.startswith("#EXT-X-MEDIA:")]
    assert [(m["TYPE"], m["LANGUAGE"], m["NAME"]) for m in media] == [("AUDIO", "en", "English")]
    iframes = [attributes(x) for x in lines if x.startswith("#EXT-X-I-FRAME-STREAM-INF:")]
    assert len(iframes) == 2 and all((any_package / i["URI"]).is_file() for i in iframes)


def _media_playlists(lines: list[str]) -> list[str]:
    uris = [x for x in lines if x and not x.startswith("#")]
    uris += [attributes(x)["URI"] for x in lines if x.startswith("#EXT-X-MEDIA:")]
    return uris


def test_hls_byte_ranges_land_on_moof_and_map_on_init(any_package: Path) -> None:
    lines = (any_package / "master.m3u8").read_text().splitlines()
    for uri in _media_playlists(lines):
        playlist = any_package / uri
        text = playlist.read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and "#EXT-X-ENDLIST" in text
        map_line = next(x for x in text.splitlines() if x.startswith("#EXT-X-MAP:"))
        map_attrs = attributes(map_line)
        assert box_type_at(any_package / map_attrs["URI"], 0) == "ftyp"
        ranges = byte_ranges(playlist)
        assert len(ranges) >= 4
        for file_name, offset, length in ranges:
            media = any_package / file_name
            assert box_type_at(media, offset) == "moof", (uri, offset)
            assert offset + length <= media.stat().st_size


def test_peak_bandwidth_covers_measured_segments(any_package: Path) -> None:
    """BANDWIDTH must be at least the real peak of any segment (video + audio)."""
    lines = (any_package / "master.m3u8").read_text().splitlines()
    audio_uri = next(attributes(x)["URI"] for x in lines if x.startswith("#EXT-X-MEDIA:"))
    audio_peak = _playlist_peak(any_package / audio_uri)
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            declared = int(attributes(line)["BANDWIDTH"])
            peak = _playlist_peak(any_package / lines[index + 1]) + audio_peak
            assert declared >= 0.98 * peak, (lines[index + 1], declared, peak)


def _playlist_peak(playlist: Path) -> float:
    durations = [float(x.split(":")[1].rstrip(",")) for x in playlist.read_text().splitlines()
                 if x.startswith("#EXTINF:")]
    sizes = [length for _, _, length in byte_ranges(playlist)]
    full = [s * 8 / d for s, d in zip(sizes, durations, strict=True) if d >= 1.0]
    return max(full)


def test_average_bitrate_close_to_target(any_package: Path) -> None:
    """Two-pass CBR settles on the target: within 3 % over the 8 s sample."""
    from discriminator_cli.encode.measure import measure_stream

    targets = {(640, 360): 800_000, (320, 180): 300_000}
    for path in _video_files(any_package):
        stream = video_stream(path)
        measured = measure_stream(path, kind="video", segment_seconds=1.92)
        target = targets[(stream["width"], stream["height"])]
        assert abs(measured.average_bitrate / target - 1) < 0.03, (path, measured)
        assert measured.duration == 8.0


def test_bandwidth_is_the_rfc_peak_including_the_final_segment(any_package: Path) -> None:
    """Packagers leave the short last segment out of BANDWIDTH; encode declares the real peak
    (every run of segments lasting 0.5-1.5 target durations, RFC 8216)."""
    from discriminator_cli.encode.hls_fixes import playlist_peak

    lines = (any_package / "master.m3u8").read_text().splitlines()
    audio_uri = next(attributes(x)["URI"] for x in lines if x.startswith("#EXT-X-MEDIA:"))
    audio = playlist_peak(any_package / audio_uri)
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            video_playlist = any_package / lines[index + 1]
            declared = int(attributes(line)["BANDWIDTH"])
            assert declared >= playlist_peak(video_playlist) + audio
            # The last segment (with its neighbour) is part of that peak.
            ranges = byte_ranges(video_playlist)
            durations = [float(x.split(":")[1].rstrip(",")) for x in
                         video_playlist.read_text().splitlines() if x.startswith("#EXTINF:")]
            assert durations[-1] < 1.0  # 8 s = 4 x 1.92 s + a short final segment
            tail = (ranges[-1][2] + ranges[-2][2]) * 8 / (durations[-1] + durations[-2])
            assert declared >= tail
