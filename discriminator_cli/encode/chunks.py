"""Cut a source into GOP-aligned chunks that can be encoded independently.

The ladder's GOP is fixed (keyint = min-keyint, scenecut off), so every rung has an IDR at every
multiple of the GOP length; a chunk of whole GOPs therefore starts with an IDR in every rung,
and the rungs' chunks joined by stream copy are a valid stream with the same IDR positions as a
single encode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from discriminator_cli.encode.ladder import LadderPlan
from discriminator_cli.encode.x264 import ChunkWindow
from discriminator_cli.errors import BadInputError
from discriminator_cli.probe import SourceInfo

DEFAULT_CHUNK_SECONDS = 30.0


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int              # first frame
    frames: int             # planned frame count (the last chunk: up to the end)
    last: bool

    @property
    def window(self) -> ChunkWindow:
        return ChunkWindow(self.start, None if self.last else self.frames)

    def as_key(self) -> dict[str, object]:
        """What makes this chunk's bytes: its window (the last one runs to the end)."""
        return {"start": self.start, "frames": None if self.last else self.frames}


def source_frames(source: SourceInfo, plan: LadderPlan) -> int:
    """Frames of the constant-rate sequence the ladder encodes."""
    if source.frame_count and not source.variable_frame_rate:
        return source.frame_count
    return max(1, round(source.duration * float(plan.frame_rate)))


def plan_chunks(total_frames: int, gop_frames: int, frame_rate: float,
                chunk_seconds: float = DEFAULT_CHUNK_SECONDS) -> list[Chunk]:
    """Whole-GOP chunks of about `chunk_seconds` (at least one GOP); the last chunk takes the
    remainder, so a tail shorter than half a chunk joins the chunk before it."""
    if chunk_seconds <= 0:
        raise BadInputError(f"--chunk-seconds {chunk_seconds:g} is not positive",
                            hint="give a chunk length in seconds, e.g. 30")
    gops_per_chunk = max(1, round(chunk_seconds * frame_rate / gop_frames))
    size = gops_per_chunk * gop_frames
    count = max(1, math.floor(total_frames / size + 0.5))
    chunks = [Chunk(i, i * size, size, last=False) for i in range(count - 1)]
    start = (count - 1) * size
    chunks.append(Chunk(count - 1, start, max(total_frames - start, 0), last=True))
    return chunks
