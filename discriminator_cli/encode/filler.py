"""Add H.264 filler data to the last picture of an encoded chunk, without encoding again.

A CBR decoder buffer fills at the bit rate and empties by each picture's size. When a chunk ends
with more bits in the buffer than the next chunk's encoder planned to start with, the next chunk
overflows the buffer. What a CBR encoder itself does against overflow is send filler data (NAL
unit type 12, counted by the NAL HRD and ignored by decoders): appending one filler NAL unit to
the chunk's last picture takes exactly the surplus out of the buffer, so the next chunk starts
where it planned. The pictures are untouched.

The chunk files are what ffmpeg's mp4 muxer writes for a single video track: `mdat` followed by
`moov`. The last picture's bytes are then the last bytes of `mdat`; the filler goes after them,
`mdat` grows, and the last `stsz` entry grows; no chunk offset moves (`moov` refers to `mdat`
only, from before the insertion). Any other layout is refused (None), and the caller falls back
to encoding the chunk again.
"""

from __future__ import annotations

import struct
from pathlib import Path

from discriminator_cli.validate.mp4box import Box, Mp4Error, find_path, full_box, iter_children

FILLER_NAL_TYPE = 12
# A filler NAL unit: its header byte, at least no 0xFF payload, then the RBSP stop bit byte.
_NAL_OVERHEAD = 2


def _top_level(data: bytes) -> list[Box]:
    return list(iter_children(data, 0, len(data)))


def _length_size(data: bytes, stbl: Box) -> int | None:
    """The NAL length field size from avcC (lengthSizeMinusOne + 1)."""
    stsd = find_path(data, stbl, "stsd")
    if stsd is None:
        return None
    _, _, pos = full_box(data, stsd)
    entry = next(iter_children(data, pos + 4, stsd.end), None)
    if entry is None or entry.type not in ("avc1", "avc3"):
        return None
    # VisualSampleEntry: 8 (SampleEntry) + 70 bytes of fields before its child boxes.
    for child in iter_children(data, entry.payload_offset + 78, entry.end):
        if child.type == "avcC" and child.size >= child.header_size + 5:
            return (data[child.payload_offset + 4] & 0x03) + 1
    return None


def _last_sample_end(data: bytes, stbl: Box, sizes: list[int]) -> int | None:
    """Where the last sample's bytes end in the file, from stco/co64 and stsc."""
    offsets_box = find_path(data, stbl, "stco") or find_path(data, stbl, "co64")
    stsc = find_path(data, stbl, "stsc")
    if offsets_box is None or stsc is None:
        return None
    _, _, pos = full_box(data, offsets_box)
    (count,) = struct.unpack_from(">I", data, pos)
    if count == 0:
        return None
    wide = offsets_box.type == "co64"
    last_offset = struct.unpack_from(">Q" if wide else ">I", data,
                                     pos + 4 + (count - 1) * (8 if wide else 4))[0]
    _, _, pos = full_box(data, stsc)
    (entries,) = struct.unpack_from(">I", data, pos)
    if entries == 0:
        return None
    # The last stsc run covers the last chunk; its samples are the last ones in the file.
    _, per_chunk, _ = struct.unpack_from(">III", data, pos + 4 + (entries - 1) * 12)
    if per_chunk == 0 or per_chunk > len(sizes):
        return None
    return int(last_offset + sum(sizes[-per_chunk:]))


def pad_last_picture(source: Path, extra_bytes: int, target: Path) -> bool:
    """Write `source` to `target` with `extra_bytes` (>= the 2-byte NAL plus the length field)
    of filler data appended to its last picture; False when the file's layout is not the one
    this handles (nothing is written)."""
    data = source.read_bytes()
    try:
        top = _top_level(data)
        mdat = next(b for b in top if b.type == "mdat")
        moov = next(b for b in top if b.type == "moov")
        traks = [b for b in iter_children(data, moov.payload_offset, moov.end)
                 if b.type == "trak"]
        if moov.offset != mdat.end or len(traks) != 1:
            return False
        stbl = find_path(data, traks[0], "mdia/minf/stbl")
        stsz = find_path(data, stbl, "stsz") if stbl else None
        if stbl is None or stsz is None:
            return False
        length_size = _length_size(data, stbl)
        _, _, pos = full_box(data, stsz)
        constant, count = struct.unpack_from(">II", data, pos)
        if length_size is None or constant != 0 or count == 0:
            return False
        sizes = list(struct.unpack_from(f">{count}I", data, pos + 8))
        if _last_sample_end(data, stbl, sizes) != mdat.end:
            return False
    except (Mp4Error, StopIteration, struct.error, IndexError):
        return False
    payload = extra_bytes - length_size - _NAL_OVERHEAD
    if payload < 0 or sizes[-1] + extra_bytes > 0xFFFFFFFF:
        return False
    nal = bytes([FILLER_NAL_TYPE]) + b"\xff" * payload + b"\x80"
    filler = len(nal).to_bytes(length_size, "big") + nal
    new_mdat_size = mdat.size + len(filler)
    if mdat.header_size == 8:
        if new_mdat_size > 0xFFFFFFFF:
            return False
        mdat_header = struct.pack(">I4s", new_mdat_size, b"mdat")
    else:
        mdat_header = struct.pack(">I4sQ", 1, b"mdat", new_mdat_size)
    moov_bytes = bytearray(data[moov.offset:moov.end])
    last_entry = pos + 8 + (count - 1) * 4 - moov.offset
    struct.pack_into(">I", moov_bytes, last_entry, sizes[-1] + len(filler))
    with target.open("wb") as out:
        out.write(data[:mdat.offset])
        out.write(mdat_header)
        out.write(data[mdat.payload_offset:mdat.end])
        out.write(filler)
        out.write(moov_bytes)
        out.write(data[moov.end:])
    return True
