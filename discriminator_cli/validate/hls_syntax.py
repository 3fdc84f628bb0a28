"""Line-level HLS checks (RFC 8216): syntax with line numbers, and the protocol version.

The `m3u8` package gives the structure but not line numbers, and its strict mode rejects
plain comments (Bento4 writes '# Created with ...'), so syntax is checked here line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from discriminator_cli.validate.report import Report, excerpt

MEDIA_TAGS = frozenset({
    "EXTINF", "EXT-X-BYTERANGE", "EXT-X-DISCONTINUITY", "EXT-X-KEY", "EXT-X-MAP",
    "EXT-X-PROGRAM-DATE-TIME", "EXT-X-DATERANGE", "EXT-X-GAP", "EXT-X-BITRATE", "EXT-X-PART",
    "EXT-X-TARGETDURATION", "EXT-X-MEDIA-SEQUENCE", "EXT-X-DISCONTINUITY-SEQUENCE",
    "EXT-X-ENDLIST", "EXT-X-PLAYLIST-TYPE", "EXT-X-I-FRAMES-ONLY", "EXT-X-PART-INF",
    "EXT-X-SERVER-CONTROL", "EXT-X-SKIP", "EXT-X-PRELOAD-HINT", "EXT-X-RENDITION-REPORT",
})
MASTER_TAGS = frozenset({
    "EXT-X-MEDIA", "EXT-X-STREAM-INF", "EXT-X-I-FRAME-STREAM-INF", "EXT-X-SESSION-DATA",
    "EXT-X-SESSION-KEY", "EXT-X-CONTENT-STEERING",
})
COMMON_TAGS = frozenset({"EXTM3U", "EXT-X-VERSION", "EXT-X-INDEPENDENT-SEGMENTS",
                         "EXT-X-START", "EXT-X-DEFINE"})
ATTRIBUTE_LIST_TAGS = frozenset({
    "EXT-X-KEY", "EXT-X-MAP", "EXT-X-DATERANGE", "EXT-X-PART", "EXT-X-PART-INF",
    "EXT-X-SERVER-CONTROL", "EXT-X-SKIP", "EXT-X-PRELOAD-HINT", "EXT-X-RENDITION-REPORT",
    "EXT-X-MEDIA", "EXT-X-STREAM-INF", "EXT-X-I-FRAME-STREAM-INF", "EXT-X-SESSION-DATA",
    "EXT-X-SESSION-KEY", "EXT-X-CONTENT-STEERING", "EXT-X-START", "EXT-X-DEFINE",
})
_VALUE = r'(?:"[^"\r\n]*"|[^",\s]+)'
_ATTRIBUTE = rf"[A-Z0-9-]+={_VALUE}"
ATTRIBUTE_LIST = re.compile(rf"^{_ATTRIBUTE}(?:,{_ATTRIBUTE})*$")
# Anchored at the list's start or a comma: unanchored, findall retried a long run of name
# characters from every position (quadratic: 100 s for a 64 KiB line).
ATTRIBUTE = re.compile(rf"(?:^|(?<=,))([A-Z0-9-]+)=({_VALUE})")
DECIMAL = re.compile(r"^\d+(?:\.\d+)?$")
INTEGER = re.compile(r"^\d+$")
BYTERANGE = re.compile(r"^(\d+)(?:@(\d+))?$")
RESOLUTION = re.compile(r"^(\d+)x(\d+)$")

# RFC 8216 4.2: a decimal-integer is 0 to 2^64-1 (at most 20 digits). Floating-point values
# have no stated range; more than 20 integer digits is no duration or rate a player can use.
MAX_INTEGER = 2**64 - 1
MAX_DIGITS = 20
# Bounds on what is read at all, so cost stays proportional to a real playlist's: a day of
# 1-second segments with byte ranges is about 6 MiB and 260 000 lines; the longest real lines
# (EXT-X-KEY with a data: URI, EXT-X-DATERANGE with SCTE-35) are a few kilobytes.
MAX_PLAYLIST_BYTES = 8 << 20
MAX_PLAYLIST_LINES = 400_000
MAX_LINE_CHARS = 64 << 10
INTEGER_ATTRIBUTES = frozenset({"BANDWIDTH", "AVERAGE-BANDWIDTH", "PROGRAM-ID", "LAST-MSN",
                                "LAST-PART", "SKIPPED-SEGMENTS", "BYTERANGE-START",
                                "BYTERANGE-LENGTH"})
FLOAT_ATTRIBUTES = frozenset({"FRAME-RATE", "PART-TARGET", "HOLD-BACK", "PART-HOLD-BACK",
                              "CAN-SKIP-UNTIL", "DURATION", "PLANNED-DURATION", "SCORE"})


def decimal_integer(text: str) -> int | None:
    """The value of an RFC 8216 decimal-integer, or None when it is not one (or too large)."""
    if len(text) > MAX_DIGITS or not INTEGER.match(text):
        return None
    value = int(text)
    return value if value <= MAX_INTEGER else None


def decimal_float(text: str) -> bool:
    """A decimal-floating-point whose integer part a player could use (at most 20 digits)."""
    return bool(DECIMAL.match(text)) and len(text.split(".", 1)[0]) <= MAX_DIGITS


def byterange(text: str) -> tuple[int, int | None] | None:
    """(length, offset or None) of '<n>[@<o>]' with both in range, else None."""
    match = BYTERANGE.match(text)
    if not match:
        return None
    length = decimal_integer(match.group(1))
    offset = decimal_integer(match.group(2)) if match.group(2) is not None else None
    if length is None or (match.group(2) is not None and offset is None):
        return None
    return length, offset


@dataclass(frozen=True)
class PlaylistLine:
    number: int  # 1-based
    text: str
    tag: str | None  # 'EXTINF', 'EXT-X-MAP'...; '#' for a comment; None for a URI line
    value: str  # what follows 'TAG:'

    @property
    def where(self) -> str:
        return f"line {self.number}"


def scan(text: str) -> list[PlaylistLine]:
    """Non-blank lines, classified."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXT"):
            tag, _, value = line[1:].partition(":")
            lines.append(PlaylistLine(number, line, tag, value))
        elif line.startswith("#"):
            lines.append(PlaylistLine(number, line, "#", line[1:]))
        else:
            lines.append(PlaylistLine(number, line, None, line))
    return lines


def attributes(value: str) -> dict[str, str]:
    return {name: raw.strip('"') for name, raw in ATTRIBUTE.findall(value)}


def is_master(lines: list[PlaylistLine]) -> bool:
    return any(line.tag in MASTER_TAGS for line in lines)


def check_syntax(lines: list[PlaylistLine], path: Path, report: Report) -> bool:
    """Report syntax errors; False when the playlist cannot be used at all."""
    if not lines:
        report.error("hls.playlist-empty", path, "line 1",
                     "the playlist is empty; players fail to load it")
        return False
    if lines[0].text != "#EXTM3U":
        report.error("hls.syntax", path, lines[0].where,
                     f"the first line must be #EXTM3U, found '{excerpt(lines[0].text, 40)}'")
        return False
    master = is_master(lines)
    ok = True
    expecting_uri: PlaylistLine | None = None
    for line in lines[1:]:
        if len(line.text) > MAX_LINE_CHARS:
            report.error("hls.syntax", path, line.where,
                         f"the line is {len(line.text)} characters long; no HLS tag or URI "
                         f"needs more than {MAX_LINE_CHARS}, and players may refuse it")
            return False
        if line.tag is None:
            if expecting_uri is None:
                report.error("hls.syntax", path, line.where,
                             f"URI line '{excerpt(line.text, 60)}' has no "
                             f"{'EXT-X-STREAM-INF' if master else 'EXTINF'} before it")
                ok = False
            expecting_uri = None
            continue
        if line.tag == "#":
            continue
        if line.tag in ("EXTINF", "EXT-X-STREAM-INF") and expecting_uri is not None:
            report.error("hls.syntax", path, expecting_uri.where,
                         f"{expecting_uri.tag} is not followed by a URI line")
            ok = False
        ok = _check_tag(line, path, report, master=master) and ok
        if line.tag in ("EXTINF", "EXT-X-STREAM-INF"):
            expecting_uri = line
    if expecting_uri is not None:
        report.error("hls.syntax", path, expecting_uri.where,
                     f"{expecting_uri.tag} is not followed by a URI line")
        ok = False
    return ok


def _check_tag(line: PlaylistLine, path: Path, report: Report, *, master: bool) -> bool:
    tag, value = line.tag or "", line.value
    if tag not in MEDIA_TAGS | MASTER_TAGS | COMMON_TAGS:
        report.warning("hls.unknown-tag", path, line.where,
                       f"#{excerpt(tag, 40)} is not an HLS tag (RFC 8216 and its draft successor); "
                       "players ignore it")
        return True
    if tag in (MEDIA_TAGS if master else MASTER_TAGS):
        report.error("hls.syntax", path, line.where,
                     f"#{tag} mixes master-playlist and media-playlist tags in one file")
        return False
    problem = None
    if tag in ATTRIBUTE_LIST_TAGS and not ATTRIBUTE_LIST.match(value):
        problem = "its attribute list is malformed (NAME=value pairs separated by commas)"
    elif tag in ATTRIBUTE_LIST_TAGS:
        problem = _attribute_problem(attributes(value))
    elif tag == "EXTINF" and not DECIMAL.match(value.split(",", 1)[0].strip()):
        problem = "the duration is not a decimal number of seconds"
    elif tag == "EXTINF" and not decimal_float(value.split(",", 1)[0].strip()):
        problem = f"the duration has more than {MAX_DIGITS} integer digits"
    elif tag == "EXTINF" and "," not in value:
        problem = "the duration must be followed by a comma"
    elif tag in ("EXT-X-TARGETDURATION", "EXT-X-VERSION", "EXT-X-MEDIA-SEQUENCE",
                 "EXT-X-DISCONTINUITY-SEQUENCE") and decimal_integer(value) is None:
        problem = "the value must be a decimal integer from 0 to 2^64-1"
    elif tag == "EXT-X-BYTERANGE" and byterange(value) is None:
        problem = "the value must be <length>[@<offset>], each a decimal integer up to 2^64-1"
    elif tag == "EXT-X-PLAYLIST-TYPE" and value not in ("VOD", "EVENT"):
        problem = "the value must be VOD or EVENT"
    if problem:
        report.error("hls.syntax", path, line.where, f"#{tag}: {problem}")
        return False
    return True


def _attribute_problem(found: dict[str, str]) -> str | None:
    for name, raw in found.items():
        if name in INTEGER_ATTRIBUTES and decimal_integer(raw) is None:
            return f"{name} must be a decimal integer from 0 to 2^64-1"
        if name in FLOAT_ATTRIBUTES and not decimal_float(raw):
            return f"{name} must be a decimal number with at most {MAX_DIGITS} integer digits"
    resolution = found.get("RESOLUTION")
    if resolution is not None:
        match = RESOLUTION.match(resolution)
        if not match or decimal_integer(match.group(1)) is None or \
                decimal_integer(match.group(2)) is None:
            return "RESOLUTION must be <width>x<height> in decimal integers"
    if "BYTERANGE" in found and byterange(found["BYTERANGE"]) is None:
        return "BYTERANGE must be \"<length>[@<offset>]\", each a decimal integer up to 2^64-1"
    return None


def check_version(lines: list[PlaylistLine], path: Path, report: Report) -> None:
    """EXT-X-VERSION must be at least what the features used need (RFC 8216, section 7)."""
    declared_line = next((line for line in lines if line.tag == "EXT-X-VERSION"), None)
    declared = (decimal_integer(declared_line.value) if declared_line else None) or 1
    iframes_only = any(line.tag == "EXT-X-I-FRAMES-ONLY" for line in lines)
    needs: list[tuple[int, PlaylistLine, str]] = []
    for line in lines:
        if line.tag == "EXTINF" and "." in line.value.split(",", 1)[0]:
            needs.append((3, line, "decimal EXTINF durations"))
        elif line.tag == "EXT-X-BYTERANGE":
            needs.append((4, line, "EXT-X-BYTERANGE"))
        elif line.tag == "EXT-X-I-FRAMES-ONLY":
            needs.append((4, line, "EXT-X-I-FRAMES-ONLY"))
        elif line.tag == "EXT-X-MAP":
            needs.append((5, line, "EXT-X-MAP in an I-frame playlist") if iframes_only
                         else (6, line, "EXT-X-MAP outside an I-frame playlist"))
        elif line.tag == "EXT-X-KEY" and "KEYFORMAT" in attributes(line.value):
            needs.append((5, line, "EXT-X-KEY KEYFORMAT"))
        elif line.tag == "EXT-X-MEDIA" and \
                attributes(line.value).get("INSTREAM-ID", "").startswith("SERVICE"):
            needs.append((7, line, "INSTREAM-ID SERVICE values"))
        elif line.tag == "EXT-X-DEFINE":
            needs.append((8, line, "EXT-X-DEFINE"))
    if not needs:
        return
    version, line, feature = max(needs, key=lambda need: need[0])
    if declared < version:
        where = declared_line.where if declared_line else "line 1"
        said = f"EXT-X-VERSION:{declared}" if declared_line else "no EXT-X-VERSION (so 1)"
        report.error("hls.version-too-low", path, where,
                     f"{said}, but {feature} (line {line.number}) needs version {version} or "
                     "higher; strict players refuse the playlist")
