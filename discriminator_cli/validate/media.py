"""What a fragmented MP4 file really holds: track, codec, fragments, sync samples, sizes.

`analyze_media` walks the top-level boxes with seeks and reads only moov, sidx and moof boxes
plus the first NAL headers of each fragment's first sample, so its cost grows with the number
of fragments, not with the file size. The manifest checkers compare what they declare with
the `MediaInfo` it returns.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from discriminator_cli.validate import mp4box
from discriminator_cli.validate.mp4box import FileReader, Mp4Error, Sidx
from discriminator_cli.validate.sample_entry import SampleEntry, parse_stsd

AVC_NAL_SLICE, AVC_NAL_IDR = 1, 5
MAX_NALS_BEFORE_SLICE = 16  # SEI, AUD, SPS, PPS... precede the first slice of an access unit
AAC_FRAME_SAMPLES = 1024
# A two-hour package fragmented per frame at 60 fps has under 900 000 top-level boxes; more is
# a hostile file, and each fragment kept costs memory.
MAX_TOP_LEVEL_BOXES = 1_000_000


@dataclass(frozen=True)
class MediaIssue:
    """A problem in the file itself, independent of any manifest."""

    severity: str
    check: str
    offset: int
    message: str


@dataclass(frozen=True)
class Fragment:
    offset: int  # of the moof
    end: int  # end of the media data that belongs to it (up to the next moof)
    decode_time: int | None
    duration: int
    sample_count: int
    first_sample_sync: bool
    first_sample_offset: int
    first_sample_size: int
    frame_duration: int  # the most common sample duration in this fragment
    starts_with_idr: bool | None  # None: not an AVC track, or the sample could not be read
    # The traf it was read from: every sample's size and duration, in decode order, for the
    # HRD buffer model (held compactly; see mp4box.TrackFragment).
    samples: mp4box.TrackFragment | None = None

    @property
    def first_sample_end(self) -> int:
        return self.first_sample_offset + self.first_sample_size


@dataclass
class MediaInfo:
    path: Path
    size: int
    handler: str | None = None  # 'vide', 'soun'
    track_id: int | None = None
    timescale: int = 0
    language: str | None = None
    sample: SampleEntry | None = None
    track_count: int = 0
    moov_end: int | None = None
    sidx: dict[int, Sidx] = field(default_factory=dict)  # by file offset
    fragments: list[Fragment] = field(default_factory=list)
    issues: list[MediaIssue] = field(default_factory=list)
    media_end: int = 0  # end of the last moof/mdat pair
    _index: dict[int, int] | None = field(default=None, repr=False)
    _ends: set[int] | None = field(default=None, repr=False)
    _frame: tuple[int, int | None] | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        return self.sample is not None and self.timescale > 0

    @property
    def codecs(self) -> str | None:
        return codecs_string(self.sample) if self.sample else None

    @property
    def is_video(self) -> bool:
        return self.handler == "vide"

    @property
    def duration_ticks(self) -> int:
        return sum(f.duration for f in self.fragments)

    @property
    def duration_seconds(self) -> float:
        return self.duration_ticks / self.timescale if self.timescale else 0.0

    @property
    def frame_duration(self) -> int | None:
        """The most common sample duration over the fragments (computed once: hot path)."""
        if self._frame is None or self._frame[0] != len(self.fragments):
            counts = Counter(f.frame_duration for f in self.fragments if f.frame_duration)
            self._frame = (len(self.fragments),
                           counts.most_common(1)[0][0] if counts else None)
        return self._frame[1]

    @property
    def frame_rate(self) -> Fraction | None:
        frame = self.frame_duration
        return Fraction(self.timescale, frame) if frame and self.timescale else None

    @property
    def frame_seconds(self) -> float:
        """One frame (video) or one codec frame (AAC: 1024 samples), in seconds."""
        frame = self.frame_duration
        if frame and self.timescale:
            return frame / self.timescale
        if self.sample and self.sample.sample_rate:
            return AAC_FRAME_SAMPLES / self.sample.sample_rate
        return 0.0

    def fragment_index(self) -> dict[int, int]:
        """Fragment position by moof offset; built once (the walk is over by then)."""
        if self._index is None or len(self._index) != len(self.fragments):
            self._index = {frag.offset: i for i, frag in enumerate(self.fragments)}
        return self._index

    def segment_ends(self) -> set[int]:
        """Offsets where a segment may end: a moof, the end of the media, the end of file
        (Bento4's last byte range also covers its trailing mfra box)."""
        if self._ends is None:
            self._ends = {*self.fragment_index(), self.media_end, self.size}
        return self._ends


def codecs_string(sample: SampleEntry) -> str | None:
    """The RFC 6381 codecs string the stream's configuration implies."""
    if sample.avc_profile is not None:
        return (f"{sample.fourcc}.{sample.avc_profile:02x}{sample.avc_compatibility:02x}"
                f"{sample.avc_level:02x}")
    if sample.fourcc == "mp4a" and sample.object_type is not None:
        if sample.object_type == 0x40 and sample.audio_object_type is not None:
            return f"mp4a.40.{sample.audio_object_type}"
        return f"mp4a.{sample.object_type:02X}"
    return None


def codecs_match(declared: str, actual: str) -> bool:
    """Compare two RFC 6381 strings by value: hex fields ignore case, '40.02' equals '40.2'."""
    d_parts, a_parts = declared.strip().split("."), actual.strip().split(".")
    if d_parts[0] != a_parts[0] or len(d_parts) != len(a_parts):
        return False
    try:
        if d_parts[0] in ("avc1", "avc3"):
            return int(d_parts[1], 16) == int(a_parts[1], 16) and len(d_parts[1]) == 6
        if d_parts[0] == "mp4a":
            return int(d_parts[1], 16) == int(a_parts[1], 16) and all(
                int(d) == int(a) for d, a in zip(d_parts[2:], a_parts[2:], strict=True))
    except ValueError:
        return False
    return declared.strip().lower() == actual.strip().lower()


def analyze_media(path: Path) -> MediaInfo:
    """Read what the validator needs from one fragmented MP4; problems become `issues`."""
    size = os.path.getsize(path)
    info = MediaInfo(path=path, size=size)
    if size == 0:
        info.issues.append(MediaIssue("error", "mp4.truncated", 0, "the file is empty"))
        return info
    with open(path, "rb") as handle:
        reader = FileReader(handle, size)
        try:
            _walk(reader, info)
        except Mp4Error as exc:
            check = "mp4.truncated" if exc.truncated else "mp4.malformed"
            info.issues.append(MediaIssue("error", check, exc.offset, exc.message))
        except (struct.error, IndexError) as exc:
            info.issues.append(MediaIssue("error", "mp4.malformed", 0,
                                          f"cannot parse the boxes: {exc}"))
    if info.moov_end is None:
        info.issues.append(MediaIssue("error", "mp4.no-moov", 0,
                                      "no moov box: the file has no initialization data"))
    return info


def _walk(reader: FileReader, info: MediaInfo) -> None:
    pending: list[tuple[int, mp4box.TrackFragment]] = []  # moofs awaiting their end
    try:
        _walk_boxes(reader, info, pending)
    finally:
        # A walk cut short (truncated file) still keeps the fragments it had parsed.
        end = info.media_end if info.media_end > max((o for o, _ in pending), default=-1) \
            else reader.size
        _close_fragments(reader, info, pending, end)


def _walk_boxes(reader: FileReader, info: MediaInfo,
                pending: list[tuple[int, mp4box.TrackFragment]]) -> None:
    trex: mp4box.TrexDefaults | None = None
    for count, box in enumerate(reader.top_level()):
        if count == MAX_TOP_LEVEL_BOXES:
            raise Mp4Error(f"more than {MAX_TOP_LEVEL_BOXES} top-level boxes; the rest of the "
                           "file is not checked", box.offset)
        if box.type == "moov":
            trex = _read_moov(reader.box_bytes(box), box, info)
            info.moov_end = box.end
        elif box.type == "sidx":
            data = reader.box_bytes(box)
            info.sidx[box.offset] = mp4box.parse_sidx(data, box, base=box.offset)
        elif box.type == "moof":
            if info.moov_end is None:
                raise Mp4Error("moof before moov", box.offset)
            _close_fragments(reader, info, pending, box.offset)
            traf = _read_moof(reader.box_bytes(box), box, info, trex)
            if traf is not None:
                pending.append((box.offset, traf))
        elif box.type == "mdat":
            info.media_end = box.end


def _read_moov(data: bytes, moov: mp4box.Box, info: MediaInfo) -> mp4box.TrexDefaults | None:
    base = moov.offset
    traks = [b for b in mp4box.iter_children(data, moov.payload_offset - base, len(data),
                                             base=base) if b.type == "trak"]
    info.track_count = len(traks)
    if not traks:
        raise Mp4Error("moov holds no trak", moov.offset)
    trak = traks[0]
    tkhd = mp4box.find_child(data, trak, "tkhd", base=base)
    mdhd = mp4box.find_path(data, trak, "mdia/mdhd", base=base)
    hdlr = mp4box.find_path(data, trak, "mdia/hdlr", base=base)
    stsd = mp4box.find_path(data, trak, "mdia/minf/stbl/stsd", base=base)
    if mdhd is None or hdlr is None or stsd is None or tkhd is None:
        raise Mp4Error("trak lacks tkhd, mdhd, hdlr or stsd", trak.offset)
    info.track_id = mp4box.parse_tkhd_track_id(data, tkhd, base=base)
    info.timescale, _, info.language = mp4box.parse_mdhd(data, mdhd, base=base)
    info.handler = mp4box.parse_hdlr(data, hdlr, base=base)
    info.sample = parse_stsd(data, stsd, base=base)
    mvex = mp4box.find_child(data, moov, "mvex", base=base)
    if mvex is None:
        info.issues.append(MediaIssue("error", "mp4.not-fragmented", moov.offset,
                                      "moov has no mvex: the file is not fragmented"))
        return None
    for child in mp4box.iter_children(data, mvex.payload_offset - base, mvex.end - base,
                                      base=base):
        if child.type == "trex":
            trex = mp4box.parse_trex(data, child, base=base)
            if trex.track_id == info.track_id:
                return trex
    return None


def _read_moof(data: bytes, moof: mp4box.Box, info: MediaInfo,
               trex: mp4box.TrexDefaults | None) -> mp4box.TrackFragment | None:
    base = moof.offset
    for child in mp4box.iter_children(data, moof.payload_offset - base, len(data), base=base):
        if child.type == "traf":
            traf = mp4box.parse_traf(data, child, moof.offset, trex, base=base)
            if traf.track_id == info.track_id:
                return traf
    info.issues.append(MediaIssue("error", "mp4.malformed", moof.offset,
                                  f"moof has no traf for track {info.track_id}"))
    return None


def _close_fragments(reader: FileReader, info: MediaInfo,
                     pending: list[tuple[int, mp4box.TrackFragment]], end: int) -> None:
    for offset, traf in pending:
        frame = traf.frame_duration
        sample_end = traf.data_offset + traf.data_size
        if traf.sample_count > reader.size:
            info.issues.append(MediaIssue(
                "error", "mp4.malformed", offset,
                f"the fragment declares {traf.sample_count} samples, more than the file has "
                f"bytes ({reader.size})"))
        elif traf.sample_count and sample_end > reader.size:
            info.issues.append(MediaIssue(
                "error", "mp4.truncated", offset,
                f"the fragment's samples end at byte {sample_end}, past the end of the file "
                f"({reader.size} bytes)"))
        idr = _starts_with_idr(reader, info, traf) if traf.sample_count else None
        info.fragments.append(Fragment(
            offset=offset, end=max(end, offset), decode_time=traf.base_decode_time,
            duration=traf.duration, sample_count=traf.sample_count,
            first_sample_sync=mp4box.is_sync(traf.first_sample_flags),
            first_sample_offset=traf.data_offset, first_sample_size=traf.first_sample_size,
            frame_duration=frame, starts_with_idr=idr, samples=traf))
    pending.clear()


def _starts_with_idr(reader: FileReader, info: MediaInfo,
                     traf: mp4box.TrackFragment) -> bool | None:
    """Is the first slice NAL unit of the fragment's first sample an IDR slice?"""
    sample = info.sample
    if sample is None or sample.avc_profile is None:
        return None
    length_size = sample.nal_length_size
    pos, end = traf.data_offset, traf.data_offset + traf.first_sample_size
    if end > reader.size:
        return None
    for _ in range(MAX_NALS_BEFORE_SLICE):
        if pos + length_size + 1 > end:
            return False  # the sample ended without a slice
        head = reader.read(pos, length_size + 1)
        if len(head) < length_size + 1:
            return None
        nal_length = int.from_bytes(head[:length_size], "big")
        nal_type = head[length_size] & 0x1F
        if nal_type == AVC_NAL_IDR:
            return True
        if nal_type == AVC_NAL_SLICE:
            return False
        pos += length_size + nal_length
    return None


class MediaCache:
    """One analysis per media file per validation run, shared by the DASH and HLS checks."""

    def __init__(self) -> None:
        self._by_path: dict[Path, MediaInfo] = {}

    def get(self, path: Path) -> MediaInfo:
        key = path.resolve()
        if key not in self._by_path:
            self._by_path[key] = analyze_media(key)
        return self._by_path[key]

    def analysed(self) -> list[MediaInfo]:
        """Every file analysed so far, in the order the manifests led to them."""
        return list(self._by_path.values())
