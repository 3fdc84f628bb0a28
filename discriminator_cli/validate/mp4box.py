"""A small seek-based ISO BMFF (MP4) box reader.

Only box headers and the few boxes the validator needs are read (moov, sidx, moof, the first
bytes of a sample); media data is skipped with seeks, so a two-hour file costs a few hundred
kilobytes of reads. Parsers take the box's payload bytes and return plain dataclasses.
"""

from __future__ import annotations

import itertools
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

# trun / tfhd flag bits (ISO/IEC 14496-12 8.8.7, 8.8.8).
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002
TFHD_DEFAULT_DURATION = 0x000008
TFHD_DEFAULT_SIZE = 0x000010
TFHD_DEFAULT_FLAGS = 0x000020
TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_SAMPLE_FLAGS = 0x000004
TRUN_SAMPLE_DURATION = 0x000100
TRUN_SAMPLE_SIZE = 0x000200
TRUN_SAMPLE_FLAGS = 0x000400
TRUN_SAMPLE_CTO = 0x000800

SAMPLE_IS_NON_SYNC = 0x00010000  # sample_is_non_sync_sample bit of the sample flags

# The boxes read whole (moov, moof, sidx) are kilobytes in real files: a fragmented moov holds
# no sample tables, and an hour-long single fragment at 60 fps has a 3.5 MB trun. A header
# declaring more is hostile or broken, and reading it would take that much memory.
MAX_READ_BOX_BYTES = 16 << 20


class Mp4Error(Exception):
    """The bytes at `offset` are not a valid box; `truncated` when the file ends too early."""

    def __init__(self, message: str, offset: int, *, truncated: bool = False):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.truncated = truncated


@dataclass(frozen=True)
class Box:
    type: str
    offset: int  # of the header, in the file (or in the buffer it was parsed from)
    size: int  # header included
    header_size: int

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def end(self) -> int:
        return self.offset + self.size


def _decode_type(raw: bytes) -> str:
    return raw.decode("latin-1")


def parse_header(data: bytes, pos: int, end: int, *, base: int = 0) -> Box:
    """The box header at data[pos:]; `base` is added to offsets (the buffer's file offset)."""
    if end - pos < 8:
        raise Mp4Error("box header cut short", base + pos, truncated=True)
    size, raw_type = struct.unpack_from(">I4s", data, pos)
    header = 8
    if size == 1:
        if end - pos < 16:
            raise Mp4Error("64-bit box header cut short", base + pos, truncated=True)
        (size,) = struct.unpack_from(">Q", data, pos + 8)
        header = 16
    elif size == 0:
        size = end - pos  # the box runs to the end of its container
    if size < header:
        raise Mp4Error(f"box '{_decode_type(raw_type)}' declares size {size}", base + pos)
    return Box(_decode_type(raw_type), base + pos, size, header)


def iter_children(data: bytes, start: int, end: int, *, base: int = 0) -> Iterator[Box]:
    """Boxes packed in data[start:end]; a child running past `end` raises Mp4Error."""
    pos = start
    while pos < end:
        box = parse_header(data, pos, end, base=base)
        if box.end - base > end:
            raise Mp4Error(f"box '{box.type}' runs past its container", box.offset,
                           truncated=end == len(data))
        yield box
        pos = box.end - base


def find_child(data: bytes, parent: Box, box_type: str, *, base: int = 0) -> Box | None:
    for child in iter_children(data, parent.payload_offset - base, parent.end - base, base=base):
        if child.type == box_type:
            return child
    return None


def find_path(data: bytes, parent: Box, path: str, *, base: int = 0) -> Box | None:
    """find_path(moov_bytes, moov, 'trak/mdia/mdhd')."""
    box: Box | None = parent
    for name in path.split("/"):
        if box is None:
            return None
        box = find_child(data, box, name, base=base)
    return box


class FileReader:
    """Reads box headers and payloads from an open file by seeking; never reads mdat."""

    def __init__(self, handle: BinaryIO, size: int):
        self.handle = handle
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        self.handle.seek(offset)
        return self.handle.read(length)

    def header_at(self, offset: int) -> Box:
        raw = self.read(offset, 16)
        box = parse_header(raw, 0, len(raw), base=offset)
        if box.end > self.size:
            raise Mp4Error(f"box '{box.type}' of {box.size} bytes runs past the end of the file "
                           f"({self.size} bytes)", offset, truncated=True)
        return box

    def top_level(self, start: int = 0, end: int | None = None) -> Iterator[Box]:
        pos, stop = start, self.size if end is None else end
        while pos < stop:
            box = self.header_at(pos)
            yield box
            pos = box.end

    def box_bytes(self, box: Box) -> bytes:
        """The whole box (header included), for small boxes such as moov, sidx, moof."""
        if box.size > MAX_READ_BOX_BYTES:
            raise Mp4Error(f"box '{box.type}' declares {box.size} bytes; real ones hold a few "
                           f"kilobytes (this validator reads at most {MAX_READ_BOX_BYTES >> 20} "
                           "MiB of one)", box.offset)
        data = self.read(box.offset, box.size)
        if len(data) < box.size:
            raise Mp4Error(f"box '{box.type}' cut short", box.offset, truncated=True)
        return data


def full_box(data: bytes, box: Box, *, base: int = 0) -> tuple[int, int, int]:
    """(version, flags, payload position after the FullBox header) in buffer coordinates."""
    pos = box.payload_offset - base
    if box.end - base - pos < 4:
        raise Mp4Error(f"'{box.type}' too short for a full box header", box.offset)
    (word,) = struct.unpack_from(">I", data, pos)
    return word >> 24, word & 0xFFFFFF, pos + 4


@dataclass(frozen=True)
class SidxReference:
    reference_type: int  # 0 = media, 1 = another sidx
    size: int
    duration: int
    starts_with_sap: bool
    sap_type: int


@dataclass(frozen=True)
class Sidx:
    offset: int
    size: int
    reference_id: int
    timescale: int
    earliest_presentation_time: int
    first_offset: int
    references: tuple[SidxReference, ...]

    @property
    def anchor(self) -> int:
        """Where the first referenced byte is: just after the sidx, plus first_offset."""
        return self.offset + self.size + self.first_offset


def parse_sidx(data: bytes, box: Box, *, base: int = 0) -> Sidx:
    version, _, pos = full_box(data, box, base=base)
    end = box.end - base
    need = 4 + 4 + (16 if version else 8) + 4
    if end - pos < need:
        raise Mp4Error("sidx header cut short", box.offset, truncated=True)
    reference_id, timescale = struct.unpack_from(">II", data, pos)
    pos += 8
    if version:
        ept, first_offset = struct.unpack_from(">QQ", data, pos)
        pos += 16
    else:
        ept, first_offset = struct.unpack_from(">II", data, pos)
        pos += 8
    _, count = struct.unpack_from(">HH", data, pos)
    pos += 4
    if end - pos < 12 * count:
        raise Mp4Error(f"sidx declares {count} references but holds {(end - pos) // 12}",
                       box.offset, truncated=True)
    refs = []
    for word0, duration, word2 in struct.iter_unpack(">III", data[pos:pos + 12 * count]):
        refs.append(SidxReference(word0 >> 31, word0 & 0x7FFFFFFF, duration, bool(word2 >> 31),
                                  (word2 >> 28) & 0x7))
    if timescale == 0:
        raise Mp4Error("sidx timescale is 0", box.offset)
    return Sidx(box.offset, box.size, reference_id, timescale, ept, first_offset, tuple(refs))


@dataclass(frozen=True)
class TrackFragment:
    """One traf of a moof: what the validator needs about its samples."""

    track_id: int
    base_decode_time: int | None
    sample_count: int
    duration: int  # sum of sample durations, in the track timescale
    frame_duration: int  # the most common sample duration (0: no samples)
    first_sample_flags: int | None  # None: no flags anywhere (trex defaults apply)
    first_sample_size: int
    data_offset: int  # absolute file offset of the first sample's bytes
    data_size: int  # sum of sample sizes
    # The trun's own columns, one 4-byte value a sample (None: every sample takes the default);
    # never expanded into Python ints, so a hostile sample count costs no memory.
    size_table: array[int] | None = None
    duration_table: array[int] | None = None
    default_size: int = 0
    default_duration: int = 0

    def sample_sizes(self) -> Iterable[int]:
        return self.size_table if self.size_table is not None else \
            itertools.repeat(self.default_size, self.sample_count)

    def sample_durations(self) -> Iterable[int]:
        return self.duration_table if self.duration_table is not None else \
            itertools.repeat(self.default_duration, self.sample_count)


@dataclass(frozen=True)
class TrexDefaults:
    track_id: int
    sample_duration: int
    sample_size: int
    sample_flags: int


def parse_trex(data: bytes, box: Box, *, base: int = 0) -> TrexDefaults:
    _, _, pos = full_box(data, box, base=base)
    track_id, _, duration, size, flags = struct.unpack_from(">IIIII", data, pos)
    return TrexDefaults(track_id, duration, size, flags)


def _trun_fields(flags: int) -> list[str]:
    return [name for bit, name in ((TRUN_SAMPLE_DURATION, "duration"),
                                   (TRUN_SAMPLE_SIZE, "size"),
                                   (TRUN_SAMPLE_FLAGS, "flags"),
                                   (TRUN_SAMPLE_CTO, "cto")) if flags & bit]


def parse_traf(data: bytes, traf: Box, moof_offset: int, trex: TrexDefaults | None,
               *, base: int = 0) -> TrackFragment:
    """Parses tfhd, tfdt and the first trun of a traf; `data` holds the whole moof."""
    tfhd = find_child(data, traf, "tfhd", base=base)
    if tfhd is None:
        raise Mp4Error("traf without tfhd", traf.offset)
    _, tf_flags, pos = full_box(data, tfhd, base=base)
    (track_id,) = struct.unpack_from(">I", data, pos)
    pos += 4
    base_data_offset = moof_offset
    if tf_flags & TFHD_BASE_DATA_OFFSET:
        (base_data_offset,) = struct.unpack_from(">Q", data, pos)
        pos += 8
    if tf_flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
        pos += 4
    default_duration = trex.sample_duration if trex else 0
    default_size = trex.sample_size if trex else 0
    default_flags: int | None = trex.sample_flags if trex else None
    if tf_flags & TFHD_DEFAULT_DURATION:
        (default_duration,) = struct.unpack_from(">I", data, pos)
        pos += 4
    if tf_flags & TFHD_DEFAULT_SIZE:
        (default_size,) = struct.unpack_from(">I", data, pos)
        pos += 4
    if tf_flags & TFHD_DEFAULT_FLAGS:
        (default_flags,) = struct.unpack_from(">I", data, pos)
        pos += 4

    decode_time = None
    tfdt = find_child(data, traf, "tfdt", base=base)
    if tfdt is not None:
        version, _, pos = full_box(data, tfdt, base=base)
        (decode_time,) = struct.unpack_from(">Q" if version else ">I", data, pos)

    trun = find_child(data, traf, "trun", base=base)
    if trun is None:
        return TrackFragment(track_id, decode_time, 0, 0, 0, default_flags, 0,
                             base_data_offset, 0)
    _, tr_flags, pos = full_box(data, trun, base=base)
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    data_offset = 0
    if tr_flags & TRUN_DATA_OFFSET:
        (data_offset,) = struct.unpack_from(">i", data, pos)
        pos += 4
    first_flags = default_flags
    if tr_flags & TRUN_FIRST_SAMPLE_FLAGS:
        (first_flags,) = struct.unpack_from(">I", data, pos)
        pos += 4
    fields = _trun_fields(tr_flags)
    if pos + 4 * len(fields) * count > trun.end - base:
        raise Mp4Error(f"trun declares {count} samples but is too short for them", trun.offset)
    # Without a table the count is bounded by nothing (2**32 is possible): durations and sizes
    # from defaults are multiplied, never expanded per sample.
    # One array for the whole table (4 bytes a value, not a Python int each); columns are
    # then strided slices of it.
    table = array("I", data[pos:pos + 4 * len(fields) * count])
    if sys.byteorder == "little":
        table.byteswap()
    columns = {name: table[i::len(fields)] for i, name in enumerate(fields)}
    durations, sizes = columns.get("duration"), columns.get("size")
    if durations is not None:
        duration = sum(durations)
        frame = Counter(durations).most_common(1)[0][0] if count else 0
    else:
        duration, frame = default_duration * count, default_duration if count else 0
    if "flags" in columns and count and not tr_flags & TRUN_FIRST_SAMPLE_FLAGS:
        first_flags = columns["flags"][0]
    return TrackFragment(
        track_id=track_id, base_decode_time=decode_time, sample_count=count, duration=duration,
        frame_duration=frame, first_sample_flags=first_flags,
        first_sample_size=(sizes[0] if sizes is not None else default_size) if count else 0,
        data_offset=base_data_offset + data_offset,
        data_size=sum(sizes) if sizes is not None else default_size * count,
        size_table=sizes, duration_table=durations, default_size=default_size,
        default_duration=default_duration)


def is_sync(sample_flags: int | None) -> bool:
    """A sample is sync unless its flags mark it non-sync (no flags at all: sync)."""
    return sample_flags is None or not sample_flags & SAMPLE_IS_NON_SYNC


def parse_mdhd(data: bytes, box: Box, *, base: int = 0) -> tuple[int, int, str]:
    """(timescale, duration, ISO 639-2 language) of a mdhd."""
    version, _, pos = full_box(data, box, base=base)
    if version == 1:
        timescale, duration = struct.unpack_from(">IQ", data, pos + 16)
        pos += 28
    else:
        timescale, duration = struct.unpack_from(">II", data, pos + 8)
        pos += 16
    (packed,) = struct.unpack_from(">H", data, pos)
    language = "".join(chr(((packed >> shift) & 0x1F) + 0x60) for shift in (10, 5, 0))
    return timescale, duration, language


def parse_hdlr(data: bytes, box: Box, *, base: int = 0) -> str:
    _, _, pos = full_box(data, box, base=base)
    return data[pos + 4:pos + 8].decode("latin-1")


def parse_tkhd_track_id(data: bytes, box: Box, *, base: int = 0) -> int:
    version, _, pos = full_box(data, box, base=base)
    (track_id,) = struct.unpack_from(">I", data, pos + (16 if version == 1 else 8))
    return track_id
