"""The DASH on-demand MPD of the overlay package: one WebM per rung, SegmentBase pointing at
each file's Cues (the index) and the bytes before them (the initialization).

Written here from the files' own layout (discriminator_cli/webm.py) rather than by Shaka
Packager: Shaka Packager 3.8 drops the alpha when it rewrites WebM (it loses the AlphaMode
track element and writes BlockAddID byte-swapped; shaka-packager issue #1168, fixed after
3.8), and an overlay without its alpha is worthless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from lxml import etree

from discriminator_cli.bitrate import required_bandwidth
from discriminator_cli.package_layout import DASH_NS
from discriminator_cli.webm import WebmLayout, cue_segments

ON_DEMAND = "urn:mpeg:dash:profile:isoff-on-demand:2011"
WEBM_VIDEO = "video/webm"


@dataclass(frozen=True)
class WebmRepresentation:
    rep_id: str
    file_name: str          # relative to the MPD
    layout: WebmLayout
    codecs: str
    width: int
    height: int


def iso_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def _frame_rate(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else \
        f"{rate.numerator}/{rate.denominator}"


def write_webm_mpd(reps: list[WebmRepresentation], frame_rate: Fraction, duration: float,
                   min_buffer_seconds: float) -> str:
    """The MPD text. @bandwidth is the least rate at which every subsegment arrives in time
    after minBufferTime of buffering (the bucket model validate checks)."""
    root = etree.Element(f"{{{DASH_NS}}}MPD", nsmap={None: DASH_NS}, attrib={
        "profiles": ON_DEMAND, "type": "static", "minBufferTime": iso_duration(
            min_buffer_seconds), "mediaPresentationDuration": iso_duration(duration)})
    period = etree.SubElement(root, f"{{{DASH_NS}}}Period", id="0")
    widest = max(reps, key=lambda r: r.width * r.height)
    divisor = math.gcd(widest.width, widest.height)
    adaptation = etree.SubElement(period, f"{{{DASH_NS}}}AdaptationSet", attrib={
        "id": "0", "contentType": "video", "mimeType": WEBM_VIDEO,
        "frameRate": _frame_rate(frame_rate), "subsegmentAlignment": "true",
        "subsegmentStartsWithSAP": "1",
        "par": f"{widest.width // divisor}:{widest.height // divisor}"})
    for rep in sorted(reps, key=lambda r: r.width * r.height, reverse=True):
        layout = rep.layout
        assert layout.cues is not None
        bandwidth = math.ceil(required_bandwidth(cue_segments(layout), min_buffer_seconds))
        node = etree.SubElement(adaptation, f"{{{DASH_NS}}}Representation", attrib={
            "id": rep.rep_id, "bandwidth": str(bandwidth), "codecs": rep.codecs,
            "width": str(rep.width), "height": str(rep.height), "sar": "1:1"})
        etree.SubElement(node, f"{{{DASH_NS}}}BaseURL").text = rep.file_name
        base = etree.SubElement(node, f"{{{DASH_NS}}}SegmentBase", attrib={
            "indexRange": f"{layout.cues[0]}-{layout.cues[1]}",
            "timescale": str(round(1e9 / layout.timecode_scale))})
        etree.SubElement(base, f"{{{DASH_NS}}}Initialization", range=f"0-{layout.init_end}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                          pretty_print=True).decode()
