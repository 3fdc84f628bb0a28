"""Measure an encoded rung from its packets: GOP positions, average and peak bitrate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from discriminator_cli.bitrate import Segment, peak_bitrate
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffprobe_path, file_arg


@dataclass(frozen=True)
class StreamMeasurement:
    frames: int
    duration: float
    bytes: int
    average_bitrate: int
    peak_bitrate: int           # the highest bitrate over any one segment window
    keyframes: tuple[int, ...]  # frame indices of the sync samples, in decode order

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamMeasurement:
        return cls(**{**data, "keyframes": tuple(data["keyframes"])})


def measure_stream(path: Path, *, kind: str, segment_seconds: float,
                   runner: CommandRunner | None = None) -> StreamMeasurement:
    """Read packet sizes and flags with ffprobe (the index only; no decoding)."""
    runner = runner or CommandRunner()
    selector = "v:0" if kind == "video" else "a:0"
    argv = [ffprobe_path(), "-v", "error", "-select_streams", selector, "-show_entries",
            "packet=dts_time,duration_time,size,flags", "-of", "csv=p=0", file_arg(path)]
    out = runner.run(argv, what="ffprobe packets", path=path, mutating=False).stdout
    times: list[float] = []
    sizes: list[int] = []
    keyframes: list[int] = []
    end = 0.0
    for line in out.splitlines():
        fields = line.split(",")
        if len(fields) < 4 or not fields[2].isdigit():
            continue
        dts = float(fields[0]) if fields[0] not in ("", "N/A") else (times[-1] if times else 0)
        duration = float(fields[1]) if fields[1] not in ("", "N/A") else 0.0
        if "K" in fields[3]:
            keyframes.append(len(sizes))
        times.append(dts)
        sizes.append(int(fields[2]))
        end = max(end, dts + duration)
    start = times[0] if times else 0.0
    total_seconds = max(end - start, 1e-9)
    total_bytes = sum(sizes)
    peak = _peak_bitrate(times, sizes, start, segment_seconds, total_seconds)
    return StreamMeasurement(frames=len(sizes), duration=round(total_seconds, 6),
                             bytes=total_bytes,
                             average_bitrate=round(total_bytes * 8 / total_seconds),
                             peak_bitrate=peak, keyframes=tuple(keyframes))


def _peak_bitrate(times: list[float], sizes: list[int], start: float, window: float,
                  total: float) -> int:
    """Cut the packets into segment-long windows and take the RFC 8216 peak over them, the
    same definition `validate` checks and `encode` declares in HLS BANDWIDTH."""
    if not sizes:
        return 0
    buckets: dict[int, int] = {}
    for when, size in zip(times, sizes, strict=True):
        index = int((when - start + 1e-6) // window)
        buckets[index] = buckets.get(index, 0) + size
    segments = [Segment(size=buckets[index], start=index * window,
                        duration=min(window, max(total - index * window, 1e-3)))
                for index in sorted(buckets)]
    return round(peak_bitrate(segments, window))
