"""The encode engines: how one source's missing rungs get encoded. Everything else (probe,
plan, cache, package, validate, publish) is job.py's, shared by every engine.

`local` (LocalEncoder): one ffmpeg per pass over the whole source. `chunked`: GOP-aligned
chunks on this machine, joined by stream copy (chunked.py). `ray`: the same chunks as Ray tasks
over a cluster (ray_engine.py; Ray is an optional extra, imported only for that engine).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from discriminator_cli.encode.chunks import source_frames
from discriminator_cli.encode.ladder import LadderPlan
from discriminator_cli.encode.presets import Preset
from discriminator_cli.encode.rung_cache import CacheEntry
from discriminator_cli.encode.x264 import AudioJob, RungJob, build_pass_argv, with_spill
from discriminator_cli.errors import BadInputError, ToolFailedError
from discriminator_cli.probe import SourceInfo, corrupt_media_reason
from discriminator_cli.progress import ProgressSink
from discriminator_cli.runner import CommandRunner

if TYPE_CHECKING:
    from discriminator_cli.encode.job import EncodeOptions


@dataclass
class EncodeContext:
    """What an engine needs to encode one source's missing rungs."""

    source: SourceInfo
    source_hash: str
    plan: LadderPlan
    preset: Preset
    ffmpeg: str
    runner: CommandRunner
    progress: ProgressSink
    cache_root: Path
    work: Path
    rung_entries: dict[str, CacheEntry]
    options: EncodeOptions


class RungEncoder(Protocol):
    name: str

    def encode(self, ctx: EncodeContext, todo: list[RungJob],
               audio_todo: list[AudioJob]) -> None:
        """Write every job's `output` (video rungs and audio tracks)."""

    def cancel(self) -> None:
        """Stop: pending work is dropped, and `check_interrupted` raises from now on."""

    def check_interrupted(self) -> None:
        """Raise KeyboardInterrupt if the run was cancelled; called before publishing."""


def make_encoder(options: EncodeOptions) -> RungEncoder:
    if options.engine == "chunked":
        from discriminator_cli.encode.chunked import ChunkedEncoder

        return ChunkedEncoder(options.chunk_seconds)
    if options.engine == "ray":
        from discriminator_cli.encode.ray_engine import RayEncoder  # ray: an optional extra

        return RayEncoder(options.chunk_seconds, address=options.ray_address,
                          ship_sources=options.ship_sources)
    return LocalEncoder()


class LocalEncoder:
    """Today's path: one ffmpeg per pass over the whole source. When the rungs' raw frames fit
    on disk, pass 1 decodes and scales the source once and leaves them for pass 2."""

    name = "local"

    def __init__(self) -> None:
        self._cancelled = threading.Event()

    def encode(self, ctx: EncodeContext, todo: list[RungJob],
               audio_todo: list[AudioJob]) -> None:
        video = ctx.preset.video
        source, runner = ctx.source, ctx.runner
        passes: list[int | None] = [1, 2] if video.two_pass and todo else [None]
        if video.two_pass and todo:
            todo = with_spill(todo, source_frames(source, ctx.plan), video.pix_fmt, ctx.work,
                              dry_run=runner.dry_run)
        try:
            self._run_passes(ctx, todo, audio_todo, passes)
        finally:
            for job in todo:
                if job.spill is not None:
                    job.spill.unlink(missing_ok=True)  # gigabytes: free them at once

    def _run_passes(self, ctx: EncodeContext, todo: list[RungJob],
                    audio_todo: list[AudioJob], passes: list[int | None]) -> None:
        video = ctx.preset.video
        source, runner = ctx.source, ctx.runner
        for number in passes:
            label = "+".join(j.rung.name for j in todo) or "audio"
            name = f"pass {number}/2: {label}" if number else f"encode: {label}"
            argv = build_pass_argv(ctx.ffmpeg, source, ctx.plan, video, ctx.preset.audio, todo,
                                   audio_todo, number)
            task = ctx.progress.start(name, source.duration)

            def advance(done: float, task: int = task) -> None:
                ctx.progress.update(task, done)

            try:
                runner.run(argv, what=f"ffmpeg {name}", path=source.path, on_progress=advance,
                           hint="the source may be truncated or corrupt; check it plays "
                                "to the end, or run with --debug")
            except ToolFailedError as exc:
                reason = corrupt_media_reason(exc.stderr)
                if reason is not None:
                    raise BadInputError(f"corrupt or truncated media (ffmpeg: {reason})",
                                        path=source.path,
                                        hint="re-export or re-copy the source file") from None
                raise
            ctx.progress.finish(task)

    def cancel(self) -> None:
        self._cancelled.set()

    def check_interrupted(self) -> None:
        if self._cancelled.is_set():
            raise KeyboardInterrupt


