"""The on-demand profile's index: SegmentBase's byte ranges and the sidx they point at.

`check_segment_base` returns the subsegments the sidx lists (sizes, times, offsets) for the
bandwidth check; an index a player could not follow gives errors and no segments.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from discriminator_cli.bitrate import Segment
from discriminator_cli.validate.dash_syntax import parse_range, q, unsigned
from discriminator_cli.validate.media import MediaInfo
from discriminator_cli.validate.report import Report, excerpt


def check_segment_base(segment_base: etree._Element, media: MediaInfo, path: Path,
                        report: Report, loc: str) -> list[Segment]:
    init = segment_base.find(q("Initialization"))
    init_text = init.get("range") if init is not None else None
    index_text = segment_base.get("indexRange")
    for name, text in (("Initialization@range", init_text), ("@indexRange", index_text)):
        if text is None:
            continue
        parsed = parse_range(text)
        if parsed is None:
            report.error("dash.range-invalid", path, loc,
                         f"{name} '{excerpt(text)}' is not 'first-last' (decimal byte offsets "
                         "below 2^64)")
        elif parsed[1] >= media.size:
            report.error("dash.range-out-of-file", path, loc,
                         f"{name} {excerpt(text)} ends past the end of {media.path.name} "
                         f"({media.size} bytes)")
    init_range = parse_range(init_text)
    if init_range and media.moov_end and (init_range[0] != 0 or init_range[1] + 1 < media.moov_end):
        report.error("dash.init-range", path, loc,
                     f"Initialization@range {excerpt(init_text or '')} does not cover ftyp+moov "
                     f"(bytes 0-{media.moov_end - 1})")
    index_range = parse_range(index_text)
    if index_range is None or index_range[1] >= media.size:
        return []
    return check_sidx(index_range, media, path, report, loc,
                       timescale=unsigned(segment_base.get("timescale")))


def check_sidx(index_range: tuple[int, int], media: MediaInfo, path: Path, report: Report,
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
