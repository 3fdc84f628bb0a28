"""What a package looks like: its manifest names, the DASH namespace, MPD durations.

`encode` writes packages with these names, `validate` and `preview` find and read them with the
same rules.
"""

from __future__ import annotations

import re
from pathlib import Path

import m3u8

from discriminator_cli.bitrate import Segment

MPD_NAME = "stream.mpd"
HLS_MASTER_NAME = "master.m3u8"
POSTER_NAME = "poster.jpg"
DASH_NS = "urn:mpeg:dash:schema:mpd:2011"


def is_package_folder(path: Path) -> bool:
    """A folder `encode` could have written: an empty one, or one holding a top-level manifest.
    `--force` replaces only these, so a mistyped --out never deletes a folder of other files."""
    if not path.is_dir() or path.is_symlink():
        return False
    names = {child.name for child in path.iterdir()}
    return not names or MPD_NAME in names or HLS_MASTER_NAME in names

_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?"
                       r"(?:(\d+(?:\.\d+)?)S)?)?$")
# An MPD duration longer than this many characters, or than about 31 years, is not a real
# presentation; refusing it keeps float() from chewing on hostile input.
_MAX_DURATION_CHARS = 64
MAX_DURATION_SECONDS = 10**9


def dash_tag(name: str) -> str:
    """The qualified name lxml uses for an MPD element, e.g. dash_tag('Representation')."""
    return f"{{{DASH_NS}}}{name}"


def parse_iso_duration(text: str | None) -> float | None:
    """ISO 8601 duration as MPDs use it ('PT1H2M3.5S', 'P1DT2S') in seconds; None if
    unparseable (years and months have no fixed length and are refused)."""
    if not text or len(text) > _MAX_DURATION_CHARS:
        return None
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return total if total <= MAX_DURATION_SECONDS else None


def playlist_segments(path: Path) -> tuple[list[Segment], float]:
    """The byte-range segments of one fMP4 media or I-frame playlist (sizes and EXTINF
    durations; offsets where given) and its nominal (target) duration."""
    playlist = m3u8.load(str(path))
    segments, start = [], 0.0
    for segment in playlist.segments:
        if not segment.byterange:
            continue
        length, _, offset = str(segment.byterange).partition("@")
        if not length.isdigit():
            continue
        duration = float(segment.duration or 0.0)
        segments.append(Segment(int(length), start, duration,
                                offset=int(offset) if offset.isdigit() else None))
        start += duration
    nominal = float(playlist.target_duration or max((s.duration for s in segments), default=1))
    return segments, nominal
