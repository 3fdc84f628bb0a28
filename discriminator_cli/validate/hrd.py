"""The decoder buffer (CPB / VBV) model, run over every frame of a video rendition.

A player's decoder receives the stream at the declared bit rate into a buffer of the declared
size and takes each picture out whole at its decode time (H.264 Annex C, leaky bucket). The
stream is broken for a conforming decoder when a picture has not fully arrived by then
(underflow: a stall) or, for a constant-bit-rate stream, when bits arrive into a full buffer
(overflow: the encoder should have stuffed). Rate, size and CBR come from the stream's own SPS
(VUI NAL HRD); a caller that knows the encode settings can pass them as a fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from discriminator_cli.validate.h264 import (
    HRD_CLOCK,
    HrdParameters,
    SyntaxError_,
    buffering_period_delay,
    sps_nal_hrd,
)
from discriminator_cli.validate.media import MediaInfo
from discriminator_cli.validate.report import Report

# x264's default initial fullness (vbv-init) when no buffering-period SEI says otherwise.
DEFAULT_INITIAL_FULLNESS = 0.9
# Bits of slack for the rounding of durations to the track timescale.
SLACK_BITS = 64


@dataclass(frozen=True)
class Violation:
    kind: str            # 'underflow' or 'overflow'
    frame: int           # decode order, from 0
    time: float          # seconds from the first picture's removal
    fullness: float      # bits in the buffer at that moment
    frame_bits: int


# A bound on work for hostile or absurd files: 15 million frames is a week at 25 fps.
MAX_SIMULATED_FRAMES = 15_000_000


def simulate(sizes: Iterable[int], durations: Iterable[float], hrd: HrdParameters,
             initial_fullness: float) -> Violation | None:
    """The first underflow or overflow over frames of `sizes` bytes lasting `durations` s."""
    return buffer_walk(sizes, durations, hrd, initial_fullness)[0]


def buffer_walk(sizes: Iterable[int], durations: Iterable[float], hrd: HrdParameters,
                initial_fullness: float) -> tuple[Violation | None, float]:
    """The first violation (or None) and the bits in the buffer after the last frame (where
    the next stream joined to this one starts: see encode/hrd_joins.py)."""
    fullness = initial_fullness
    clock = 0.0
    for frame, (size, duration) in enumerate(zip(sizes, durations, strict=True)):
        bits = size * 8
        if bits > fullness + SLACK_BITS:
            return Violation("underflow", frame, clock, fullness, bits), fullness
        fullness += hrd.bit_rate * duration - bits
        clock += duration
        if fullness > hrd.cpb_size + SLACK_BITS:
            if hrd.cbr:
                return Violation("overflow", frame, clock, fullness, bits), fullness
            fullness = hrd.cpb_size  # VBR: arrival pauses while the buffer is full
    return None, fullness


def stream_hrd(media: MediaInfo) -> HrdParameters | None:
    sps = media.sample.sps if media.sample else None
    if not sps:
        return None
    try:
        return sps_nal_hrd(sps)
    except (SyntaxError_, IndexError):
        return None


def initial_fullness(media: MediaInfo, hrd: HrdParameters) -> tuple[float, str]:
    """Bits in the buffer when the first picture is removed, and where that figure came from."""
    first = media.fragments[0] if media.fragments else None
    if first is not None and first.first_sample_size and media.sample is not None:
        with open(media.path, "rb") as handle:
            handle.seek(first.first_sample_offset)
            sample = handle.read(first.first_sample_size)
        try:
            delay = buffering_period_delay(sample, media.sample.nal_length_size, hrd)
        except (SyntaxError_, IndexError):
            delay = None
        if delay is not None:
            return hrd.bit_rate * delay / HRD_CLOCK, "its buffering-period SEI"
    return hrd.cpb_size * DEFAULT_INITIAL_FULLNESS, \
        f"an assumed {DEFAULT_INITIAL_FULLNESS:.0%} initial fullness"


def check_hrd(report: Report, media: MediaInfo,
              fallback: Mapping[str, HrdParameters] | None = None) -> None:
    """Run the buffer model over one video file and report the first violation."""
    if not media.usable or not media.is_video or not media.fragments:
        return
    hrd = stream_hrd(media) or (fallback or {}).get(media.path.name)
    if hrd is None:
        report.info("media.hrd-absent", media.path, None,
                    "the SPS declares no NAL HRD parameters (and no encode settings were "
                    "given): the decoder buffer model was not checked")
        return
    total = sum(f.sample_count for f in media.fragments)
    if total > MAX_SIMULATED_FRAMES:
        report.info("media.hrd-skipped", media.path, None,
                    f"{total} frames is more than {MAX_SIMULATED_FRAMES} (over a week at 25 fps):"
                    " the decoder buffer model was not run")
        return
    fullness, basis = initial_fullness(media, hrd)
    # Streamed from the trun tables: no per-frame list of the whole film in memory.
    tables = [f.samples for f in media.fragments if f.samples is not None]
    scale = media.timescale or 1
    sizes = (size for t in tables for size in t.sample_sizes())
    durations = (d / scale for t in tables for d in t.sample_durations())
    violation = simulate(sizes, durations, hrd, fullness)
    if violation is None:
        return
    where = f"frame {violation.frame}"
    settings = (f"{hrd.bit_rate / 1000:.0f} kbit/s into a {hrd.cpb_size / 1000:.0f} kbit "
                f"buffer ({'CBR' if hrd.cbr else 'VBR'}, from the {hrd.source}; start from "
                f"{basis})")
    if violation.kind == "underflow":
        message = (f"decoder buffer underflow at frame {violation.frame} "
                   f"(t={violation.time:.3f} s): the picture is {violation.frame_bits} bits but "
                   f"only {violation.fullness:.0f} have arrived at {settings}; a conforming "
                   "player stalls here")
    else:
        message = (f"decoder buffer overflow after frame {violation.frame} "
                   f"(t={violation.time:.3f} s): {violation.fullness:.0f} bits at {settings}; "
                   "a constant-bit-rate stream must stuff instead")
    report.error(f"media.hrd-{violation.kind}", media.path, where, message)
