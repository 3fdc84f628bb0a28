"""The few H.264 syntax elements the HRD check needs (ITU-T H.264 7.3.2.1, E.1.2, D.1.2).

From the SPS in the avcC: the VUI's NAL HRD parameters (bit rate, CPB size, CBR flag, the
length of the initial removal delay); from an IDR's SEI: the buffering period's initial CPB
removal delay, i.e. how full the decoder's buffer is when the first picture is taken out.
"""

from __future__ import annotations

from dataclasses import dataclass

NAL_SEI = 6
SEI_BUFFERING_PERIOD = 0
# Profiles whose SPS carries chroma format, bit depths and scaling matrices (7.3.2.1.1).
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
EXTENDED_SAR = 255
HRD_CLOCK = 90_000  # initial_cpb_removal_delay counts a 90 kHz clock


class SyntaxError_(ValueError):
    """The bitstream ends early or holds a value out of range."""


def unescape(nal: bytes) -> bytes:
    """Drop the emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise SyntaxError_("the NAL unit ends early")
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def flag(self) -> bool:
        return bool(self.bits(1))

    def ue(self) -> int:
        zeros = 0
        while not self.bits(1):
            zeros += 1
            if zeros > 31:
                raise SyntaxError_("an Exp-Golomb code is longer than 32 bits")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


@dataclass(frozen=True)
class HrdParameters:
    bit_rate: int           # bits per second (SchedSelIdx 0)
    cpb_size: int           # bits
    cbr: bool
    initial_delay_bits: int = 24  # length of initial_cpb_removal_delay in the SEI
    source: str = "sps"     # 'sps', or where a fallback came from


def _skip_scaling_lists(reader: BitReader, count: int) -> None:
    for index in range(count):
        if reader.flag():
            size = 16 if index < 6 else 64
            last = next_scale = 8
            for _ in range(size):
                if next_scale:
                    next_scale = (last + reader.se() + 256) % 256
                last = next_scale or last


def _hrd(reader: BitReader) -> HrdParameters:
    cpb_count = reader.ue() + 1
    bit_rate_scale, cpb_size_scale = reader.bits(4), reader.bits(4)
    first: tuple[int, int, bool] | None = None
    for _ in range(cpb_count):
        rate, size, cbr = reader.ue() + 1, reader.ue() + 1, reader.flag()
        first = first or (rate << (6 + bit_rate_scale), size << (4 + cpb_size_scale), cbr)
    delay_length = reader.bits(5) + 1
    reader.bits(15)  # removal / output delay lengths, time offset length
    assert first is not None
    return HrdParameters(first[0], first[1], first[2], delay_length)


def sps_nal_hrd(sps: bytes) -> HrdParameters | None:
    """The NAL HRD parameters of an SPS NAL unit (header byte included), or None."""
    reader = BitReader(unescape(sps[1:]))
    profile = reader.bits(8)
    reader.bits(16)  # constraint flags, level
    reader.ue()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        if reader.ue() == 3:  # chroma_format_idc
            reader.flag()
        reader.ue()
        reader.ue()  # bit depths
        reader.flag()
        if reader.flag():
            _skip_scaling_lists(reader, 8)
    reader.ue()  # log2_max_frame_num_minus4
    poc_type = reader.ue()
    if poc_type == 0:
        reader.ue()
    elif poc_type == 1:
        reader.flag()
        reader.se()
        reader.se()
        for _ in range(reader.ue()):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.flag()
    reader.ue()
    reader.ue()  # picture size in macroblocks
    if not reader.flag():  # frame_mbs_only_flag
        reader.flag()
    reader.flag()  # direct_8x8_inference_flag
    if reader.flag():  # frame cropping
        for _ in range(4):
            reader.ue()
    if not reader.flag():  # vui_parameters_present_flag
        return None
    if reader.flag() and reader.bits(8) == EXTENDED_SAR:
        reader.bits(32)
    if reader.flag():  # overscan
        reader.flag()
    if reader.flag():  # video signal type
        reader.bits(4)
        if reader.flag():
            reader.bits(24)
    if reader.flag():  # chroma location
        reader.ue()
        reader.ue()
    if reader.flag():  # timing info
        reader.bits(32)
        reader.bits(32)
        reader.flag()
    if not reader.flag():  # nal_hrd_parameters_present_flag
        return None
    return _hrd(reader)


def buffering_period_delay(sample: bytes, nal_length_size: int,
                           hrd: HrdParameters) -> int | None:
    """initial_cpb_removal_delay (90 kHz ticks) from a sample's buffering-period SEI."""
    pos = 0
    while pos + nal_length_size < len(sample):
        length = int.from_bytes(sample[pos:pos + nal_length_size], "big")
        nal = sample[pos + nal_length_size:pos + nal_length_size + length]
        pos += nal_length_size + length
        if not nal or nal[0] & 0x1F != NAL_SEI:
            continue
        payload = unescape(nal[1:])
        at = 0
        while at < len(payload) and payload[at] != 0x80:  # rbsp trailing bits
            kind = size = 0
            while payload[at] == 0xFF:
                kind, at = kind + 255, at + 1
            kind, at = kind + payload[at], at + 1
            while payload[at] == 0xFF:
                size, at = size + 255, at + 1
            size, at = size + payload[at], at + 1
            if kind == SEI_BUFFERING_PERIOD:
                reader = BitReader(payload[at:at + size])
                reader.ue()  # seq_parameter_set_id
                return reader.bits(hrd.initial_delay_bits)
            at += size
    return None
