"""ffmpeg argv for the ladder: one process per pass, the source decoded once and `split` into
every rung's scaler and encoder, each rung with its own pass log. The same builder encodes a
whole source (the local engine) or a frame-exact window of it (one chunk of the chunked
engines).

With a spill (`RungJob.spill`), pass 1 also writes each rung's scaled frames, raw, to a file,
and pass 2 encodes from those files: the source is decoded and scaled once instead of once per
pass (decoding a 10-bit ProRes master costs about as much CPU as x264's whole first pass at
720p). Every pass scales in a cascade: the top rung is converted to the encoder's 8-bit format
once and every smaller rung is scaled from it, which is cheaper than scaling each from the
10-bit source."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ffmpeg

from discriminator_cli.encode.ladder import LadderPlan, PlannedRung
from discriminator_cli.encode.presets import AudioSettings, VideoSettings
from discriminator_cli.probe import SourceInfo
from discriminator_cli.tools import file_arg

NULL_OUTPUT = "/dev/null"
# Names the filter graph in the cache keys: a change to how frames reach x264 (the scaling
# cascade) must not reuse rungs or chunks made the old way.
GRAPH_VERSION = "from-top-rung-1"


@dataclass(frozen=True)
class RungJob:
    rung: PlannedRung
    output: Path        # the finished rung (pass 2)
    passlog: Path       # x264's stats file prefix, one per rung
    spill: Path | None = None   # pass 1's raw frames of this rung, pass 2's input
    vbv_init: float | None = None   # x264's initial buffer level (a chunk join's real one)


@dataclass(frozen=True)
class ChunkWindow:
    """Frames [start, start + frames) of the constant-rate frame sequence; frames None: to the
    end of the source (the last chunk takes the remainder)."""

    start: int
    frames: int | None

    def seek_seconds(self, plan: LadderPlan) -> float:
        # Half a frame early: the accurate input seek keeps frames at or after it, so frame
        # `start` is the first one kept whatever the rounding of its timestamp.
        return max(0.0, (self.start - 0.5) / float(plan.frame_rate)) if self.start else 0.0


@dataclass(frozen=True)
class AudioJob:
    language: str       # ISO 639-2
    input_path: Path
    audio_index: int    # ffmpeg 0:a:N within its input
    output: Path
    loudnorm: tuple[tuple[str, str], ...] = ()   # second-pass loudnorm options, if any


# Raw frames of each pixel format, in bytes per pixel (the formats a preset may ask for).
_BYTES_PER_PIXEL = {"yuv420p": 1.5, "yuvj420p": 1.5, "nv12": 1.5, "yuv422p": 2.0,
                    "yuv444p": 3.0, "yuv420p10le": 3.0, "yuv422p10le": 4.0}
# The most raw frames pass 1 may leave for pass 2 (about 4 minutes of the documentary's
# three-rung ladder at 25 fps); a longer source is decoded twice instead. Never more than
# half the free space where the work folder is.
SPILL_LIMIT_BYTES = 32 * 1024**3


def spill_bytes(frames: int, rungs: list[RungJob], pix_fmt: str) -> int | None:
    """What the rungs' raw frames would weigh; None for a format without a known size."""
    per_pixel = _BYTES_PER_PIXEL.get(pix_fmt)
    if per_pixel is None:
        return None
    return int(frames * sum(j.rung.width * j.rung.height for j in rungs) * per_pixel)


def with_spill(jobs: list[RungJob], frames: int, pix_fmt: str, work: Path, *,
               dry_run: bool = False) -> list[RungJob]:
    """`jobs` with a spill file each when their raw frames fit (else unchanged)."""
    size = spill_bytes(frames, jobs, pix_fmt)
    if size is None or size > SPILL_LIMIT_BYTES:
        return jobs
    if not dry_run and size > shutil.disk_usage(work).free // 2:
        return jobs
    return [replace(job, spill=work / f"{job.rung.name}-frames.nut") for job in jobs]


def x264_params(video: VideoSettings, gop_frames: int, vbv_init: float | None = None) -> str:
    params = [f"keyint={gop_frames}", f"min-keyint={gop_frames}"]
    if not video.scenecut:
        params.append("scenecut=-1")
    if video.nal_hrd != "none":
        params.append(f"nal-hrd={video.nal_hrd}")
    if vbv_init is not None:
        params.append(f"vbv-init={vbv_init:g}")
    return ":".join(params)


def _cascade_streams(source_video: Any, source: SourceInfo, plan: LadderPlan,
                     video: VideoSettings, rungs: list[RungJob],
                     window: ChunkWindow | None) -> list[list[Any]]:
    """Decode once -> the largest rung, converted to the encoder's format -> every smaller rung
    scaled from it (8-bit 4:2:0: cheaper than from a 10-bit 4:2:2 source; scaling each from
    the next larger rung instead cost the 432p rung 0.17 dB PSNR). Per rung (job order): the
    stream for its encoder, then the one for its spill if it has one."""
    head = source_video
    if window is not None and window.start:
        # The seek leaves the first kept frame half a frame after zero: restart at zero so
        # that each chunk's timestamps join the previous chunk's without a gap.
        head = head.filter("setpts", "PTS-STARTPTS")
    if source.variable_frame_rate:
        head = head.filter("fps", f"{plan.frame_rate.numerator}/{plan.frame_rate.denominator}")
    top, *rest = sorted(range(len(rungs)),
                        key=lambda i: -rungs[i].rung.width * rungs[i].rung.height)
    streams: dict[int, list[Any]] = {}
    top_branches: list[Any] = []  # filled by the top rung (first in the loop) for the rest
    for index, feed in [(top, head)] + [(i, None) for i in rest]:
        job = rungs[index]
        if feed is None:
            feed = top_branches.pop()
        scaled = (feed.filter("scale", job.rung.width, job.rung.height, flags="bicubic")
                  .filter("format", video.pix_fmt).filter("setsar", 1))
        own = 1 + (job.spill is not None)
        feeds = len(rest) if index == top else 0
        if own + feeds == 1:
            streams[index] = [scaled]
            continue
        branches = scaled.filter_multi_output("split", own + feeds)
        streams[index] = [branches.stream(i) for i in range(own)]
        if feeds:
            top_branches = [branches.stream(own + i) for i in reversed(range(feeds))]
    return [streams[i] for i in range(len(rungs))]


def _spill_output(stream: Any, job: RungJob, window: ChunkWindow | None) -> Any:
    assert job.spill is not None
    # NUT keeps every frame's timestamp exactly; rawvideo costs no CPU to write or read.
    options: dict[str, object] = {"c:v": "rawvideo", "an": None}
    if window is not None and window.frames is not None:
        options["frames:v"] = window.frames
    return ffmpeg.output(stream, file_arg(job.spill), format="nut", **options)


def _video_output(stream: Any, job: RungJob, video: VideoSettings, plan: LadderPlan,
                  pass_number: int | None, window: ChunkWindow | None) -> Any:
    rung = job.rung
    options: dict[str, object] = {
        "c:v": video.encoder, "preset": video.x264_preset, "profile:v": video.profile,
        "level:v": video.level, "pix_fmt": video.pix_fmt, "b:v": rung.bitrate,
        "maxrate": rung.bitrate, "bufsize": rung.bufsize,
        "x264-params": x264_params(video, plan.gop_frames, job.vbv_init), "an": None}
    if window is not None and window.frames is not None:
        options["frames:v"] = window.frames
    if pass_number is not None:
        options.update({"pass": pass_number, "passlogfile": str(job.passlog)})
    if pass_number == 1:
        return ffmpeg.output(stream, NULL_OUTPUT, format="null", **options)
    return ffmpeg.output(stream, file_arg(job.output), format="mp4",
                         **{**options, "metadata:s:v:0": "language=und"})


def _audio_output(stream: Any, job: AudioJob, audio: AudioSettings) -> Any:
    return ffmpeg.output(stream, file_arg(job.output), format="mp4", vn=None,
                         **{"c:a": audio.encoder, "b:a": audio.bitrate, "ac": audio.channels,
                            "ar": audio.sample_rate,
                            "metadata:s:a:0": f"language={job.language}"})


def build_pass_argv(ffmpeg_binary: str, source: SourceInfo, plan: LadderPlan,
                    video: VideoSettings, audio: AudioSettings, rungs: list[RungJob],
                    audio_jobs: list[AudioJob], pass_number: int | None,
                    window: ChunkWindow | None = None, input_path: Path | None = None,
                    ) -> list[str]:
    """One ffmpeg process for one pass of every rung in `rungs` (pass None = single pass).

    The graph is built with ffmpeg-python and compiled to an argv list (run by the
    CommandRunner like every other tool). Audio outputs ride along with the final pass, so no
    extra decode of the source happens. `window` encodes one chunk (video only); `input_path`
    reads the source from another place than where it was probed (a worker's copy). When every
    job names a `spill`, pass 1 writes the rungs' frames there and pass 2 reads them back.
    """
    path = input_path or Path(source.path)
    seek = {"ss": f"{window.seek_seconds(plan):.6f}"} if window and window.start else {}
    spilled = bool(rungs) and pass_number is not None and all(j.spill for j in rungs)
    outputs = []
    inputs: dict[Path, Any] = {}
    if spilled and pass_number == 2:
        # The frames pass 1 left: no decode, no scaling; the source is read for audio only.
        for rung_job in rungs:
            assert rung_job.spill is not None
            frames = ffmpeg.input(file_arg(rung_job.spill))["v:0"]
            outputs.append(_video_output(frames, rung_job, video, plan, pass_number, window))
    elif rungs:
        main_input = ffmpeg.input(file_arg(path), **seek)
        inputs[Path(source.path)] = main_input
        if not spilled:  # a single pass, or pass 1's frames did not fit: no spill outputs
            rungs = [replace(job, spill=None) for job in rungs]
        branches = _cascade_streams(main_input["v:0"], source, plan, video, rungs, window)
        # Encoders first: ffmpeg names a pass log after the output stream's index among all
        # outputs, and pass 2 (encoders only) must find the same names.
        outputs += [_video_output(streams[0], job, video, plan, pass_number, window)
                    for streams, job in zip(branches, rungs, strict=True)]
        outputs += [_spill_output(streams[1], job, window)
                    for streams, job in zip(branches, rungs, strict=True) if job.spill]
    if pass_number != 1 and window is None:
        for job in audio_jobs:
            if job.input_path not in inputs:
                inputs[job.input_path] = ffmpeg.input(file_arg(job.input_path))
            stream = inputs[job.input_path][f"a:{job.audio_index}"]
            if job.loudnorm:
                stream = stream.filter("loudnorm", **dict(job.loudnorm))
            outputs.append(_audio_output(stream, job, audio))
    graph = ffmpeg.merge_outputs(*outputs).global_args(
        "-hide_banner", "-nostdin", "-loglevel", "error", "-xerror", "-progress", "pipe:1",
        "-nostats")
    return list(graph.compile(cmd=ffmpeg_binary, overwrite_output=True))
