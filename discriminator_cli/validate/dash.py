"""DASH MPD checks: XML and profile rules, then every Representation against its media file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from discriminator_cli.bitrate import Segment, bucket_holds, required_bandwidth
from discriminator_cli.validate import checks
from discriminator_cli.validate.dash_index import check_segment_base
from discriminator_cli.validate.dash_syntax import (
    DASH_NS,
    REFERENCE_ATTRIBUTES,
    TEMPLATE_IDENTIFIER,
    base_url,
    join_base,
    parse_duration,
    parse_frame_rate,
    q,
    unsigned,
    where,
)
from discriminator_cli.validate.media import MediaCache, MediaInfo, codecs_match
from discriminator_cli.validate.report import Report, excerpt
from discriminator_cli.validate.webm import WEBM_MIME_TYPES, check_webm_representation

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
# Real MPDs are kilobytes (a SegmentTimeline for a day is a few MiB); a larger file or more
# Representations than any ladder has is refused before the per-element checks multiply.
MAX_MPD_BYTES = 16 << 20
MAX_REPRESENTATIONS = 2_000
TEXT_VTT = "text/vtt"


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
    webm_frame_seconds: float | None = None  # a WebM Representation (validate/webm.py)

    def frame_seconds(self) -> float | None:
        if self.media is not None and self.media.usable:
            return self.media.frame_seconds
        return self.webm_frame_seconds


@dataclass
class DashManifest:
    path: Path
    duration: float | None
    min_buffer_time: float | None
    renditions: list[DashRendition] = field(default_factory=list)


def check_mpd(path: Path, report: Report, cache: MediaCache) -> DashManifest | None:
    report.manifests.append(str(path))
    with open(path, "rb") as handle:
        data = handle.read(MAX_MPD_BYTES + 1)
    if len(data) > MAX_MPD_BYTES:
        report.error("dash.too-large", path, "",
                     f"the MPD is larger than {MAX_MPD_BYTES >> 20} MiB; real ones are "
                     "kilobytes, and this validator does not read it")
        return None
    # No DTD, no entity expansion, no network, and libxml2's default limits on depth (256)
    # and text size (huge_tree off): a hostile MPD fails to parse instead of growing.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                             load_dtd=False, dtd_validation=False)
    try:
        root = etree.fromstring(data, parser, base_url=str(path))
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else None
        report.error("dash.xml-malformed", path, f"line {line}" if line else None,
                     f"the MPD is not well-formed XML ({excerpt(str(exc.msg))}); no player "
                     "can load it")
        return None
    if root is None or root.tag != q("MPD"):
        tag = excerpt(str(root.tag)) if root is not None else "missing"
        report.error("dash.namespace", path, where(root) if root is not None else "",
                     f"the root element is {tag}, not MPD in the DASH namespace "
                     f"{DASH_NS}; players look for that exact name")
        return None
    if root.getroottree().docinfo.internalDTD is not None:
        report.error("dash.doctype", path, "line 1",
                     "the MPD declares a DTD (<!DOCTYPE ...>); MPDs have none, and a browser's "
                     "XML parser would expand its entities (this validator does not)")
    count = sum(1 for _ in root.iter(q("Representation")))
    if count > MAX_REPRESENTATIONS:
        report.error("dash.too-large", path, where(root),
                     f"the MPD has {count} Representations; no ladder has more than "
                     f"{MAX_REPRESENTATIONS}, and this validator does not check them")
        return None
    manifest = DashManifest(path, parse_duration(root.get("mediaPresentationDuration")),
                            parse_duration(root.get("minBufferTime")))
    on_demand = _check_mpd_attributes(root, path, report, manifest)
    _confine_segment_references(root, path, report)
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
            report.warning("dash.profiles", path, loc, f"unknown profile '{excerpt(profile)}'")
    if manifest.min_buffer_time is None:
        report.error("dash.missing-attribute", path, loc,
                     "MPD@minBufferTime is missing or not a duration; @bandwidth means "
                     "nothing without it")
    mpd_type = root.get("type", "static")
    if mpd_type == "static" and manifest.duration is None:
        report.error("dash.missing-attribute", path, loc,
                     "a static MPD needs a valid mediaPresentationDuration "
                     f"(found '{excerpt(root.get('mediaPresentationDuration') or '')}')")
    on_demand = ON_DEMAND in profiles
    if on_demand and mpd_type != "static":
        report.error("dash.profile-violation", path, loc,
                     "the on-demand profile requires type=\"static\"")
    return on_demand


def _inherited(rep: etree._Element, adaptation: etree._Element, name: str) -> str | None:
    return rep.get(name) if rep.get(name) is not None else adaptation.get(name)


def _confine_segment_references(root: etree._Element, path: Path, report: Report) -> None:
    """Every file name an MPD gives (templates included) must stay inside the package.

    Only SegmentBase + BaseURL media are read; the others are confined without being opened.
    """
    seen: set[str] = set()
    for name, attributes in REFERENCE_ATTRIBUTES.items():
        for element in root.iter(q(name)):
            for attribute in attributes:
                value = element.get(attribute)
                if value is None:
                    continue
                reference = join_base(base_url(element),
                                       TEMPLATE_IDENTIFIER.sub("0", value))
                if reference in seen:
                    continue
                seen.add(reference)
                # The line alone: an XPath costs a scan of the siblings, and a SegmentList
                # may hold thousands of SegmentURLs.
                checks.resolve_reference(report, path, reference, f"line {element.sourceline}",
                                         what=f"{name}@{attribute}", must_exist=False)


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
                                 f"Representation id '{excerpt(rep_id)}' is already used at "
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
        reference = base_url(rep)
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
    for name in ("bandwidth", "width", "height"):
        value = rep.get(name) if name == "bandwidth" else attrs.get(name)
        if value is not None and unsigned(value) is None:
            report.error("dash.attribute-invalid", path, loc,
                         f"@{name} '{excerpt(value)}' is not a decimal integer below 2^64")
    segment_base = rep.find(q("SegmentBase"))
    if segment_base is None:
        segment_base = adaptation.find(q("SegmentBase"))
    if on_demand and (segment_base is None or segment_base.get("indexRange") is None
                      or segment_base.find(q("Initialization")) is None
                      or segment_base.find(q("Initialization")).get("range") is None):
        report.error("dash.profile-violation", path, loc,
                     "the on-demand profile needs SegmentBase with @indexRange and "
                     "Initialization@range, so players can find the sidx and init bytes")
    reference = base_url(rep)
    if not reference:
        report.error("dash.missing-attribute", path, loc,
                     "no BaseURL: the Representation does not say which file holds its media")
        return rendition, []
    media_path = checks.resolve_reference(report, path, reference, loc, what="BaseURL")
    if media_path is None:
        return rendition, []
    if attrs["mimeType"] in WEBM_MIME_TYPES:
        rate = parse_frame_rate(attrs["frameRate"]) if attrs["frameRate"] else None
        segments = check_webm_representation(rep, attrs, segment_base, media_path, path, report,
                                             loc, duration=manifest.duration, frame_rate=rate)
        rendition.webm_frame_seconds = 1 / float(rate) if rate else None
        if segments:
            _check_bandwidth(rep, segments, manifest, report, loc)
        return rendition, segments
    media = checks.load_media(report, cache, media_path, path)
    rendition.media = media
    if not media.usable:
        return rendition, []
    _compare_declaration(rep, attrs, kind, media, path, report, loc)
    if segment_base is None:
        return rendition, []
    segments = check_segment_base(segment_base, media, path, report, loc)
    if segments:
        checks.check_segment_starts(report, media,
                                      [s.offset for s in segments if s.offset is not None], path)
        _check_bandwidth(rep, segments, manifest, report, loc)
    return rendition, segments


_int = unsigned


def _compare_declaration(rep: etree._Element, attrs: dict[str, str | None], kind: str,
                         media: MediaInfo, path: Path, report: Report, loc: str) -> None:
    expected_handler = {"video": "vide", "audio": "soun"}.get(kind)
    if expected_handler and media.handler != expected_handler:
        report.error("dash.content-type-mismatch", path, loc,
                     f"declared {kind} but {media.path.name} holds a '{media.handler}' track")
    declared_codecs, actual_codecs = attrs["codecs"], media.codecs
    if declared_codecs and actual_codecs and not codecs_match(declared_codecs, actual_codecs):
        report.error("dash.codecs-mismatch", path, loc,
                     f"@codecs is '{excerpt(declared_codecs)}' but the stream in "
                     f"{media.path.name} is "
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
                         f"@frameRate '{excerpt(attrs['frameRate'])}' is not a number or a "
                         "fraction of decimal integers below 2^64")
        elif declared_rate and not checks.frame_rate_matches(declared_rate, media.frame_rate):
            report.error("dash.frame-rate-mismatch", path, loc,
                         f"declared frameRate {excerpt(attrs['frameRate'] or '')} but the "
                         "samples last "
                         f"{media.frame_duration}/{media.timescale} s "
                         f"({float(media.frame_rate or 0):.3f} fps)")
    if kind == "audio":
        checks.check_language(report, path, loc, attrs["lang"], media,
                              check="dash.language-mismatch")


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
    timed = [(r, segs) for r, segs in members if segs and r.frame_seconds() is not None]
    if len(timed) < 2:
        return
    frame = min(r.frame_seconds() or 0.0 for r, _ in timed)
    starts = [[s.start for s in segs] for _, segs in timed]
    mismatch = checks.unaligned_at(starts, frame / 2 + checks.TIME_EPSILON)
    if mismatch is not None:
        index, here, there = mismatch
        report.error("dash.segments-unaligned", path, where(adaptation),
                     f"subsegment {index + 1} starts at {here:.3f} s in one Representation and "
                     f"{there:.3f} s in another; switching renditions there would skip or "
                     "repeat video (keyframes are not aligned across the ladder)")
