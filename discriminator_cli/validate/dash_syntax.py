"""MPD syntax: the DASH namespace, element locations, attribute values and BaseURL joining.

Values come from the file, so each parser bounds what it accepts (digits, magnitudes) and
answers None for anything a player could not use; dash.py turns None into a finding.
"""

from __future__ import annotations

import re
from fractions import Fraction

from lxml import etree

from discriminator_cli.validate.checks import is_remote

DASH_NS = "urn:mpeg:dash:schema:mpd:2011"
_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?"
                       r"(?:(\d+(?:\.\d+)?)S)?)?$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
MAX_SECONDS = 10**9  # about 31 years


def q(name: str) -> str:
    return f"{{{DASH_NS}}}{name}"


def parse_duration(text: str | None) -> float | None:
    """ISO 8601 duration as used by MPDs ('PT1H2M3.5S') in seconds; None if unparseable
    or beyond MAX_SECONDS (a 5000-digit duration is no presentation a player can hold)."""
    match = _DURATION.match(text.strip()) if text else None
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return total if total <= MAX_SECONDS else None


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
