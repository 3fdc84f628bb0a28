"""Sample entries (stsd): the codec configuration the RFC 6381 codecs string comes from.

avc1/avc3 carry an avcC (profile, compatibility, level, NAL length size); mp4a carries an
esds whose DecoderConfigDescriptor and AudioSpecificConfig give the object types.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from discriminator_cli.validate.mp4box import Box, Mp4Error, full_box, iter_children, parse_header


@dataclass
class SampleEntry:
    """The first stsd entry: its four-character code and codec configuration."""

    fourcc: str
    width: int = 0
    height: int = 0
    channels: int = 0
    sample_rate: int = 0
    avc_profile: int | None = None
    avc_compatibility: int | None = None
    avc_level: int | None = None
    nal_length_size: int = 4
    sps: bytes | None = None  # the first sequence parameter set NAL unit of the avcC
    object_type: int | None = None  # esds DecoderConfigDescriptor objectTypeIndication
    audio_object_type: int | None = None  # from the AudioSpecificConfig
    extra: dict[str, object] = field(default_factory=dict)


VISUAL_ENTRY_HEADER = 78  # bytes of VisualSampleEntry before its child boxes
AUDIO_ENTRY_HEADER = 28


def parse_stsd(data: bytes, stsd: Box, *, base: int = 0) -> SampleEntry:
    _, _, pos = full_box(data, stsd, base=base)
    (count,) = struct.unpack_from(">I", data, pos)
    if count < 1:
        raise Mp4Error("stsd holds no sample entry", stsd.offset)
    entry = parse_header(data, pos + 4, stsd.end - base, base=base)
    start = entry.payload_offset - base
    sample = SampleEntry(entry.type)
    if entry.type in ("avc1", "avc3", "hvc1", "hev1", "encv"):
        sample.width, sample.height = struct.unpack_from(">HH", data, start + 24)
        for child in iter_children(data, start + VISUAL_ENTRY_HEADER, entry.end - base,
                                   base=base):
            if child.type == "avcC":
                _parse_avcc(data, child, sample, base=base)
                break  # some muxers repeat avcC; the first one is the one decoders use
    elif entry.type in ("mp4a", "enca"):
        sample.channels, _, _, _, rate = struct.unpack_from(">HHHHI", data, start + 16)
        sample.sample_rate = rate >> 16
        for child in iter_children(data, start + AUDIO_ENTRY_HEADER, entry.end - base,
                                   base=base):
            if child.type == "esds":
                _parse_esds(data, child, sample, base=base)
                break
    return sample


def _parse_avcc(data: bytes, box: Box, sample: SampleEntry, *, base: int) -> None:
    pos = box.payload_offset - base
    if box.end - base - pos < 5:
        raise Mp4Error("avcC too short", box.offset)
    _, profile, compat, level, length_byte = struct.unpack_from(">BBBBB", data, pos)
    sample.avc_profile, sample.avc_compatibility, sample.avc_level = profile, compat, level
    sample.nal_length_size = (length_byte & 0x3) + 1
    end = box.end - base
    if pos + 8 <= end and data[pos + 5] & 0x1F:
        (sps_length,) = struct.unpack_from(">H", data, pos + 6)
        if pos + 8 + sps_length <= end:
            sample.sps = bytes(data[pos + 8:pos + 8 + sps_length])


def _descriptor(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, payload position, payload length) of an MPEG-4 descriptor (expandable size)."""
    tag = data[pos]
    pos += 1
    length = 0
    for _ in range(4):
        if pos >= end:
            raise Mp4Error("descriptor cut short", pos)
        byte = data[pos]
        pos += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, pos, length


ES_DESCRIPTOR, DECODER_CONFIG, DECODER_SPECIFIC = 0x03, 0x04, 0x05


def _parse_esds(data: bytes, box: Box, sample: SampleEntry, *, base: int) -> None:
    _, _, pos = full_box(data, box, base=base)
    end = box.end - base
    tag, pos, _ = _descriptor(data, pos, end)
    if tag != ES_DESCRIPTOR:
        raise Mp4Error("esds does not start with an ES_Descriptor", box.offset)
    es_flags = data[pos + 2]
    pos += 3
    if es_flags & 0x80:  # streamDependenceFlag
        pos += 2
    if es_flags & 0x40:  # URL_Flag
        pos += 1 + data[pos]
    if es_flags & 0x20:  # OCRstreamFlag
        pos += 2
    tag, pos, length = _descriptor(data, pos, end)
    if tag != DECODER_CONFIG:
        raise Mp4Error("esds lacks a DecoderConfigDescriptor", box.offset)
    sample.object_type = data[pos]
    config_end = pos + length
    pos += 13
    if pos < config_end:
        tag, pos, length = _descriptor(data, pos, end)
        if tag == DECODER_SPECIFIC and length >= 1:
            aot = data[pos] >> 3
            if aot == 31 and length >= 2:  # escape: 6 more bits follow
                aot = 32 + (((data[pos] & 0x07) << 3) | (data[pos + 1] >> 5))
            sample.audio_object_type = aot
