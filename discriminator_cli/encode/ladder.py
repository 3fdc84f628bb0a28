"""Plan the bitrate ladder for one source: never upscale, keep the aspect ratio, even sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from discriminator_cli.encode.presets import Preset, RungSpec
from discriminator_cli.probe import SourceInfo


@dataclass(frozen=True)
class PlannedRung:
    name: str
    width: int
    height: int
    bitrate: int
    bufsize: int
    clamped: bool = False   # a preset rung shrunk to the source size instead of upscaling

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LadderPlan:
    rungs: tuple[PlannedRung, ...]
    dropped: tuple[str, ...]        # preset rungs above the source, left out
    frame_rate: Fraction
    gop_frames: int
    segment_seconds: float


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def fit_inside(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest even size with the source's aspect ratio that fits the rung's box."""
    scale = min(box_w / src_w, box_h / src_h)
    return _even(src_w * scale), _even(src_h * scale)


def plan_ladder(source: SourceInfo, preset: Preset) -> LadderPlan:
    rungs: list[PlannedRung] = []
    dropped: list[str] = []
    above: list[RungSpec] = []
    for spec in sorted(preset.rungs, key=lambda r: r.width * r.height, reverse=True):
        width, height = fit_inside(source.width, source.height, spec.width, spec.height)
        if width > source.width or height > source.height:
            above.append(spec)
            continue
        rungs.append(PlannedRung(spec.name, width, height, spec.bitrate, spec.bufsize))
    top_w, top_h = source.width - source.width % 2, source.height - source.height % 2
    if above and (not rungs or rungs[0].width < top_w):
        # Keep the top of the ladder at the source's own size rather than losing it: the
        # smallest rung above the source, scaled down, bitrate in proportion to the pixels.
        spec = above.pop()
        ratio = (top_w * top_h) / (spec.width * spec.height)
        rungs.insert(0, PlannedRung(spec.name, top_w, top_h,
                                    max(16_000, round(spec.bitrate * ratio)),
                                    max(16_000, round(spec.bufsize * ratio)), clamped=True))
    dropped = [spec.name for spec in above]
    gop = preset.video.gop_frames
    segment = gop * preset.packaging.gops_per_segment / float(source.frame_rate)
    return LadderPlan(rungs=tuple(rungs), dropped=tuple(dropped), frame_rate=source.frame_rate,
                      gop_frames=gop, segment_seconds=segment)
