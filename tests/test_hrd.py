"""The decoder buffer (HRD) check: the model itself, the SPS/SEI readers, real packages, and a
real stream whose SPS is made to lie about its rate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from discriminator_cli.validate import validate_package
from discriminator_cli.validate.h264 import HrdParameters, sps_nal_hrd, unescape
from discriminator_cli.validate.hrd import check_hrd, initial_fullness, simulate, stream_hrd
from discriminator_cli.validate.media import analyze_media
from discriminator_cli.validate.report import Report

CBR = HrdParameters(bit_rate=8000, cpb_size=16000, cbr=True)  # 800 bits per 0.1 s frame
VBR = HrdParameters(bit_rate=8000, cpb_size=16000, cbr=False)


def _bytes(bits: list[int]) -> list[int]:
    return [b // 8 for b in bits]


def test_a_steady_stream_at_the_rate_passes() -> None:
    # 10 frames of 0.1 s, each exactly the bits that arrive in 0.1 s: fullness never moves.
    assert simulate(_bytes([800] * 10), [0.1] * 10, CBR, 8000) is None


def test_a_big_picture_underflows_at_its_frame_and_time() -> None:
    sizes = _bytes([800, 800, 800, 12000, 800])
    violation = simulate(sizes, [0.1] * 5, CBR, 8000)
    assert violation is not None and violation.kind == "underflow"
    assert violation.frame == 3 and violation.time == pytest.approx(0.3)


def test_cbr_overflows_where_vbr_waits() -> None:
    sizes = _bytes([640] * 60)  # 160 bits a frame below the rate: the buffer fills up
    violation = simulate(sizes, [0.1] * 60, CBR, 8000)
    assert violation is not None and violation.kind == "overflow"
    assert violation.frame == 50  # 8000 + 51 * 160 > 16000 + 64 bits of slack
    assert simulate(sizes, [0.1] * 60, VBR, 8000) is None


def test_the_sps_of_the_local_encode_declares_its_preset(shaka_package: Path) -> None:
    media = analyze_media(shaka_package / "video_360p.mp4")
    hrd = stream_hrd(media)
    assert hrd == HrdParameters(bit_rate=800_000, cpb_size=1_600_000, cbr=True,
                                initial_delay_bits=hrd.initial_delay_bits if hrd else 0)
    fullness, basis = initial_fullness(media, hrd)
    assert "SEI" in basis and 0 < fullness <= hrd.cpb_size


def test_the_local_encode_passes_the_buffer_model(shaka_package: Path) -> None:
    report = validate_package(shaka_package)
    assert not [f for f in report.findings if f.check.startswith("media.hrd")]
    for name in ("video_360p.mp4", "video_180p.mp4"):
        media = analyze_media(shaka_package / name)
        assert sum(len(list(f.samples.sample_sizes())) for f in media.fragments
                   if f.samples is not None) == 200


def _escape(rbsp: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _lie_about_the_rate(path: Path, factor_log2: int) -> None:
    """Rewrite bit_rate_scale (a fixed 4-bit field of the SPS's NAL HRD) in the avcC, so that
    the stream claims 2**factor_log2 times its real rate; nothing else changes."""
    data = bytearray(path.read_bytes())
    avcc = data.index(b"avcC") + 4
    length = int.from_bytes(data[avcc + 6:avcc + 8], "big")
    start = avcc + 8
    sps = bytes(data[start:start + length])
    rbsp = unescape(sps)
    assert _escape(rbsp) == sps
    honest = sps_nal_hrd(sps)
    assert honest is not None
    for bit in range(8, len(rbsp) * 8 - 4):
        candidate = bytearray(rbsp)
        value = sum(((candidate[(bit + i) >> 3] >> (7 - ((bit + i) & 7))) & 1) << (3 - i)
                    for i in range(4))
        new = value + factor_log2
        if not 0 <= new < 16:
            continue
        for i in range(4):
            mask = 1 << (7 - ((bit + i) & 7))
            if (new >> (3 - i)) & 1:
                candidate[(bit + i) >> 3] |= mask
            else:
                candidate[(bit + i) >> 3] &= ~mask
        escaped = _escape(bytes(candidate))
        if len(escaped) != length:
            continue
        try:
            lie = sps_nal_hrd(escaped)
        except (ValueError, IndexError):
            continue
        if lie is not None and lie.cpb_size == honest.cpb_size and \
                lie.bit_rate == honest.bit_rate * 2 ** factor_log2:
            data[start:start + length] = escaped
            path.write_bytes(bytes(data))
            return
    raise AssertionError("bit_rate_scale not found in the SPS")


@pytest.mark.parametrize(("factor_log2", "kind"), [(-1, "underflow"), (1, "overflow")])
def test_a_stream_whose_sps_lies_about_its_rate_fails(shaka_package: Path, tmp_path: Path,
                                                      factor_log2: int, kind: str) -> None:
    package = tmp_path / "pkg"
    shutil.copytree(shaka_package, package)
    _lie_about_the_rate(package / "video_360p.mp4", factor_log2)
    report = validate_package(package)
    found = [f for f in report.errors if f.check.startswith("media.hrd")]
    assert [f.check for f in found] == [f"media.hrd-{kind}"]
    assert found[0].file.endswith("video_360p.mp4") and found[0].location.startswith("frame ")
    assert "t=" in found[0].message


def test_without_hrd_parameters_the_fallback_is_used(shaka_package: Path) -> None:
    media = analyze_media(shaka_package / "video_360p.mp4")
    assert media.sample is not None
    media.sample.sps = None
    report = Report()
    check_hrd(report, media)
    assert [f.check for f in report.findings] == ["media.hrd-absent"]
    tiny = HrdParameters(bit_rate=100_000, cpb_size=200_000, cbr=False, source="preset")
    report = Report()
    check_hrd(report, media, {"video_360p.mp4": tiny})
    assert [f.check for f in report.errors] == ["media.hrd-underflow"]
    assert "preset" in report.errors[0].message
