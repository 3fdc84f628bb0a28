"""The layout of a WebM file as DASH on-demand needs it: where the initialization bytes end,
where the Cues (the index) lie, and the clusters they point at.

`encode` writes the overlay MPD from it; `validate` checks WebM Representations with it. Only
element headers and the small top-level elements are read (clusters are skipped by their size),
and every size is checked against the file, so a hostile file costs a bounded amount of work.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from discriminator_cli.bitrate import Segment

EBML = 0x1A45DFA3
SEGMENT = 0x18538067
INFO = 0x1549A966
TIMECODE_SCALE = 0x2AD7B1
DURATION = 0x4489
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
CODEC_ID = 0x86
VIDEO = 0xE0
PIXEL_WIDTH = 0xB0
PIXEL_HEIGHT = 0xBA
ALPHA_MODE = 0x53C0
CUES = 0x1C53BB6B
CUE_POINT = 0xBB
CUE_TIME = 0xB3
CUE_TRACK_POSITIONS = 0xB7
CUE_CLUSTER_POSITION = 0xF1
CLUSTER = 0x1F43B675
TIMECODE = 0xE7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
BLOCK_ADDITIONS = 0x75A1
REFERENCE_BLOCK = 0xFB

MAX_SMALL_ELEMENT = 16 << 20     # Info, Tracks and Cues of real files are kilobytes
MAX_CLUSTERS = 1_000_000
_UNKNOWN_SIZE = -1


class WebmError(ValueError):
    """Not a WebM this module can lay out; the message says what and at which byte."""


@dataclass(frozen=True)
class Cluster:
    offset: int             # of the Cluster element, from the start of the file
    size: int               # the whole element, header included
    time: int               # Timecode, in TimecodeScale ticks
    starts_with_keyframe: bool
    has_alpha: bool         # its first block carries BlockAdditions (the alpha plane)


@dataclass
class WebmLayout:
    size: int
    segment_data: int                       # where Segment positions count from
    timecode_scale: int = 1_000_000         # nanoseconds per tick
    duration_ticks: float | None = None
    codec_id: str | None = None
    width: int | None = None
    height: int | None = None
    alpha_mode: int = 0
    tracks_end: int | None = None           # first byte after the Tracks element
    cues: tuple[int, int] | None = None     # (first, last) byte of the Cues element
    cue_points: list[tuple[int, int]] = field(default_factory=list)  # (ticks, file offset)
    clusters: list[Cluster] = field(default_factory=list)

    @property
    def init_end(self) -> int:
        """The last byte of the initialization data: all before the index and the media."""
        starts = [c.offset for c in self.clusters[:1]] + ([self.cues[0]] if self.cues else [])
        return (min(starts) if starts else self.size) - 1

    @property
    def duration_seconds(self) -> float | None:
        if self.duration_ticks is None:
            return None
        return self.duration_ticks * self.timecode_scale / 1e9

    def seconds(self, ticks: int) -> float:
        return ticks * self.timecode_scale / 1e9


def _vint(handle: BinaryIO, *, keep_marker: bool) -> tuple[int, int]:
    """(value, length) of an EBML variable-length integer at the handle's position."""
    first = handle.read(1)
    if not first:
        raise EOFError
    byte = first[0]
    length = 1
    while length <= 8 and not byte & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise WebmError(f"invalid EBML length byte 0x{byte:02x} at byte {handle.tell() - 1}")
    rest = handle.read(length - 1)
    if len(rest) != length - 1:
        raise EOFError
    value = byte if keep_marker else byte & (0xFF >> length)
    for extra in rest:
        value = (value << 8) | extra
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return _UNKNOWN_SIZE, length
    return value, length


def _elements(handle: BinaryIO, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(id, element offset, data offset, data size) of each element in [start, end)."""
    position = start
    while position < end:
        handle.seek(position)
        try:
            element_id, _ = _vint(handle, keep_marker=True)
            size, _ = _vint(handle, keep_marker=False)
        except EOFError:
            raise WebmError(f"element header cut off at byte {position}") from None
        data = handle.tell()
        if size == _UNKNOWN_SIZE:
            raise WebmError(f"element 0x{element_id:X} at byte {position} has an unknown size "
                            "(a live WebM); on-demand needs sizes written")
        if data + size > end:
            raise WebmError(f"element 0x{element_id:X} at byte {position} runs past its parent "
                            f"(ends at {data + size}, parent at {end})")
        yield element_id, position, data, size
        position = data + size


def _read(handle: BinaryIO, data: int, size: int, what: str) -> bytes:
    if size > MAX_SMALL_ELEMENT:
        raise WebmError(f"{what} at byte {data} is {size} bytes; refusing more than "
                        f"{MAX_SMALL_ELEMENT}")
    handle.seek(data)
    return handle.read(size)


def _uint(raw: bytes) -> int:
    return int.from_bytes(raw, "big") if raw else 0


def _children(blob: bytes, start: int = 0, end: int | None = None
              ) -> Iterator[tuple[int, bytes]]:
    """(id, body) of each element inside an in-memory element body."""
    import io

    handle = io.BytesIO(blob)
    for element_id, _, data, size in _elements(handle, start, len(blob) if end is None else end):
        yield element_id, blob[data:data + size]


def read_layout(path: Path) -> WebmLayout:
    """Lay out a WebM file; WebmError says what is wrong and where."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        top = list(_elements(handle, 0, size))
        if not top or top[0][0] != EBML:
            raise WebmError("does not start with an EBML header")
        doc_type = next((body for element_id, body in
                         _children(_read(handle, top[0][2], top[0][3], "EBML header"))
                         if element_id == 0x4282), b"")
        if doc_type not in (b"webm", b"matroska"):
            raise WebmError(f"EBML DocType is {doc_type[:16]!r}, not webm")
        segment = next((t for t in top if t[0] == SEGMENT), None)
        if segment is None:
            raise WebmError("no Segment element")
        layout = WebmLayout(size=size, segment_data=segment[2])
        for element_id, offset, data, length in _elements(handle, segment[2],
                                                          segment[2] + segment[3]):
            if element_id == INFO:
                _read_info(layout, _read(handle, data, length, "Info"))
            elif element_id == TRACKS:
                layout.tracks_end = data + length
                _read_tracks(layout, _read(handle, data, length, "Tracks"))
            elif element_id == CUES:
                layout.cues = (offset, data + length - 1)
                _read_cues(layout, _read(handle, data, length, "Cues"))
            elif element_id == CLUSTER:
                if len(layout.clusters) >= MAX_CLUSTERS:
                    raise WebmError(f"more than {MAX_CLUSTERS} clusters")
                layout.clusters.append(_read_cluster(handle, offset, data, length))
    return layout


def _read_info(layout: WebmLayout, body: bytes) -> None:
    for element_id, value in _children(body):
        if element_id == TIMECODE_SCALE and _uint(value):
            layout.timecode_scale = _uint(value)
        elif element_id == DURATION and len(value) in (4, 8):
            layout.duration_ticks = struct.unpack(">f" if len(value) == 4 else ">d", value)[0]


def _read_tracks(layout: WebmLayout, body: bytes) -> None:
    for element_id, entry in _children(body):
        if element_id != TRACK_ENTRY or layout.codec_id is not None:
            continue  # the overlay packages hold one track per file; the first one counts
        for child_id, value in _children(entry):
            if child_id == CODEC_ID:
                layout.codec_id = value.decode("ascii", "replace")
            elif child_id == VIDEO:
                for video_id, video_value in _children(value):
                    if video_id == PIXEL_WIDTH:
                        layout.width = _uint(video_value)
                    elif video_id == PIXEL_HEIGHT:
                        layout.height = _uint(video_value)
                    elif video_id == ALPHA_MODE:
                        layout.alpha_mode = _uint(video_value)


def _read_cues(layout: WebmLayout, body: bytes) -> None:
    for element_id, point in _children(body):
        if element_id != CUE_POINT:
            continue
        ticks, position = None, None
        for child_id, value in _children(point):
            if child_id == CUE_TIME:
                ticks = _uint(value)
            elif child_id == CUE_TRACK_POSITIONS and position is None:
                position = next((_uint(v) for i, v in _children(value)
                                 if i == CUE_CLUSTER_POSITION), None)
        if ticks is not None and position is not None:
            layout.cue_points.append((ticks, layout.segment_data + position))


def _read_cluster(handle: BinaryIO, offset: int, data: int, length: int) -> Cluster:
    """The cluster's Timecode and whether its first block is a keyframe carrying alpha."""
    time, keyframe, alpha = 0, False, False
    for element_id, _, child_data, child_size in _elements(handle, data, data + length):
        if element_id == TIMECODE:
            time = _uint(_read(handle, child_data, child_size, "Timecode"))
        elif element_id == SIMPLE_BLOCK:
            handle.seek(child_data)
            _vint(handle, keep_marker=False)       # track number
            flags = handle.read(3)[2:]
            keyframe = bool(flags and flags[0] & 0x80)
            break
        elif element_id == BLOCK_GROUP:
            # A BlockGroup is a keyframe when it references no other block.
            ids = [i for i, *_ in _elements(handle, child_data, child_data + child_size)]
            keyframe = REFERENCE_BLOCK not in ids
            alpha = BLOCK_ADDITIONS in ids
            break
    return Cluster(offset, data + length - offset, time, keyframe, alpha)


def cue_segments(layout: WebmLayout) -> list[Segment]:
    """The subsegments a DASH player fetches: from each cue point to the next (the last one to
    the end of the last cluster), with their start times and durations."""
    points = sorted(set(layout.cue_points), key=lambda p: p[1])
    if not points:
        return []
    media_end = max((c.offset + c.size for c in layout.clusters), default=layout.size)
    end_seconds = layout.duration_seconds
    segments = []
    for index, (ticks, offset) in enumerate(points):
        if index + 1 < len(points):
            next_ticks, next_offset = points[index + 1]
            duration = layout.seconds(next_ticks - ticks)
        else:
            next_offset = media_end
            duration = max((end_seconds or 0.0) - layout.seconds(ticks), 0.0)
        segments.append(Segment(max(next_offset - offset, 0), layout.seconds(ticks), duration,
                                offset=offset))
    return segments
