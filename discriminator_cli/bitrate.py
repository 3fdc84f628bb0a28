"""The segment/bitrate model every job shares: what a player fetches, and the two bit rates
manifests declare about it.

encode measures rungs with it (and declares HLS BANDWIDTH from it), validate checks packages
against it, preview compares players with it: one definition of "peak" for all three.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_WINDOW_SEGMENTS = 128  # 1.5 target durations of segments 1/85 of the target long


@dataclass(frozen=True)
class Segment:
    """A unit a player fetches: a DASH subsegment, an HLS segment, or (when encode measures a
    rung before packaging) one segment-long window of its packets."""

    size: int           # bytes
    start: float        # seconds
    duration: float     # seconds
    offset: int | None = None   # byte offset in its file, where it is a byte range


def peak_bitrate(segments: list[Segment], nominal_duration: float) -> float:
    """Highest bit rate over runs of consecutive segments lasting 0.5 to 1.5 nominal durations.

    This is HLS's peak segment bit rate (RFC 8216, 4.3.4.2, the target duration as nominal):
    a short last segment does not count alone, but does together with its neighbour.
    """
    if not segments:
        return 0.0
    low, high = 0.5 * nominal_duration, 1.5 * nominal_duration
    peak = 0.0
    count = len(segments)
    for i in range(count):
        size, seconds = 0, 0.0
        # Windows span a few segments, so this stays linear; zero or tiny durations (hostile
        # playlists) would make every window run to the end, hence the cap.
        for j in range(i, min(count, i + MAX_WINDOW_SEGMENTS)):
            size += segments[j].size
            seconds += segments[j].duration
            if seconds > high:
                break
            if seconds >= low:
                peak = max(peak, size * 8 / seconds)
    return peak if peak > 0 else average_bitrate(segments)


def average_bitrate(segments: list[Segment]) -> float:
    seconds = sum(s.duration for s in segments)
    return sum(s.size for s in segments) * 8 / seconds if seconds > 0 else 0.0


def bucket_holds(segments: list[Segment], bandwidth: float, buffer_seconds: float) -> bool:
    """DASH's @bandwidth rule (ISO/IEC 23009-1, 5.3.5.2) at subsegment granularity.

    Delivered at `bandwidth` from any segment start, after `buffer_seconds` of prebuffering
    every run of segments i..j must have arrived by the time its playout ends:
    bits(i..j) <= bandwidth * (buffer_seconds + duration(i..j)). With running sums of
    bits - bandwidth * duration this is one pass: the largest rise must stay within the buffer.
    """
    allowance = bandwidth * buffer_seconds
    lowest = running = 0.0
    for segment in segments:
        running += segment.size * 8 - bandwidth * segment.duration
        if running - lowest > allowance:
            return False
        lowest = min(lowest, running)
    return True


def required_bandwidth(segments: list[Segment], buffer_seconds: float) -> float:
    """The least bandwidth for which `bucket_holds` (bisection to 1 bit/s)."""
    low, high = 0.0, max((s.size * 8 / s.duration for s in segments if s.duration > 0),
                         default=0.0)
    if high == 0.0 or bucket_holds(segments, 0.0, buffer_seconds):
        return 0.0
    while high - low > 1.0:
        middle = (low + high) / 2
        low, high = (low, middle) if bucket_holds(segments, middle, buffer_seconds) \
            else (middle, high)
    return high
