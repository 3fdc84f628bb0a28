"""HLS media playlists: tags a VOD fMP4 playlist needs, byte ranges, and the segments' media."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import m3u8

from discriminator_cli.bitrate import Segment
from discriminator_cli.validate import checks
from discriminator_cli.validate.hls_syntax import (
    MAX_PLAYLIST_BYTES,
    MAX_PLAYLIST_LINES,
    PlaylistLine,
    attributes,
    byterange,
    check_syntax,
    check_version,
    is_master,
    scan,
)
from discriminator_cli.validate.media import Fragment, MediaCache, MediaInfo
from discriminator_cli.validate.report import Report, excerpt

FMP4_SUFFIXES = (".mp4", ".m4s", ".m4v", ".m4a", ".cmfv", ".cmfa", ".mp4a", ".mp4v")


@dataclass
class HlsPlaylist:
    path: Path
    target_duration: int | None
    iframes_only: bool
    segments: list[Segment] = field(default_factory=list)  # size/offset from BYTERANGE
    starts: list[float] = field(default_factory=list)  # media time of each segment, seconds
    extinf_total: float = 0.0
    media: MediaInfo | None = None  # when every segment comes from one file


def read_playlist(path: Path, report: Report) -> tuple[list[PlaylistLine], str] | None:
    """Record the playlist as checked and read it; None (with findings) when it is not
    UTF-8 or not valid playlist syntax."""
    report.manifests.append(str(path))
    with open(path, "rb") as handle:
        raw = handle.read(MAX_PLAYLIST_BYTES + 1)
    if len(raw) > MAX_PLAYLIST_BYTES:
        report.error("hls.too-large", path, "",
                     f"the playlist is larger than {MAX_PLAYLIST_BYTES >> 20} MiB (a day of "
                     "1-second segments with byte ranges is about 6 MiB); players load "
                     "playlists whole, and this validator does not read it")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.error("hls.syntax", path, f"byte {exc.start}",
                     "the playlist is not UTF-8 text, as RFC 8216 requires")
        return None
    text = text.removeprefix("\ufeff")
    if text.count("\n") > MAX_PLAYLIST_LINES:
        report.error("hls.too-large", path, "",
                     f"the playlist has more than {MAX_PLAYLIST_LINES} lines (a day of "
                     "1-second segments with byte ranges has about 260 000); this validator "
                     "does not read it")
        return None
    lines = scan(text)
    if not check_syntax(lines, path, report):
        return None
    _confine_other_uris(lines, path, report)
    return lines, text


# Tags whose URI attribute names a file that this validator does not read (keys, parts...);
# EXT-X-MAP, EXT-X-MEDIA and the stream tags are resolved where they are checked.
_OTHER_URI_TAGS = frozenset({"EXT-X-KEY", "EXT-X-SESSION-KEY", "EXT-X-SESSION-DATA",
                             "EXT-X-PRELOAD-HINT", "EXT-X-PART", "EXT-X-RENDITION-REPORT"})


def _confine_other_uris(lines: list[PlaylistLine], path: Path, report: Report) -> None:
    for line in lines:
        if line.tag in _OTHER_URI_TAGS:
            uri = attributes(line.value).get("URI")
            if uri and not uri.startswith(("data:", "skd:")):
                checks.resolve_reference(report, path, uri, line.where, what=f"#{line.tag} URI",
                                         must_exist=False)


def parse_m3u8(text: str, path: Path, report: Report) -> m3u8.M3U8 | None:
    """The `m3u8` package's parse of a playlist our syntax check accepted, or None with a
    finding: its value conversions are its own, so a value we let through may still fail."""
    try:
        return m3u8.loads(text)
    except (ValueError, ArithmeticError, TypeError, AttributeError, IndexError,
            KeyError) as exc:
        report.error("hls.syntax", path, "",
                     f"the playlist cannot be parsed ({excerpt(str(exc))}); players would "
                     "likely refuse it too")
        return None


class PlaylistCache:
    """Each media playlist is checked once per run, however many masters name it."""

    def __init__(self, report: Report, media: MediaCache):
        self.report, self.media = report, media
        self._done: dict[Path, HlsPlaylist | None] = {}

    def get(self, path: Path, *, iframe: bool = False) -> HlsPlaylist | None:
        key = path.resolve()
        if key not in self._done:
            self._done[key] = check_media_playlist(key, self.report, self.media,
                                                   expect_iframes=iframe)
        return self._done[key]

    def checked(self) -> set[Path]:
        return set(self._done)


def check_media_playlist(path: Path, report: Report, cache: MediaCache, *,
                         expect_iframes: bool = False) -> HlsPlaylist | None:
    read = read_playlist(path, report)
    if read is None:
        return None
    lines, text = read
    if is_master(lines):
        report.error("hls.syntax", path, "line 1",
                     "a master playlist was given where a media playlist is expected")
        return None
    check_version(lines, path, report)
    parsed = parse_m3u8(text, path, report)
    if parsed is None:
        return None
    extinf_lines = [line for line in lines if line.tag == "EXTINF"]
    if not parsed.segments:
        report.error("hls.playlist-empty", path, "line 1",
                     "the playlist lists no segments; there is nothing to play")
        return None
    playlist = HlsPlaylist(path, parsed.target_duration, bool(parsed.is_i_frames_only))
    _check_tags(lines, parsed, playlist, path, report, expect_iframes=expect_iframes)
    _check_segments(parsed, extinf_lines, playlist, path, report, cache)
    return playlist


def _find(lines: list[PlaylistLine], tag: str) -> PlaylistLine | None:
    return next((line for line in lines if line.tag == tag), None)


def _check_tags(lines: list[PlaylistLine], parsed: m3u8.M3U8, playlist: HlsPlaylist,
                path: Path, report: Report, *, expect_iframes: bool) -> None:
    target_line = _find(lines, "EXT-X-TARGETDURATION")
    if target_line is None:
        report.error("hls.missing-tag", path, "line 1",
                     "EXT-X-TARGETDURATION is required in every media playlist")
    if not parsed.is_endlist:
        report.error("hls.missing-tag", path, f"line {lines[-1].number}",
                     "no EXT-X-ENDLIST: players treat the playlist as live and keep "
                     "reloading it instead of playing on demand")
    if (parsed.playlist_type or "").upper() != "VOD":
        report.error("hls.missing-tag", path, "line 1",
                     "no EXT-X-PLAYLIST-TYPE:VOD; an on-demand package should say so, so "
                     "players can seek the whole timeline")
    if expect_iframes and not playlist.iframes_only:
        report.error("hls.missing-tag", path, "line 1",
                     "named by EXT-X-I-FRAME-STREAM-INF but lacks EXT-X-I-FRAMES-ONLY")
    uris = [segment.uri or "" for segment in parsed.segments]
    if any(uri.lower().endswith(FMP4_SUFFIXES) for uri in uris) and \
            not any(segment.init_section for segment in parsed.segments):
        report.error("hls.missing-map", path, "line 1",
                     "fMP4 segments need EXT-X-MAP naming their initialization section; "
                     "without it players cannot decode them")
    if target_line is None or parsed.target_duration is None:
        return
    for line in lines:
        if line.tag != "EXTINF":
            continue
        duration = Decimal(line.value.split(",", 1)[0].strip())
        # to_integral_value, unlike quantize, has no precision limit on the digits it keeps.
        if duration.to_integral_value(rounding=ROUND_HALF_UP) > parsed.target_duration:
            report.error("hls.extinf-over-target", path, line.where,
                         f"EXTINF {duration} rounds above EXT-X-TARGETDURATION "
                         f"{parsed.target_duration} (line {target_line.number}); players "
                         "size their buffers and reload timers from the target duration")


def _ranges(parsed: m3u8.M3U8, extinf_lines: list[PlaylistLine], path: Path,
            report: Report) -> list[tuple[str, int | None, int | None]]:
    """(uri, offset, length) per segment; an offset-less range continues the previous one."""
    ranges: list[tuple[str, int | None, int | None]] = []
    previous: tuple[str, int] | None = None  # uri and end of the previous sub-range
    for segment, line in zip(parsed.segments, extinf_lines, strict=False):
        uri = segment.uri or ""
        parsed_range = byterange(segment.byterange or "")  # in range: checked by the syntax
        if parsed_range is None:
            ranges.append((uri, None, None))
            previous = None
            continue
        length, given_offset = parsed_range
        if given_offset is not None:
            offset = given_offset
        elif previous is not None and previous[0] == uri:
            offset = previous[1]
        else:
            report.error("hls.syntax", path, line.where,
                         "EXT-X-BYTERANGE without an offset must follow a sub-range of the "
                         "same resource")
            ranges.append((uri, None, length))
            previous = None
            continue
        ranges.append((uri, offset, length))
        previous = (uri, offset + length)
    return ranges


def _check_segments(parsed: m3u8.M3U8, extinf_lines: list[PlaylistLine],
                    playlist: HlsPlaylist, path: Path, report: Report,
                    cache: MediaCache) -> None:
    ranges = _ranges(parsed, extinf_lines, path, report)
    resolved: dict[str, MediaInfo | None] = {}
    maps: dict[str, Path | None] = {}
    previous_end: tuple[str, int] | None = None
    starts_to_check: dict[Path, list[int]] = {}
    clock = 0.0
    for (uri, offset, length), segment, line in zip(ranges, parsed.segments, extinf_lines,
                                                    strict=False):
        duration = float(segment.duration or 0.0)
        playlist.extinf_total += duration
        init = segment.init_section
        if init is not None and init.uri and init.uri not in maps:
            maps[init.uri] = checks.resolve_reference(report, path, init.uri, line.where,
                                                      what="EXT-X-MAP URI")
        if uri not in resolved:
            found = checks.resolve_reference(report, path, uri, line.where, what="segment")
            resolved[uri] = checks.load_media(report, cache, found, path) if found else None
            if found:
                _check_map(segment, found, resolved[uri], path, report, line)
        media = resolved[uri]
        if offset is None or length is None or media is None:
            clock += duration
            continue
        if offset + length > media.size:
            report.error("hls.byterange-out-of-file", path, line.where,
                         f"bytes {offset}-{offset + length - 1} of {Path(uri).name} are "
                         f"requested but the file has {media.size} bytes; the request fails")
        if not playlist.iframes_only and previous_end and previous_end[0] == uri \
                and previous_end[1] != offset:
            gap = offset - previous_end[1]
            report.error("hls.byterange-not-contiguous", path, line.where,
                         f"this segment starts at byte {offset} but the previous one ended at "
                         f"{previous_end[1]} ({'a gap of' if gap > 0 else 'an overlap of'} "
                         f"{abs(gap)} bytes); bytes are skipped or fed twice to the decoder")
        previous_end = (uri, offset + length)
        start = _media_start(media, offset)
        playlist.segments.append(Segment(length, start if start is not None else clock,
                                         duration, offset=offset))
        playlist.starts.append(start if start is not None else clock)
        clock += duration
        if media.usable:
            _check_against_fragments(media, offset, length, duration, playlist, path, report,
                                     line, starts_to_check)
    for media_path, offsets in starts_to_check.items():
        checks.check_segment_starts(report, cache.get(media_path), offsets, path)
    medias = {id(m): m for m in resolved.values() if m is not None}
    if len(resolved) == 1 and len(medias) == 1:
        playlist.media = next(iter(medias.values()))
        _check_total_duration(playlist, path, report, extinf_lines)


def _media_start(media: MediaInfo, offset: int) -> float | None:
    index = media.fragment_index().get(offset)
    if index is None or not media.timescale:
        return None
    decode_time = media.fragments[index].decode_time
    return decode_time / media.timescale if decode_time is not None else None


def _check_map(segment: m3u8.Segment, found: Path, media: MediaInfo | None, path: Path,
               report: Report, line: PlaylistLine) -> None:
    init = segment.init_section
    if init is None or media is None or not init.byterange or \
            Path(init.uri or "").name != found.name:
        return
    parsed_range = byterange(init.byterange)
    if parsed_range is None:
        report.error("hls.syntax", path, line.where,
                     f"EXT-X-MAP BYTERANGE '{excerpt(init.byterange)}' is not "
                     "<length>[@<offset>]")
        return
    length, offset = parsed_range[0], parsed_range[1] or 0
    if offset + length > media.size:
        report.error("hls.byterange-out-of-file", path, line.where,
                     f"EXT-X-MAP asks for bytes {offset}-{offset + length - 1} but "
                     f"{found.name} has {media.size} bytes")
    elif media.moov_end and (offset != 0 or offset + length < media.moov_end):
        report.error("hls.map-range", path, line.where,
                     f"EXT-X-MAP covers bytes {offset}-{offset + length - 1} but ftyp+moov "
                     f"span 0-{media.moov_end - 1}; players get an incomplete init section")


def _check_against_fragments(media: MediaInfo, offset: int, length: int, duration: float,
                             playlist: HlsPlaylist, path: Path, report: Report,
                             line: PlaylistLine, starts_to_check: dict[Path, list[int]]) -> None:
    index = media.fragment_index()
    first = index.get(offset)
    if first is None:
        report.error("hls.segment-not-fragment-start", path, line.where,
                     f"the byte range starts at {offset} of {media.path.name}, which is not a "
                     "moof box; the player cannot parse the segment")
        return
    fragment = media.fragments[first]
    end = offset + length
    if playlist.iframes_only:
        _check_iframe(media, fragment, first, end, path, report, line)
        return
    starts_to_check.setdefault(media.path, []).append(offset)
    if end > media.size:
        return  # reported as hls.byterange-out-of-file
    if end not in media.segment_ends():
        report.error("hls.segment-not-fragment-start", path, line.where,
                     f"the byte range ends at {end}, inside a fragment of {media.path.name}; "
                     "the next segment would start mid-fragment")
        return
    if end > media.media_end and media.fragments and offset == media.fragments[-1].offset:
        report.info("hls.range-covers-index", path, line.where,
                    f"the last byte range also covers the {end - media.media_end} bytes after "
                    f"the media in {media.path.name} (Bento4 writes its mfra index there); "
                    "players download them with the segment and skip them")
    covered = []
    for following in media.fragments[first:]:
        if following.offset >= end:
            break
        covered.append(following)
    actual = sum(f.duration for f in covered) / media.timescale
    tolerance = media.frame_seconds + checks.TIME_EPSILON
    if abs(actual - duration) > tolerance:
        report.warning("hls.extinf-mismatch", path, line.where,
                       f"EXTINF says {duration:.3f} s but the segment's samples last "
                       f"{actual:.3f} s; players' timelines drift from the media")


def _check_iframe(media: MediaInfo, fragment: Fragment, position: int, end: int, path: Path,
                  report: Report, line: PlaylistLine) -> None:
    if not fragment.first_sample_sync or fragment.starts_with_idr is False:
        report.error("hls.iframe-not-sync", path, line.where,
                     f"the I-frame entry points at fragment {position + 1} of "
                     f"{media.path.name}, whose first sample is not a sync (IDR) sample")
    elif end < fragment.first_sample_end or end > fragment.end:
        report.error("hls.iframe-range", path, line.where,
                     f"the I-frame byte range ends at {end} but the I-frame occupies bytes "
                     f"{fragment.first_sample_offset}-{fragment.first_sample_end - 1}; "
                     "trick play would decode a partial or wrong frame")


def _check_total_duration(playlist: HlsPlaylist, path: Path, report: Report,
                          extinf_lines: list[PlaylistLine]) -> None:
    media = playlist.media
    if media is None or not media.usable or not media.fragments or playlist.iframes_only:
        return
    tolerance = media.frame_seconds + checks.TIME_EPSILON
    if abs(media.duration_seconds - playlist.extinf_total) > tolerance:
        report.error("hls.duration-mismatch", path, extinf_lines[-1].where,
                     f"the EXTINF durations add up to {playlist.extinf_total:.3f} s but "
                     f"{media.path.name} lasts {media.duration_seconds:.3f} s")
