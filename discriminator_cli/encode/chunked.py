"""The chunked engine: each GOP-aligned chunk encodes every missing rung two-pass (one decode
per pass, the same argv builder as the local engine), chunks are cached one by one, and each
rung's chunks are joined by stream copy into the rung the packager takes. Before a join the
decoder buffer is walked across the rung's chunks: a chunk that ends fuller than the next one
planned gets the surplus as filler data on its last picture (filler.py: no encode), and a chunk
that still starts too far from the level its encoder planned is encoded again from its real
level (hrd_joins.py).

`ChunkedEncoder` runs the chunks one after another on this machine; the Ray engine
(`ray_engine.RayEncoder`) overrides `run_chunks` to spread them over a cluster. Everything a
chunk needs travels in a picklable `ChunkTask`.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from discriminator_cli.encode.chunks import Chunk, plan_chunks, source_frames
from discriminator_cli.encode.filler import pad_last_picture
from discriminator_cli.encode.hrd_joins import (
    ChunkBuffer,
    JoinCheck,
    check_join,
    read_chunk_buffer,
    vbv_init_for,
)
from discriminator_cli.encode.ladder import LadderPlan, PlannedRung
from discriminator_cli.encode.presets import AudioSettings, VideoSettings
from discriminator_cli.encode.rung_cache import CacheEntry, RungCache, encode_key
from discriminator_cli.encode.x264 import AudioJob, RungJob, build_pass_argv, with_spill
from discriminator_cli.probe import SourceInfo
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path, file_arg
from discriminator_cli.validate.hrd import buffer_walk

# Below this the surplus is a rounding error (a filler NAL unit needs 6 bytes with its length).
MIN_FILLER_BYTES = 64

if TYPE_CHECKING:  # engine.py imports this module lazily, never the other way round
    from discriminator_cli.encode.engine import EncodeContext


@dataclass(frozen=True)
class ChunkTask:
    """One chunk of one film: the rungs it still lacks, and how to encode them."""

    film: str                       # the source's content hash (names shipped copies)
    source: SourceInfo
    plan: LadderPlan
    video: VideoSettings
    audio: AudioSettings
    rungs: tuple[PlannedRung, ...]
    chunk: Chunk
    vbv_init: float | None = None   # a join repair: the buffer level it really starts at

    @property
    def label(self) -> str:
        rungs = "+".join(r.name for r in self.rungs)
        # A join repair says so: its passes are the chunked engine's extra work.
        again = " again" if self.vbv_init is not None else ""
        return f"chunk {self.chunk.index + 1} ({rungs}){again}"


def chunk_argvs(task: ChunkTask, ffmpeg: str, work: Path, input_path: Path | None = None,
                *, dry_run: bool = False) -> tuple[list[list[str]], dict[str, Path]]:
    """The pass argvs of one chunk and the file each rung's chunk is written to."""
    tag = f"c{task.chunk.index:05d}"
    jobs = [RungJob(r, work / f"{r.name}-{tag}.mp4", work / f"{r.name}-{tag}-passlog",
                    vbv_init=task.vbv_init) for r in task.rungs]
    passes: list[int | None] = [1, 2] if task.video.two_pass else [None]
    if task.video.two_pass:
        # Decode and scale the chunk once, as the local engine does (the spill sits in the
        # chunk's scratch folder, removed with it).
        jobs = with_spill(jobs, task.chunk.frames, task.video.pix_fmt, work, dry_run=dry_run)
    argvs = [build_pass_argv(ffmpeg, task.source, task.plan, task.video, task.audio, jobs, [],
                             number, window=task.chunk.window, input_path=input_path)
             for number in passes]
    return argvs, {job.rung.name: job.output for job in jobs}


def encode_chunk(task: ChunkTask, work: Path, runner: CommandRunner, *,
                 input_path: Path | None = None) -> dict[str, Path]:
    """Run one chunk's passes; returns rung name -> its encoded chunk (in `work`)."""
    argvs, outputs = chunk_argvs(task, ffmpeg_path(), work, input_path)
    for number, argv in enumerate(argvs, start=1):
        runner.run(argv, what=f"ffmpeg {task.label} pass {number}/{len(argvs)}",
                   path=task.source.path,
                   hint="the source may be truncated or corrupt; check it plays to the end")
    return outputs


def join_argv(ffmpeg: str, list_file: Path, output: Path) -> list[str]:
    """Concatenate one rung's chunks by stream copy (the concat demuxer carries each chunk's
    timestamps on from the previous chunk's end)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "concat",
            "-safe", "0", "-i", file_arg(list_file), "-map", "0:v:0", "-c", "copy",
            "-metadata:s:v:0", "language=und", "-f", "mp4", file_arg(output)]


def join_chunks(parts: list[Path], output: Path, runner: CommandRunner) -> None:
    list_file = output.with_suffix(".concat.txt")
    # The concat list quotes with single quotes; our cache paths are hex keys under the cache
    # root, but a quote in the root itself must still be escaped.
    list_file.write_text("".join("file '{}'\n".format(str(p).replace("'", "'\\''"))
                                 for p in parts))
    runner.run(join_argv(ffmpeg_path(), list_file, output), what="ffmpeg join chunks",
               path=output)


def chunk_entries(cache: RungCache, rung_keys: dict[str, str],
                  chunks: list[Chunk]) -> dict[tuple[str, int], CacheEntry]:
    """One cache entry per (rung, chunk), keyed by the rung's own key and the chunk window."""
    return {(name, c.index): cache.chunk(encode_key({"rung": key, "chunk": c.as_key()}))
            for name, key in rung_keys.items() for c in chunks}


@contextlib.contextmanager
def _scratch(parent: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=parent, prefix="chunk-") as name:
        yield Path(name)


# Called with (task, rung name -> produced chunk file) once a chunk is done.
ChunkDone = Callable[[ChunkTask, dict[str, Path]], None]


class ChunkedEncoder:
    """Encodes the ladder chunk by chunk; subclasses decide where the chunks run."""

    name = "chunked"

    def __init__(self, chunk_seconds: float, *, bound_hrd: bool = True) -> None:
        self.chunk_seconds = chunk_seconds
        self.bound_hrd = bound_hrd  # repair the buffer at the joins (off: to show the drift)
        self._cancelled = threading.Event()

    def plan(self, ctx: EncodeContext) -> list[Chunk]:
        return plan_chunks(source_frames(ctx.source, ctx.plan), ctx.plan.gop_frames,
                           float(ctx.plan.frame_rate), self.chunk_seconds)

    def encode(self, ctx: EncodeContext, todo: list[RungJob],
               audio_todo: list[AudioJob]) -> None:
        chunks = self.plan(ctx)
        rung_keys = {job.rung.name: ctx.rung_entries[job.rung.name].key for job in todo}
        entries = chunk_entries(RungCache(ctx.cache_root), rung_keys, chunks)
        tasks = []
        for chunk in chunks:
            missing = tuple(job.rung for job in todo
                            if not entries[(job.rung.name, chunk.index)].complete)
            if missing:
                tasks.append(ChunkTask(ctx.source_hash, ctx.source, ctx.plan,
                                       ctx.preset.video, ctx.preset.audio, missing, chunk))
        ctx.runner.note(f"chunks: {len(chunks)} planned, {len(tasks)} to encode "
                        f"({len(chunks) - len(tasks)} cached)")
        bar = ctx.progress.start(f"chunks ({self.name})", len(chunks), unit="chunks")
        done = [len(chunks) - len(tasks)]
        ctx.progress.update(bar, done[0])

        def stored(task: ChunkTask, outputs: dict[str, Path]) -> None:
            for name, produced in outputs.items():
                entries[(name, task.chunk.index)].store(produced)
            done[0] += 1
            ctx.progress.update(bar, done[0])

        audio_argv = (build_pass_argv(ctx.ffmpeg, ctx.source, ctx.plan, ctx.preset.video,
                                      ctx.preset.audio, [], audio_todo, None)
                      if audio_todo else None)
        self.run_chunks(ctx, tasks, stored, audio_argv)
        ctx.progress.finish(bar)
        if ctx.runner.dry_run:
            return
        for job in todo:
            if self.bound_hrd:
                self.repair_joins(ctx, job.rung, [(c, entries[(job.rung.name, c.index)])
                                                  for c in chunks])
            join_chunks([entries[(job.rung.name, c.index)].media for c in chunks], job.output,
                        ctx.runner)

    def repair_joins(self, ctx: EncodeContext, rung: PlannedRung,
                     parts: list[tuple[Chunk, CacheEntry]]) -> int:
        """Walk the buffer across one rung's chunks in order. A chunk that ends with more bits
        in the buffer than the next one planned to start with gets the surplus as filler data
        on its last picture (no encode); a chunk that still starts too far from its plan, or
        breaks the buffer from where it really starts, is encoded again (here, one after
        another) from its real level. Returns how many were encoded again."""
        buffers = [read_chunk_buffer(entry.media, ctx.runner) for _, entry in parts]
        if any(buffer is None for buffer in buffers):
            return 0  # no HRD declared: no buffer to keep
        level: float | None = None
        repaired = padded = 0
        for index, (chunk, entry) in enumerate(parts):
            buffer = buffers[index]
            assert buffer is not None
            level = buffer.planned if level is None else level
            check = check_join(buffer, level)
            if check.repair:
                self.check_interrupted()
                task = ChunkTask(ctx.source_hash, ctx.source, ctx.plan, ctx.preset.video,
                                 ctx.preset.audio, (rung,), chunk,
                                 vbv_init=vbv_init_for(level, buffer.hrd))
                with _scratch(ctx.work) as scratch:
                    entry.store(encode_chunk(task, scratch, ctx.runner)[rung.name])
                repaired += 1
                buffer = read_chunk_buffer(entry.media, ctx.runner)
                if buffer is None:
                    return repaired
                check = check_join(buffer, level)
            following = buffers[index + 1] if index + 1 < len(parts) else None
            if following is not None and not check.repair:
                end = self._fill_surplus(ctx, entry, buffer, level, check.end,
                                         following.planned)
                if end is not None:
                    padded += 1
                    check = JoinCheck(end, False)
            level = check.end
        if repaired or padded:
            ctx.runner.note(f"{rung.name}: {padded} join(s) given filler data, {repaired} "
                            "chunk(s) encoded again from the buffer level they really start at")
        return repaired

    @staticmethod
    def _fill_surplus(ctx: EncodeContext, entry: CacheEntry, buffer: ChunkBuffer,
                      start: float, end: float, target: float) -> float | None:
        """Filler on the last picture of a chunk that runs from `start` to `end` bits, so that
        it ends at `target`; the new end level, or None when there is no surplus to take or
        the chunk cannot take it."""
        extra = int((end - target) // 8)
        if extra < MIN_FILLER_BYTES:
            return None
        sizes = [*buffer.sizes[:-1], buffer.sizes[-1] + extra]
        violation, padded_end = buffer_walk(sizes, buffer.durations, buffer.hrd, start)
        if violation is not None:
            return None
        with _scratch(ctx.work) as scratch:
            target_file = scratch / entry.media.name
            if not pad_last_picture(entry.media, extra, target_file):
                return None
            entry.store(target_file)
        return padded_end

    def run_chunks(self, ctx: EncodeContext, tasks: list[ChunkTask], stored: ChunkDone,
                   audio_argv: list[str] | None) -> None:
        """On this machine: each chunk in turn, with the audio encoding alongside (as the local
        engine's audio rides along its last pass); an error or Ctrl-C kills the audio too."""
        if audio_argv is None or ctx.runner.dry_run:
            if audio_argv is not None:
                ctx.runner.run(audio_argv, what="ffmpeg audio", path=ctx.source.path)
            self._run_chunks_here(ctx, tasks, stored)
            return
        with ctx.runner.open(audio_argv, what="ffmpeg audio", path=ctx.source.path):
            self._run_chunks_here(ctx, tasks, stored)

    def _run_chunks_here(self, ctx: EncodeContext, tasks: list[ChunkTask],
                         stored: ChunkDone) -> None:
        for task in tasks:
            self.check_interrupted()
            if ctx.runner.dry_run:
                for argv in chunk_argvs(task, ctx.ffmpeg, ctx.work, dry_run=True)[0]:
                    ctx.runner.run(argv, what=f"ffmpeg {task.label}")
                continue
            with _scratch(ctx.work) as scratch:
                stored(task, encode_chunk(task, scratch, ctx.runner))

    def cancel(self) -> None:
        self._cancelled.set()

    def check_interrupted(self) -> None:
        if self._cancelled.is_set():
            raise KeyboardInterrupt
