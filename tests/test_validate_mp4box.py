"""The box reader on hand-built boxes, and `analyze_media` against ffprobe on real packages."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from discriminator_cli.validate import mp4box
from discriminator_cli.validate.media import analyze_media, codecs_match, codecs_string
from discriminator_cli.validate.mp4box import FileReader, Mp4Error
from discriminator_cli.validate.sample_entry import parse_stsd
from tests.helpers import keyframe_indices
from tests.validate_corpus import top_level_boxes, video_media_files


def box(kind: str, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind.encode()) + payload


def full(kind: str, version: int, flags: int, payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def parsed(data: bytes) -> mp4box.Box:
    return mp4box.parse_header(data, 0, len(data))


# --- headers -----------------------------------------------------------------------------

def test_header_sizes() -> None:
    plain = box("free", b"12345")
    assert parsed(plain) == mp4box.Box("free", 0, 13, 8)
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 3) + b"abc"
    assert parsed(large) == mp4box.Box("mdat", 0, 19, 16)
    to_end = struct.pack(">I4s", 0, b"mdat") + b"x" * 10
    assert parsed(to_end).size == 18


def test_bad_and_short_headers() -> None:
    with pytest.raises(Mp4Error) as bad:
        mp4box.parse_header(struct.pack(">I4s", 4, b"moov"), 0, 8)
    assert not bad.value.truncated
    with pytest.raises(Mp4Error) as short:
        mp4box.parse_header(b"\x00\x00\x00", 0, 3)
    assert short.value.truncated


def test_file_reader_reports_a_box_past_the_end(tmp_path: Path) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes(box("ftyp", b"isom\x00\x00\x00\x00") + struct.pack(">I4s", 5000, b"mdat")
                     + b"only a little")
    with open(path, "rb") as handle:
        reader = FileReader(handle, path.stat().st_size)
        boxes = reader.top_level()
        assert next(boxes).type == "ftyp"
        with pytest.raises(Mp4Error) as cut:
            next(boxes)
    assert cut.value.truncated and cut.value.offset == 16


def test_children_and_paths() -> None:
    mdhd = full("mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, 48000, 96000, 0, 0))
    moov = box("moov", box("trak", box("mdia", mdhd)))
    root = parsed(moov)
    found = mp4box.find_path(moov, root, "trak/mdia/mdhd")
    assert found is not None and found.type == "mdhd" and found.offset == 24
    assert mp4box.find_path(moov, root, "trak/minf") is None


# --- full boxes ----------------------------------------------------------------------------

def language_code(text: str) -> int:
    return sum((ord(c) - 0x60) << shift for c, shift in zip(text, (10, 5, 0), strict=True))


@pytest.mark.parametrize("version", [0, 1])
def test_mdhd(version: int) -> None:
    times = struct.pack(">QQIQ", 1, 2, 12800, 102400) if version else \
        struct.pack(">IIII", 1, 2, 12800, 102400)
    data = full("mdhd", version, 0, times + struct.pack(">HH", language_code("fra"), 0))
    assert mp4box.parse_mdhd(data, parsed(data)) == (12800, 102400, "fra")


@pytest.mark.parametrize("version", [0, 1])
def test_sidx(version: int) -> None:
    times = struct.pack(">QQ", 1024, 7) if version else struct.pack(">II", 1024, 7)
    refs = struct.pack(">III", 5000, 24576, 0x90000000) + \
        struct.pack(">III", (1 << 31) | 300, 3072, 0)
    data = full("sidx", version, 0, struct.pack(">II", 1, 12800) + times
                + struct.pack(">HH", 0, 2) + refs)
    sidx = mp4box.parse_sidx(data, parsed(data))
    assert (sidx.timescale, sidx.earliest_presentation_time, sidx.first_offset) == (12800, 1024, 7)
    assert sidx.anchor == len(data) + 7
    first, second = sidx.references
    assert (first.reference_type, first.size, first.duration) == (0, 5000, 24576)
    assert first.starts_with_sap and first.sap_type == 1
    assert second.reference_type == 1 and not second.starts_with_sap


def test_sidx_with_missing_references() -> None:
    data = full("sidx", 0, 0, struct.pack(">IIIIHH", 1, 12800, 0, 0, 0, 3))
    with pytest.raises(Mp4Error):
        mp4box.parse_sidx(data, parsed(data))


def moof_with(tfhd_flags: int, tfhd_fields: bytes, trun_flags: int, trun_fields: bytes,
              count: int, table: bytes) -> bytes:
    tfhd = full("tfhd", 0, tfhd_flags, struct.pack(">I", 1) + tfhd_fields)
    tfdt = full("tfdt", 1, 0, struct.pack(">Q", 24576))
    trun = full("trun", 0, trun_flags, struct.pack(">I", count) + trun_fields + table)
    return box("moof", box("traf", tfhd + tfdt + trun))


def traf_of(moof: bytes, offset: int,
            trex: mp4box.TrexDefaults | None = None) -> mp4box.TrackFragment:
    root = mp4box.parse_header(moof, 0, len(moof), base=offset)
    traf = mp4box.find_child(moof, root, "traf", base=offset)
    assert traf is not None
    return mp4box.parse_traf(moof, traf, offset, trex, base=offset)


def test_trun_with_first_sample_flags_and_tfhd_defaults() -> None:
    """Bento4's layout: default duration and flags in tfhd, first_sample_flags in trun."""
    moof = moof_with(0x020028, struct.pack(">II", 512, 0x01010000), 0x000205,
                     struct.pack(">iI", 500, 0x02000000), 3, struct.pack(">III", 900, 40, 30))
    traf = traf_of(moof, 10_000)
    assert traf.base_decode_time == 24576 and traf.sample_count == 3
    assert traf.duration == 3 * 512 and traf.frame_duration == 512
    assert traf.first_sample_flags == 0x02000000 and mp4box.is_sync(traf.first_sample_flags)
    assert (traf.data_offset, traf.first_sample_size, traf.data_size) == (10_500, 900, 970)


def test_trun_with_per_sample_fields() -> None:
    """Shaka's layout: sizes, flags and composition offsets per sample in the trun."""
    table = struct.pack(">IIIIIIIII", 400, 0, 1024, 300, 0x00010000, 512, 200, 0x00010000, 0)
    moof = moof_with(0x020008, struct.pack(">I", 512), 0x000E01, struct.pack(">i", 200), 3,
                     table)
    traf = traf_of(moof, 0)
    assert traf.first_sample_flags == 0 and traf.data_size == 900
    non_sync = moof_with(0x020008, struct.pack(">I", 512), 0x000E01, struct.pack(">i", 200),
                         3, struct.pack(">I", 400) + struct.pack(">I", 0x00010000) + table[8:])
    assert not mp4box.is_sync(traf_of(non_sync, 0).first_sample_flags)


def test_trun_durations_and_trex_defaults() -> None:
    trex = mp4box.TrexDefaults(1, 1024, 0, 0x02000000)
    moof = moof_with(0x020000, b"", 0x000301, struct.pack(">i", 100), 2,
                     struct.pack(">IIII", 1024, 10, 1000, 11))
    traf = traf_of(moof, 0, trex)
    assert (traf.duration, traf.frame_duration) == (2024, 1024)
    assert traf.first_sample_flags == 0x02000000


def test_trun_shorter_than_its_samples() -> None:
    moof = moof_with(0, b"", 0x000200, b"", 50, struct.pack(">II", 1, 2))
    with pytest.raises(Mp4Error):
        traf_of(moof, 0)


def audio_entry(asc: bytes) -> bytes:
    decoder_specific = bytes([0x05, len(asc)]) + asc
    config = bytes([0x04, 13 + len(decoder_specific), 0x40, 0x15]) + bytes(11) + \
        decoder_specific
    es = bytes([0x03, 3 + len(config), 0, 1, 0]) + config
    esds = full("esds", 0, 0, es)
    header = bytes(6) + struct.pack(">H", 1) + bytes(8) + struct.pack(">HHHHI", 2, 16, 0, 0,
                                                                      48000 << 16)
    return full("stsd", 0, 0, struct.pack(">I", 1) + box("mp4a", header + esds))


@pytest.mark.parametrize(("asc", "codecs"), [(bytes([0x11, 0x90]), "mp4a.40.2"),
                                             (bytes([0x29, 0x90]), "mp4a.40.5"),
                                             (bytes([0xF8, 0x20, 0x00]), "mp4a.40.33")])
def test_esds_audio_object_type(asc: bytes, codecs: str) -> None:
    data = audio_entry(asc)
    sample = parse_stsd(data, parsed(data))
    assert (sample.fourcc, sample.channels, sample.sample_rate) == ("mp4a", 2, 48000)
    assert codecs_string(sample) == codecs


def test_avcc_profile_level_and_nal_length() -> None:
    visual = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", 640, 360) + \
        bytes(50)
    avcc = box("avcC", bytes([1, 0x64, 0x00, 0x1E, 0xFF, 0xE1]))
    data = full("stsd", 0, 0, struct.pack(">I", 1) + box("avc1", visual + avcc))
    sample = parse_stsd(data, parsed(data))
    assert (sample.width, sample.height, sample.nal_length_size) == (640, 360, 4)
    assert codecs_string(sample) == "avc1.64001e"


@pytest.mark.parametrize(("declared", "actual", "same"), [
    ("avc1.64001E", "avc1.64001e", True), ("avc1.64001f", "avc1.64001e", False),
    ("avc3.64001e", "avc1.64001e", False), ("mp4a.40.02", "mp4a.40.2", True),
    ("mp4a.40.5", "mp4a.40.2", False), ("avc1.4d40", "avc1.4d40", False),
])
def test_codecs_match(declared: str, actual: str, same: bool) -> None:
    assert codecs_match(declared, actual) is same


# --- real files ---------------------------------------------------------------------------

def test_analysis_agrees_with_ffprobe(any_package: Path) -> None:
    """Fragments start exactly at ffprobe's keyframes, and every sample is accounted for."""
    path = video_media_files(any_package)[0]
    info = analyze_media(path)
    assert not info.issues and info.is_video and info.codecs.startswith("avc1.")
    keyframes, frame_count = keyframe_indices(path)
    starts, position = [], 0
    for fragment in info.fragments:
        starts.append(position)
        position += fragment.sample_count
        assert fragment.first_sample_sync and fragment.starts_with_idr
    assert position == frame_count
    assert set(starts) <= set(keyframes)
    moofs = [offset for kind, offset, _ in top_level_boxes(path) if kind == "moof"]
    assert [f.offset for f in info.fragments] == moofs
    sidx = next(iter(info.sidx.values()))
    assert len(sidx.references) == len(moofs)


def test_analysis_reads_a_small_fraction_of_the_file(any_package: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = video_media_files(any_package)[0]
    read_bytes = []
    original = FileReader.read

    def counting(self: FileReader, offset: int, length: int) -> bytes:
        data = original(self, offset, length)
        read_bytes.append(len(data))
        return data

    monkeypatch.setattr(FileReader, "read", counting)
    info = analyze_media(path)
    assert info.fragments
    assert sum(read_bytes) < 0.05 * path.stat().st_size
