"""What a package looks like: its manifest names, the DASH namespace, MPD durations.

`encode` writes packages with these names, `validate` and `preview` find and read them with the
same rules.
"""

from __future__ import annotations

import re

MPD_NAME = "stream.mpd"
HLS_MASTER_NAME = "master.m3u8"
DASH_NS = "urn:mpeg:dash:schema:mpd:2011"

_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?"
                       r"(?:(\d+(?:\.\d+)?)S)?)?$")
# An MPD duration longer than this many digits is not a real presentation; refusing it keeps
# float() from chewing on hostile input.
_MAX_DURATION_CHARS = 64


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
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
