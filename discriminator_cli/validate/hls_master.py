"""HLS master playlists: variant and rendition attributes against the media they name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import m3u8

from discriminator_cli.bitrate import peak_bitrate
from discriminator_cli.validate import checks
from discriminator_cli.validate.hls import HlsPlaylist, PlaylistCache, parse_m3u8, read_playlist
from discriminator_cli.validate.hls_syntax import PlaylistLine, check_version
from discriminator_cli.validate.iframes import check_iframe_rates
from discriminator_cli.validate.media import codecs_match
from discriminator_cli.validate.report import Report


@dataclass
class HlsRendition:
    location: str
    type: str
    group_id: str
    language: str | None
    codecs: str | None  # from the media, the manifest does not declare it per rendition
    playlist: HlsPlaylist | None
    text_playlist: Path | None = None  # SUBTITLES: a WebVTT playlist, checked by captions.py


@dataclass
class HlsVariant:
    location: str
    resolution: tuple[int, int] | None
    codecs: list[str]
    audio_group: str | None
    playlist: HlsPlaylist | None


@dataclass
class HlsMaster:
    path: Path
    variants: list[HlsVariant] = field(default_factory=list)
    renditions: list[HlsRendition] = field(default_factory=list)

    def media_playlists(self) -> list[HlsPlaylist]:
        found = [v.playlist for v in self.variants] + [r.playlist for r in self.renditions]
        return [p for p in found if p is not None]


def check_master(path: Path, report: Report, playlists: PlaylistCache) -> HlsMaster | None:
    read = read_playlist(path, report)
    if read is None:
        return None
    lines, text = read
    check_version(lines, path, report)
    parsed = parse_m3u8(text, path, report)
    if parsed is None:
        return None
    master = HlsMaster(path)
    by_tag: dict[str, list[PlaylistLine]] = {}
    for line in lines:
        by_tag.setdefault(line.tag or "", []).append(line)
    for media, line in zip(parsed.media, by_tag.get("EXT-X-MEDIA", []), strict=False):
        master.renditions.append(_check_rendition(media, line, path, report, playlists))
    groups = {r.group_id for r in master.renditions}
    for variant, line in zip(parsed.playlists, by_tag.get("EXT-X-STREAM-INF", []), strict=False):
        master.variants.append(_check_variant(variant, line, master, groups, path, report,
                                              playlists))
    for variant, line in zip(parsed.iframe_playlists,
                             by_tag.get("EXT-X-I-FRAME-STREAM-INF", []), strict=False):
        _check_iframe_variant(variant, line, path, report, playlists)
    if not master.variants:
        report.error("hls.playlist-empty", path, "line 1",
                     "the master playlist lists no EXT-X-STREAM-INF variant")
    _check_alignment(master, path, report)
    return master


def _check_rendition(media: m3u8.Media, line: PlaylistLine, path: Path, report: Report,
                     playlists: PlaylistCache) -> HlsRendition:
    for name, value in (("TYPE", media.type), ("GROUP-ID", media.group_id),
                        ("NAME", media.name)):
        if not value:
            report.error("hls.missing-attribute", path, line.where,
                         f"EXT-X-MEDIA lacks {name}, which RFC 8216 requires")
    if media.type == "AUDIO" and not media.language:
        report.error("hls.media-missing-language", path, line.where,
                     f"audio rendition '{media.name}' has no LANGUAGE: players cannot offer "
                     "it by language or match the viewer's preference")
    playlist = None
    text_playlist = None
    if media.uri:
        found = checks.resolve_reference(report, path, media.uri, line.where,
                                         what="rendition playlist")
        if media.type == "SUBTITLES":
            text_playlist = found
        else:
            playlist = playlists.get(found) if found else None
    rendition = HlsRendition(line.where, media.type or "", media.group_id or "",
                             media.language, None, playlist, text_playlist)
    if playlist and playlist.media and playlist.media.usable:
        rendition.codecs = playlist.media.codecs
        if media.type == "AUDIO":
            checks.check_language(report, path, line.where, media.language, playlist.media,
                                  check="hls.language-mismatch")
    return rendition


def _check_variant(variant: m3u8.Playlist, line: PlaylistLine, master: HlsMaster,
                   groups: set[str], path: Path, report: Report,
                   playlists: PlaylistCache) -> HlsVariant:
    info = variant.stream_info
    required = {"BANDWIDTH": info.bandwidth, "AVERAGE-BANDWIDTH": info.average_bandwidth,
                "CODECS": info.codecs, "RESOLUTION": info.resolution,
                "FRAME-RATE": info.frame_rate}
    for name, value in required.items():
        if value is None:
            report.error("hls.missing-attribute", path, line.where,
                         f"EXT-X-STREAM-INF lacks {name}; players choose variants by it")
    if info.audio and info.audio not in groups:
        report.error("hls.missing-group", path, line.where,
                     f"AUDIO=\"{info.audio}\" names no EXT-X-MEDIA group")
    declared_codecs = [c.strip() for c in (info.codecs or "").split(",") if c.strip()]
    found = checks.resolve_reference(report, path, variant.uri, line.where,
                                     what="variant playlist")
    playlist = playlists.get(found) if found else None
    result = HlsVariant(line.where, info.resolution, declared_codecs, info.audio, playlist)
    audio = [r for r in master.renditions if r.group_id == info.audio and r.type == "AUDIO"]
    if playlist is None or playlist.media is None or not playlist.media.usable:
        return result
    media = playlist.media
    sample = media.sample
    if info.resolution and sample and media.is_video and \
            tuple(info.resolution) != (sample.width, sample.height):
        report.error("hls.resolution-mismatch", path, line.where,
                     f"RESOLUTION={info.resolution[0]}x{info.resolution[1]} but the stream is "
                     f"{sample.width}x{sample.height}")
    if info.frame_rate and media.is_video and \
            not checks.frame_rate_matches(info.frame_rate, media.frame_rate):
        report.error("hls.frame-rate-mismatch", path, line.where,
                     f"FRAME-RATE={info.frame_rate} but the stream runs at "
                     f"{float(media.frame_rate or 0):.3f} fps")
    if any(r.codecs is None for r in audio):
        return result  # a broken audio rendition is reported already; sums would mislead
    actual = [c for c in [media.codecs, *(r.codecs for r in audio)] if c]
    _check_codecs(declared_codecs, actual, path, report, line)
    _check_rates(info, playlist, audio, path, report, line)
    return result


def _check_codecs(declared: list[str], actual: list[str], path: Path, report: Report,
                  line: PlaylistLine) -> None:
    if not declared:
        return
    unmatched = [d for d in declared if not any(codecs_match(d, a) for a in actual)]
    undeclared = [a for a in actual if not any(codecs_match(d, a) for d in declared)]
    if unmatched or undeclared:
        report.error("hls.codecs-mismatch", path, line.where,
                     f"CODECS=\"{','.join(declared)}\" but the variant's streams are "
                     f"{', '.join(actual)}; players may reject the variant or pick a "
                     "decoder that cannot play it")


def _check_rates(info: m3u8.StreamInfo, playlist: HlsPlaylist, audio: list[HlsRendition],
                 path: Path, report: Report, line: PlaylistLine) -> None:
    """BANDWIDTH against the measured peak, AVERAGE-BANDWIDTH against the measured average,
    counting the video playlist plus the heaviest audio rendition of its group."""
    parts = [playlist] + [r.playlist for r in audio if r.playlist and r.playlist.segments]
    if not playlist.segments:
        return

    def measure(p: HlsPlaylist, *, with_last: bool) -> float:
        target = float(p.target_duration or max(s.duration for s in p.segments))
        segments = p.segments if with_last or len(p.segments) < 2 else p.segments[:-1]
        return peak_bitrate(segments, target)

    video, audio_parts = parts[0], parts[1:]
    peak = measure(video, with_last=False) + max(
        (measure(p, with_last=False) for p in audio_parts), default=0.0)
    full_peak = measure(video, with_last=True) + max(
        (measure(p, with_last=True) for p in audio_parts), default=0.0)
    average = checks.measured_rates(video.segments, 1.0)[1] + max(
        (checks.measured_rates(p.segments, 1.0)[1] for p in audio_parts), default=0.0)
    if info.bandwidth:
        if checks.peak_too_low(info.bandwidth, peak):
            report.error("hls.bandwidth-below-peak", path, line.where,
                         f"BANDWIDTH={info.bandwidth} is below the measured peak "
                         f"{checks.kbps(peak)} (video plus its heaviest audio rendition); "
                         "players will pick a variant their connection cannot sustain")
        elif checks.peak_too_low(info.bandwidth, full_peak):
            report.warning("hls.bandwidth-final-window", path, line.where,
                           f"BANDWIDTH={info.bandwidth} is below {checks.kbps(full_peak)}, the "
                           "RFC 8216 peak once the final segment counts; Shaka Packager and "
                           "Bento4 both leave it out (a short last segment is denser; "
                           "Bento4's also carries the mfra index)")
    if info.average_bandwidth and checks.average_off(info.average_bandwidth, average):
        report.error("hls.average-bandwidth-mismatch", path, line.where,
                     f"AVERAGE-BANDWIDTH={info.average_bandwidth} is more than "
                     f"{checks.AVERAGE_TOLERANCE:.0%} away from the measured average "
                     f"{checks.kbps(average)}")


def _check_iframe_variant(variant: m3u8.IFramePlaylist, line: PlaylistLine, path: Path,
                          report: Report, playlists: PlaylistCache) -> None:
    info = variant.iframe_stream_info
    for name, value in (("BANDWIDTH", info.bandwidth), ("CODECS", info.codecs),
                        ("RESOLUTION", info.resolution), ("URI", variant.uri)):
        if value is None:
            report.error("hls.missing-attribute", path, line.where,
                         f"EXT-X-I-FRAME-STREAM-INF lacks {name}")
    if not variant.uri:
        return
    found = checks.resolve_reference(report, path, variant.uri, line.where,
                                     what="I-frame playlist")
    playlist = playlists.get(found, iframe=True) if found else None
    if playlist is None or playlist.media is None or not playlist.media.usable:
        return
    declared = [c.strip() for c in (info.codecs or "").split(",") if c.strip()]
    actual = [playlist.media.codecs] if playlist.media.codecs else []
    _check_codecs(declared, actual, path, report, line)
    check_iframe_rates(info, playlist, path, report, line)


def _check_alignment(master: HlsMaster, path: Path, report: Report) -> None:
    unique = {id(v.playlist): v for v in master.variants
              if v.playlist and v.playlist.starts and v.playlist.media
              and v.playlist.media.is_video}
    variants = list(unique.values())
    if len(variants) < 2:
        return
    frame = min(v.playlist.media.frame_seconds for v in variants
                if v.playlist and v.playlist.media)
    starts = [v.playlist.starts for v in variants if v.playlist]
    mismatch = checks.unaligned_at(starts, frame / 2 + checks.TIME_EPSILON)
    if mismatch is not None:
        index, here, there = mismatch
        report.error("hls.segments-unaligned", path, variants[0].location,
                     f"segment {index + 1} starts at {here:.3f} s in one variant and "
                     f"{there:.3f} s in another; switching variants there skips or repeats "
                     "video (keyframes are not aligned across the ladder)")
