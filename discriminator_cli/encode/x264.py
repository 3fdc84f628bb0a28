"""ffmpeg argv for the ladder: one process per pass, the source decoded once and `split` into
every rung's scaler and encoder, each rung with its own pass log. The same builder encodes a
whole source (the local engine) or a frame-exact window of it (one chunk of the chunked
engines)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from discriminator_cli.encode.ladder import LadderPlan, PlannedRung
from discriminator_cli.encode.presets import AudioSettings, VideoSettings
from discriminator_cli.probe import SourceInfo
from discriminator_cli.tools import file_arg

NULL_OUTPUT = "/dev/null"


@dataclass(frozen=True)
class RungJob:
    rung: PlannedRung
    output: Path        # the finished rung (pass 2)
    passlog: Path       # x264's stats file prefix, one per rung


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


def x264_params(video: VideoSettings, gop_frames: int) -> str:
    params = [f"keyint={gop_frames}", f"min-keyint={gop_frames}"]
    if not video.scenecut:
        params.append("scenecut=-1")
    if video.nal_hrd != "none":
        params.append(f"nal-hrd={video.nal_hrd}")
    return ":".join(params)


def _rung_streams(source_video: Any, source: SourceInfo, plan: LadderPlan,
                  rungs: list[RungJob], window: ChunkWindow | None) -> list[Any]:
    """Decode once -> (constant rate) -> split -> per-rung scale: one stream per rung."""
    video = source_video
    if window is not None and window.start:
        # The seek leaves the first kept frame half a frame after zero: restart at zero so
        # that each chunk's timestamps join the previous chunk's without a gap.
        video = video.filter("setpts", "PTS-STARTPTS")
    if source.variable_frame_rate:
        video = video.filter("fps", f"{plan.frame_rate.numerator}/{plan.frame_rate.denominator}")
    if len(rungs) > 1:
        branches = video.filter_multi_output("split", len(rungs))
        heads = [branches.stream(i) for i in range(len(rungs))]
    else:
        heads = [video]
    return [head.filter("scale", job.rung.width, job.rung.height, flags="bicubic")
            .filter("setsar", 1) for head, job in zip(heads, rungs, strict=True)]


def _video_output(stream: Any, job: RungJob, video: VideoSettings, plan: LadderPlan,
                  pass_number: int | None, window: ChunkWindow | None) -> Any:
    rung = job.rung
    options: dict[str, object] = {
        "c:v": video.encoder, "preset": video.x264_preset, "profile:v": video.profile,
        "level:v": video.level, "pix_fmt": video.pix_fmt, "b:v": rung.bitrate,
        "maxrate": rung.bitrate, "bufsize": rung.bufsize,
        "x264-params": x264_params(video, plan.gop_frames), "an": None}
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
    reads the source from another place than where it was probed (a worker's copy).
    """
    path = input_path or Path(source.path)
    seek = {"ss": f"{window.seek_seconds(plan):.6f}"} if window and window.start else {}
    main_input = ffmpeg.input(file_arg(path), **seek)
    inputs: dict[Path, Any] = {Path(source.path): main_input}
    outputs = []
    if rungs:
        streams = _rung_streams(main_input["v:0"], source, plan, rungs, window)
        outputs += [_video_output(stream, job, video, plan, pass_number, window)
                    for stream, job in zip(streams, rungs, strict=True)]
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
