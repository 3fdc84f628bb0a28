"""WebM Representations of a DASH MPD (mimeType video/webm or audio/webm), as the overlay
packages have them.

What applies to WebM, checked here: the file lays out as WebM with sizes written (on-demand),
the codec and picture size match the declaration, Initialization@range covers the EBML header,
Info and Tracks and stops before the index and media, @indexRange is exactly the Cues element,
every cue points at a cluster that starts with a keyframe, cue times increase, the
presentation lasts as long as the MPD says, and the alpha plane is signalled where blocks carry
one. The bandwidth and subsegment-alignment checks then run on the cue subsegments like on a
sidx. What does not apply: the ISO BMFF box checks (sidx, moof, sample entries), H.264 SPS and
HRD buffer checks; they are skipped, not passed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from lxml import etree

from discriminator_cli.bitrate import Segment
from discriminator_cli.validate.dash_syntax import parse_range, q
from discriminator_cli.validate.report import Report, excerpt
from discriminator_cli.webm import WebmError, WebmLayout, cue_segments, read_layout

WEBM_MIME_TYPES = ("video/webm", "audio/webm")
_CODEC_IDS = {"vp09": "V_VP9", "vp9": "V_VP9", "vp8": "V_VP8", "av01": "V_AV1",
              "opus": "A_OPUS", "vorbis": "A_VORBIS"}


def check_webm_representation(rep: etree._Element, attrs: dict[str, str | None],
                              segment_base: etree._Element | None, media_path: Path,
                              manifest: Path, report: Report, loc: str, *,
                              duration: float | None, frame_rate: Fraction | None,
                              ) -> list[Segment]:
    """Findings for one WebM Representation; its cue subsegments for the shared checks."""
    if str(media_path) not in report.media_files:
        report.media_files.append(str(media_path))
    try:
        layout = read_layout(media_path)
    except (WebmError, OSError) as exc:
        report.error("webm.unreadable", media_path, None, f"not a usable WebM: {exc}",
                     manifest=manifest)
        return []
    _check_declaration(attrs, layout, media_path, manifest, report, loc)
    _check_alpha(layout, media_path, manifest, report)
    if segment_base is None:
        return []
    if not _check_ranges(segment_base, layout, media_path, manifest, report, loc):
        return []
    segments = _check_cues(layout, media_path, manifest, report)
    frame = 1 / float(frame_rate) if frame_rate else 0.05
    actual = layout.duration_seconds
    if duration is not None and actual is not None and abs(actual - duration) > frame + 0.0015:
        report.error("dash.duration-mismatch", manifest, loc,
                     f"mediaPresentationDuration is {duration:.3f} s but {media_path.name} "
                     f"lasts {actual:.3f} s (more than one frame apart)")
    return segments


def _check_declaration(attrs: dict[str, str | None], layout: WebmLayout, media_path: Path,
                       manifest: Path, report: Report, loc: str) -> None:
    declared = (attrs.get("codecs") or "").split(".", 1)[0].lower()
    expected = _CODEC_IDS.get(declared)
    if expected and layout.codec_id != expected:
        report.error("dash.codecs-mismatch", manifest, loc,
                     f"@codecs '{excerpt(attrs.get('codecs') or '')}' but {media_path.name} "
                     f"holds {layout.codec_id}")
    for name, actual in (("width", layout.width), ("height", layout.height)):
        value = attrs.get(name)
        if value is not None and actual is not None and value.isdigit() \
                and int(value) != actual:
            report.error("dash.size-mismatch", manifest, loc,
                         f"@{name} {value} but {media_path.name} is {actual} pixels "
                         f"{'wide' if name == 'width' else 'high'}")


def _check_alpha(layout: WebmLayout, media_path: Path, manifest: Path,
                 report: Report) -> None:
    carries = any(c.has_alpha for c in layout.clusters[:1])
    if carries and layout.alpha_mode != 1:
        report.warning("webm.alpha-not-signalled", media_path, None,
                       "blocks carry BlockAdditions (an alpha plane) but the track has no "
                       "AlphaMode 1, so players show it opaque (Shaka Packager 3.8 drops "
                       "AlphaMode when it rewrites WebM)", manifest=manifest)
    elif layout.alpha_mode == 1 and layout.clusters and not carries:
        report.warning("webm.alpha-missing", media_path, layout.clusters[0].offset,
                       "the track declares AlphaMode 1 but its first block carries no alpha "
                       "data (BlockAdditions)", manifest=manifest)


def _check_ranges(segment_base: etree._Element, layout: WebmLayout, media_path: Path,
                  manifest: Path, report: Report, loc: str) -> bool:
    init = segment_base.find(q("Initialization"))
    init_range = parse_range(init.get("range") if init is not None else None)
    index_range = parse_range(segment_base.get("indexRange"))
    ok = True
    if init_range is not None and (init_range[0] != 0 or init_range[1] > layout.init_end
                                   or (layout.tracks_end is not None
                                       and init_range[1] + 1 < layout.tracks_end)):
        report.error("dash.init-range", manifest, loc,
                     f"Initialization@range {init_range[0]}-{init_range[1]} must start at 0, "
                     f"cover the Tracks (to byte {(layout.tracks_end or 1) - 1}) and stop "
                     f"before the Cues and clusters (byte {layout.init_end + 1})")
        ok = False
    if layout.cues is None:
        report.error("webm.no-cues", media_path, None,
                     "no Cues element: DASH players cannot find the subsegments",
                     manifest=manifest)
        return False
    if index_range is not None and index_range != layout.cues:
        report.error("dash.index-range", manifest, loc,
                     f"@indexRange {index_range[0]}-{index_range[1]} is not the Cues element "
                     f"of {media_path.name} (bytes {layout.cues[0]}-{layout.cues[1]})")
        ok = False
    timescale = segment_base.get("timescale")
    ticks = round(1e9 / layout.timecode_scale)
    if timescale and timescale.isdigit() and int(timescale) != ticks:
        report.warning("dash.timescale", manifest, loc,
                       f"SegmentBase@timescale {timescale} but the WebM counts {ticks} ticks "
                       "per second (TimecodeScale)")
    return ok


def _check_cues(layout: WebmLayout, media_path: Path, manifest: Path,
                report: Report) -> list[Segment]:
    clusters = {c.offset: c for c in layout.clusters}
    previous = -1
    for number, (ticks, offset) in enumerate(layout.cue_points, 1):
        cluster = clusters.get(offset)
        if cluster is None:
            report.error("webm.cue-not-cluster", media_path, offset,
                         f"cue point {number} points at byte {offset}, which is not a "
                         "cluster; a player fetching that subsegment gets garbage",
                         manifest=manifest)
            return []
        if not cluster.starts_with_keyframe:
            report.error("webm.cue-not-keyframe", media_path, offset,
                         f"the cluster of cue point {number} does not start with a keyframe; "
                         "playback cannot start or switch there", manifest=manifest)
        if ticks <= previous:
            report.error("webm.cue-order", media_path, offset,
                         f"cue point {number} time {ticks} does not increase", manifest=manifest)
        previous = ticks
    return cue_segments(layout)
