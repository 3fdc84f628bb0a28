"""MPD syntax: the DASH namespace, element locations, attribute values and BaseURL joining.

Values come from the file, so each parser bounds what it accepts (digits, magnitudes) and
answers None for anything a player could not use; dash.py turns None into a finding.
"""

from __future__ import annotations

import re
from fractions import Fraction

from lxml import etree

from discriminator_cli.package_layout import DASH_NS, dash_tag, parse_iso_duration
from discriminator_cli.validate.checks import is_remote

__all__ = ["DASH_NS", "parse_duration", "q"]

_RANGE = re.compile(r"^(\d+)-(\d+)$")

q = dash_tag
parse_duration = parse_iso_duration


def unsigned(text: str | None) -> int | None:
    """An xs:unsignedLong attribute (at most 20 digits, below 2^64), else None."""
    if text is None:
        return None
    text = text.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 20 or int(text) >= 2**64:
        return None
    return int(text)


def parse_frame_rate(text: str) -> Fraction | None:
    num, _, den = text.partition("/")
    numerator, denominator = unsigned(num), unsigned(den) if den else 1
    if not numerator or not denominator:
        return None
    return Fraction(numerator, denominator)


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


def base_url(element: etree._Element) -> str:
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
        url = join_base(url, part)
    return url


# Elements that name files besides BaseURL, and the attributes that do (ISO/IEC 23009-1 5.3.9).
REFERENCE_ATTRIBUTES = {"Initialization": ("sourceURL",), "RepresentationIndex": ("sourceURL",),
                         "SegmentURL": ("media", "index"),
                         "SegmentTemplate": ("media", "initialization", "index")}
TEMPLATE_IDENTIFIER = re.compile(r"\$[A-Za-z]*(?:%0\d+[dxX])?\$")


def join_base(base: str, reference: str) -> str:
    if is_remote(reference) or reference.startswith("/") or not base:
        return reference
    return base.rsplit("/", 1)[0] + "/" + reference if "/" in base else reference


def parse_range(text: str | None) -> tuple[int, int] | None:
    match = _RANGE.match(text.strip()) if text else None
    if not match:
        return None
    first, last = unsigned(match.group(1)), unsigned(match.group(2))
    return (first, last) if first is not None and last is not None and first <= last else None
