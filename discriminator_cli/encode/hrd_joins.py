"""Keep the decoder buffer (HRD) right across chunk joins.

Every chunk's x264 plans its buffer from the level its buffering-period SEI declares (x264's
vbv-init, 90 % by default) and ends wherever its last frame leaves it. In the joined stream a
chunk starts where the previous one really ended, so the difference between the two levels is
carried into every later chunk: x264's own per-chunk overhead (its ~650-byte header SEI) makes
that a steady drift, a few hundred bytes per join, that a long film in many chunks turns into
an underflow. x264 has no vbv-end to pin the end level, so the joins are checked in order
instead. A chunk that ends fuller than the next chunk planned (CBR chunks tend to end near full)
gets the surplus as filler data (filler.py), so the next one starts exactly as planned; a chunk
that still starts too far from its plan (or breaks the buffer from where it really starts) is
encoded again with vbv-init set to that real level, which resets the drift there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffprobe_path, file_arg
from discriminator_cli.validate.h264 import (
    HRD_CLOCK,
    HrdParameters,
    SyntaxError_,
    buffering_period_delay,
    sps_nal_hrd,
)
from discriminator_cli.validate.hrd import buffer_walk

# How far (a fraction of the buffer) a chunk may start from the level its encoder planned
# before it is encoded again: a quarter keeps every chunk well inside its own margins.
JOIN_TOLERANCE = 0.25
# vbv-init takes a fraction below 1 (1 and above would mean kbit).
_VBV_INIT_RANGE = (0.01, 0.999)


@dataclass(frozen=True)
class ChunkBuffer:
    """One encoded chunk as the buffer model sees it."""

    hrd: HrdParameters
    planned: float          # bits in the buffer at its first removal, per its own SEI
    sizes: list[int]        # bytes per frame, decode order
    durations: list[float]  # seconds per frame


def _hex_dump_bytes(dump: str) -> bytes:
    """ffprobe's `-show_data` dump ('00000000: 0000 02ad 0605 ...  ascii') back to bytes."""
    out = bytearray()
    for line in dump.splitlines():
        _, _, rest = line.partition(": ")
        out += bytes.fromhex(rest.split("  ", 1)[0].replace(" ", ""))
    return bytes(out)


def read_chunk_buffer(path: Path, runner: CommandRunner) -> ChunkBuffer | None:
    """Frame sizes and timing, HRD parameters and planned start of a chunk; None when its SPS
    declares no NAL HRD (nothing to keep)."""
    probe = [ffprobe_path(), "-v", "error", "-select_streams", "v:0"]
    head = json.loads(runner.run(
        [*probe, "-read_intervals", "%+#1", "-show_streams", "-show_packets", "-show_data",
         "-of", "json", file_arg(path)], what="ffprobe chunk header", path=path,
        mutating=False).stdout)
    avcc = _hex_dump_bytes(head["streams"][0].get("extradata", ""))
    first = _hex_dump_bytes(head["packets"][0].get("data", "")) if head.get("packets") else b""
    if len(avcc) < 8 or not first:
        return None
    sps = avcc[8:8 + int.from_bytes(avcc[6:8], "big")]
    try:
        hrd = sps_nal_hrd(sps)
        delay = buffering_period_delay(first, (avcc[4] & 3) + 1, hrd) if hrd else None
    except (SyntaxError_, IndexError):
        return None
    if hrd is None or delay is None:
        return None
    rows = runner.run([*probe, "-show_entries", "packet=size,duration_time", "-of", "csv=p=0",
                       file_arg(path)], what="ffprobe chunk packets", path=path,
                      mutating=False).stdout
    sizes, durations = [], []
    for row in rows.split():
        duration, _, size = row.partition(",")  # ffprobe's field order, not the asked one
        if size.isdigit():
            sizes.append(int(size))
            durations.append(float(duration) if duration not in ("", "N/A") else 0.0)
    return ChunkBuffer(hrd, hrd.bit_rate * delay / HRD_CLOCK, sizes, durations)


def vbv_init_for(level: float, hrd: HrdParameters) -> float:
    low, high = _VBV_INIT_RANGE
    return round(min(high, max(low, level / hrd.cpb_size)), 6)


@dataclass(frozen=True)
class JoinCheck:
    end: float          # bits in the buffer after the chunk's last frame
    repair: bool        # encode it again from where it really starts


def check_join(chunk: ChunkBuffer, start: float) -> JoinCheck:
    """Run the chunk from the level it really starts at (`start` bits)."""
    violation, end = buffer_walk(chunk.sizes, chunk.durations, chunk.hrd, start)
    drifted = abs(start - chunk.planned) > JOIN_TOLERANCE * chunk.hrd.cpb_size
    return JoinCheck(end, violation is not None or drifted)
