"""DASH MPD checks: XML and profile rules, then every Representation against its media file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from lxml import etree

from discriminator_cli.bitrate import Segment, bucket_holds, required_bandwidth
from discriminator_cli.package_layout import DASH_NS, dash_tag, parse_iso_duration
from discriminator_cli.validate import checks
from discriminator_cli.validate.media import MediaCache, MediaInfo, codecs_match
from discriminator_cli.validate.report import Report

ON_DEMAND = "urn:mpeg:dash:profile:isoff-on-demand:2011"
KNOWN_PROFILES = frozenset({
    ON_DEMAND, "urn:mpeg:dash:profile:isoff-live:2011", "urn:mpeg:dash:profile:isoff-main:2011",
    "urn:mpeg:dash:profile:full:2011", "urn:mpeg:dash:profile:isoff-ext-on-demand:2014",
    "urn:mpeg:dash:profile:isoff-ext-live:2014", "urn:mpeg:dash:profile:cmaf:2019",
    "urn:dvb:dash:profile:dvb-dash:2014", "urn:dvb:dash:profile:dvb-dash:isoff-ext-live:2014",
    "urn:dvb:dash:profile:dvb-dash:isoff-ext-on-demand:2014",
    "http://dashif.org/guidelines/dash264",
})
INHERITED = ("mimeType", "codecs", "width", "height", "frameRate", "lang", "contentType",
             "audioSamplingRate")
TEXT_VTT = "text/vtt"
_RANGE = re.compile(r"^(\d+)-(\d+)$")


q = dash_tag


@dataclass
class DashRendition:
    kind: str  # 'video', 'audio' or another content type
    rep_id: str
    location: str
    codecs: str | None
    width: int | None
    height: int | None
    lang: str | None
    media: MediaInfo | None
    text_file: Path | None = None  # a sidecar caption file (text/vtt), checked by captions.py


@dataclass
class DashManifest:
    path: Path
    duration: float | None
    min_buffer_time: float | None
    renditions: list[DashRendition] = field(default_factory=list)


def parse_frame_rate(text: str) -> Fraction | None:
    try:
        num, _, den = text.partition("/")
        value = Fraction(int(num), int(den) if den else 1)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def where(element: etree._Element) -> str:
    """'line 7 (/MPD/Period[1]/AdaptationSet[2]/Representation[1])'."""
    steps = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is None:
            steps.append(name)
        else:
            same = [c for c in parent if isinstance(c.tag, str) and c.tag == node.tag]
            steps.append(f"{name}[{same.index(node) + 1}]")
        node = parent
    return f"line {element.sourceline} (/{'/'.join(reversed(steps))})"


def check_mpd(path: Path, report: Report, cache: MediaCache) -> DashManifest | None:
    report.manifests.append(str(path))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.parse(str(path), parser).getroot()
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else None
        report.error("dash.xml-malformed", path, f"line {line}" if line else None,
                     f"the MPD is not well-formed XML ({exc.msg}); no player can load it")
        return None
    if root.tag != q("MPD"):
        report.error("dash.namespace", path, where(root),
                     f"the root element is {root.tag}, not MPD in the DASH namespace "
                     f"{DASH_NS}; players look for that exact name")
        return None
    manifest = DashManifest(path, parse_iso_duration(root.get("mediaPresentationDuration")),
                            parse_iso_duration(root.get("minBufferTime")))
    on_demand = _check_mpd_attributes(root, path, report, manifest)
    for period in root.iter(q("Period")):
        _check_period(period, path, report, cache, manifest, on_demand=on_demand)
    return manifest


def _check_mpd_attributes(root: etree._Element, path: Path, report: Report,
                          manifest: DashManifest) -> bool:
    loc = where(root)
    profiles = [p.strip() for p in (root.get("profiles") or "").split(",") if p.strip()]
    if not profiles:
        report.error("dash.profiles", path, loc,
                     "MPD@profiles is missing: players cannot tell which rules the package "
                     "follows")
    for profile in profiles:
        if profile not in KNOWN_PROFILES:
            report.warning("dash.profiles", path, loc, f"unknown profile '{profile}'")
    if manifest.min_buffer_time is None:
        report.error("dash.missing-attribute", path, loc,
                     "MPD@minBufferTime is missing or not a duration; @bandwidth means "
                     "nothing without it")
    mpd_type = root.get("type", "static")
    if mpd_type == "static" and manifest.duration is None:
        report.error("dash.missing-attribute", path, loc,
                     "a static MPD needs a valid mediaPresentationDuration "
                     f"(found {root.get('mediaPresentationDuration')!r})")
    on_demand = ON_DEMAND in profiles
    if on_demand and mpd_type != "static":
        report.error("dash.profile-violation", path, loc,
                     "the on-demand profile requires type=\"static\"")
    return on_demand


def _inherited(rep: etree._Element, adaptation: etree._Element, name: str) -> str | None:
    return rep.get(name) if rep.get(name) is not None else adaptation.get(name)


def _base_url(element: etree._Element) -> str:
    """BaseURL elements from the MPD down to `element`, joined like relative URLs."""
    parts: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        base = node.find(q("BaseURL"))
        if base is not None and base.text:
            parts.append(base.text.strip())
        node = node.getparent()
    url = ""
    for part in reversed(parts):
        url = part if checks.is_remote(part) or part.startswith("/") else \
            (url.rsplit("/", 1)[0] + "/" + part if "/" in url else part)
    return url


def _check_period(period: etree._Element, path: Path, report: Report, cache: MediaCache,
                  manifest: DashManifest, *, on_demand: bool) -> None:
    seen_ids: dict[str, str] = {}
    video_frames = []
    sets: list[tuple[etree._Element, list[tuple[DashRendition, list[Segment]]]]] = []
    for adaptation in period.iter(q("AdaptationSet")):
        members = []
        for rep in adaptation.iter(q("Representation")):
            rendition, segments = _check_representation(rep, adaptation, path, report, cache,
                                                         manifest, on_demand=on_demand)
            rep_id = rep.get("id")
            if rep_id is not None:
                if rep_id in seen_ids:
                    report.error("dash.duplicate-id", path, where(rep),
                                 f"Representation id '{rep_id}' is already used at "
                                 f"{seen_ids[rep_id]}; players address renditions by id")
                seen_ids.setdefault(rep_id, where(rep))
            manifest.renditions.append(rendition)
            members.append((rendition, segments))
            if rendition.kind == "video" and rendition.media and rendition.media.usable:
                video_frames.append(rendition.media.frame_seconds)
        sets.append((adaptation, members))
    frame = max(video_frames, default=0.0)
    for adaptation, members in sets:
        _check_alignment(adaptation, members, path, report)
        for rendition, _ in members:
            _check_duration(rendition, manifest, path, report, frame)


def _check_representation(rep: etree._Element, adaptation: etree._Element, path: Path,
                          report: Report, cache: MediaCache, manifest: DashManifest,
                          *, on_demand: bool) -> tuple[DashRendition, list[Segment]]:
    loc = where(rep)
    attrs = {name: _inherited(rep, adaptation, name) for name in INHERITED}
    kind = attrs["contentType"] or (attrs["mimeType"] or "").split("/", 1)[0] or "unknown"
    rendition = DashRendition(kind, rep.get("id") or "", loc, attrs["codecs"],
                              _int(attrs["width"]), _int(attrs["height"]), attrs["lang"], None)
    if attrs["mimeType"] == TEXT_VTT:
        # A sidecar WebVTT has no codecs, boxes or index: captions.py checks its cues.
        reference = _base_url(rep)
        if reference:
            rendition.text_file = checks.resolve_reference(report, path, reference, loc,
                                                           what="BaseURL")
        return rendition, []
    required = ["id", "bandwidth", "codecs", "mimeType"]
    if kind == "video":
        required += ["width", "height", "frameRate"]
    elif kind == "audio":
        required += ["lang"]
    for name in required:
        value = rep.get(name) if name in ("id", "bandwidth") else attrs.get(name)
        if value is None:
            report.error("dash.missing-attribute", path, loc,
                         f"{kind} Representation lacks @{name} (on it or its AdaptationSet)")
    segment_base = rep.find(q("SegmentBase"))
    if segment_base is None:
        segment_base = adaptation.find(q("SegmentBase"))
    if on_demand and (segment_base is None or segment_base.get("indexRange") is None
                      or segment_base.find(q("Initialization")) is None
                      or segment_base.find(q("Initialization")).get("range") is None):
        report.error("dash.profile-violation", path, loc,
                     "the on-demand profile needs SegmentBase with @indexRange and "
                     "Initialization@range, so players can find the sidx and init bytes")
    reference = _base_url(rep)
    if not reference:
        report.error("dash.missing-attribute", path, loc,
                     "no BaseURL: the Representation does not say which file holds its media")
        return rendition, []
    media_path = checks.resolve_reference(report, path, reference, loc, what="BaseURL")
    if media_path is None:
        return rendition, []
    media = checks.load_media(report, cache, media_path, path)
    rendition.media = media
    if not media.usable:
        return rendition, []
    _compare_declaration(rep, attrs, kind, media, path, report, loc)
    if segment_base is None:
        return rendition, []
    segments = _check_segment_base(segment_base, media, path, report, loc)
    if segments:
        checks.check_segment_starts(report, media,
                                      [s.offset for s in segments if s.offset is not None], path)
        _check_bandwidth(rep, segments, manifest, report, loc)
    return rendition, segments


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _compare_declaration(rep: etree._Element, attrs: dict[str, str | None], kind: str,
                         media: MediaInfo, path: Path, report: Report, loc: str) -> None:
    expected_handler = {"video": "vide", "audio": "soun"}.get(kind)
    if expected_handler and media.handler != expected_handler:
        report.error("dash.content-type-mismatch", path, loc,
                     f"declared {kind} but {media.path.name} holds a '{media.handler}' track")
    declared_codecs, actual_codecs = attrs["codecs"], media.codecs
    if declared_codecs and actual_codecs and not codecs_match(declared_codecs, actual_codecs):
        report.error("dash.codecs-mismatch", path, loc,
                     f"@codecs is '{declared_codecs}' but the stream in {media.path.name} is "
                     f"'{actual_codecs}'; players may reject it or pick the wrong decoder")
    sample = media.sample
    if kind == "video" and sample is not None:
        width, height = _int(attrs["width"]), _int(attrs["height"])
        if width and height and (width, height) != (sample.width, sample.height):
            report.error("dash.resolution-mismatch", path, loc,
                         f"declared {width}x{height} but the stream is "
                         f"{sample.width}x{sample.height}")
        declared_rate = parse_frame_rate(attrs["frameRate"] or "")
        if attrs["frameRate"] and declared_rate is None:
            report.error("dash.missing-attribute", path, loc,
                         f"@frameRate '{attrs['frameRate']}' is not a number or a fraction")
        elif declared_rate and not checks.frame_rate_matches(declared_rate, media.frame_rate):
            report.error("dash.frame-rate-mismatch", path, loc,
                         f"declared frameRate {attrs['frameRate']} but the samples last "
                         f"{media.frame_duration}/{media.timescale} s "
                         f"({float(media.frame_rate or 0):.3f} fps)")
    if kind == "audio":
        checks.check_language(report, path, loc, attrs["lang"], media,
                              check="dash.language-mismatch")


def _parse_range(text: str | None) -> tuple[int, int] | None:
    match = _RANGE.match(text.strip()) if text else None
    if not match:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return (first, last) if first <= last else None


def _check_segment_base(segment_base: etree._Element, media: MediaInfo, path: Path,
                        report: Report, loc: str) -> list[Segment]:
    init = segment_base.find(q("Initialization"))
    init_text = init.get("range") if init is not None else None
    index_text = segment_base.get("indexRange")
    for name, text in (("Initialization@range", init_text), ("@indexRange", index_text)):
        if text is None:
            continue
        parsed = _parse_range(text)
        if parsed is None:
            report.error("dash.range-invalid", path, loc, f"{name} '{text}' is not 'first-last'")
        elif parsed[1] >= media.size:
            report.error("dash.range-out-of-file", path, loc,
                         f"{name} {text} ends past the end of {media.path.name} "
                         f"({media.size} bytes)")
    init_range = _parse_range(init_text)
    if init_range and media.moov_end and (init_range[0] != 0 or init_range[1] + 1 < media.moov_end):
        report.error("dash.init-range", path, loc,
                     f"Initialization@range {init_text} does not cover ftyp+moov "
                     f"(bytes 0-{media.moov_end - 1})")
    index_range = _parse_range(index_text)
    if index_range is None or index_range[1] >= media.size:
        return []
    return _check_sidx(index_range, media, path, report, loc,
                       timescale=_int(segment_base.get("timescale")))


def _check_sidx(index_range: tuple[int, int], media: MediaInfo, path: Path, report: Report,
                loc: str, *, timescale: int | None) -> list[Segment]:
    sidx = media.sidx.get(index_range[0])
    if sidx is None:
        report.error("dash.sidx-invalid", path, loc,
                     f"there is no sidx box at byte {index_range[0]} of {media.path.name} "
                     "(the start of @indexRange); players cannot find the segments")
        return []
    if sidx.offset + sidx.size - 1 != index_range[1]:
        report.error("dash.sidx-invalid", path, loc,
                     f"@indexRange ends at {index_range[1]} but the sidx ends at "
                     f"{sidx.offset + sidx.size - 1}")
    if timescale and timescale != sidx.timescale:
        report.warning("dash.sidx-invalid", path, loc,
                       f"SegmentBase@timescale {timescale} differs from the sidx timescale "
                       f"{sidx.timescale}")
    fragments = media.fragment_index()
    segments: list[Segment] = []
    offset, time = sidx.anchor, sidx.earliest_presentation_time
    for number, ref in enumerate(sidx.references, 1):
        if ref.reference_type == 1:
            report.warning("dash.sidx-invalid", media.path, sidx.offset,
                           f"sidx reference {number} points at another sidx; this validator "
                           "checks single-level indexes only", manifest=path)
            return []
        if offset not in fragments and offset < media.size:
            report.error("dash.sidx-not-moof", media.path, offset,
                         f"sidx reference {number} starts at byte {offset}, which is not a moof "
                         "box; a player fetching that subsegment gets garbage", manifest=path)
        if not ref.starts_with_sap:
            report.warning("dash.sidx-invalid", media.path, sidx.offset,
                           f"sidx reference {number} is not marked as starting with a SAP",
                           manifest=path)
        segments.append(Segment(ref.size, time / sidx.timescale,
                                ref.duration / sidx.timescale, offset=offset))
        offset += ref.size
        time += ref.duration
    referenced = offset - sidx.anchor
    if media.fragments and offset != media.media_end:
        report.error("dash.sidx-size-mismatch", media.path, sidx.offset,
                     f"the sidx references {referenced} bytes from byte {sidx.anchor} but the "
                     f"media fragments that follow span {media.media_end - sidx.anchor} bytes",
                     manifest=path)
    return segments


def _check_bandwidth(rep: etree._Element, segments: list[Segment], manifest: DashManifest,
                     report: Report, loc: str) -> None:
    declared = _int(rep.get("bandwidth"))
    if not declared or manifest.min_buffer_time is None:
        return
    buffer = manifest.min_buffer_time
    if not bucket_holds(segments, declared * (1 + checks.PEAK_ROUNDING), buffer):
        needed = required_bandwidth(segments, buffer)
        report.error("dash.bandwidth-below-peak", manifest.path, loc,
                     f"@bandwidth {checks.kbps(declared)} is below the {checks.kbps(needed)} "
                     f"this Representation needs: delivered at the declared rate after "
                     f"minBufferTime ({buffer:g} s) of buffering, some run of subsegments "
                     "arrives after its playout time, so players would stall")


def _check_duration(rendition: DashRendition, manifest: DashManifest, path: Path,
                    report: Report, video_frame: float) -> None:
    media = rendition.media
    if manifest.duration is None or media is None or not media.usable or not media.fragments:
        return
    tolerance = max(video_frame, media.frame_seconds) + checks.TIME_EPSILON
    actual = media.duration_seconds
    if abs(actual - manifest.duration) > tolerance:
        report.error("dash.duration-mismatch", path, rendition.location,
                     f"mediaPresentationDuration is {manifest.duration:.3f} s but "
                     f"{media.path.name} lasts {actual:.3f} s (more than one frame, "
                     f"{tolerance:.3f} s, apart)")


def _check_alignment(adaptation: etree._Element,
                     members: list[tuple[DashRendition, list[Segment]]], path: Path,
                     report: Report) -> None:
    timed = [(r, segs) for r, segs in members if segs and r.media and r.media.usable]
    if len(timed) < 2:
        return
    frame = min(r.media.frame_seconds for r, _ in timed if r.media) or 0.0
    starts = [[s.start for s in segs] for _, segs in timed]
    mismatch = checks.unaligned_at(starts, frame / 2 + checks.TIME_EPSILON)
    if mismatch is not None:
        index, here, there = mismatch
        report.error("dash.segments-unaligned", path, where(adaptation),
                     f"subsegment {index + 1} starts at {here:.3f} s in one Representation and "
                     f"{there:.3f} s in another; switching renditions there would skip or "
                     "repeat video (keyframes are not aligned across the ladder)")
