"""ffmpeg argv for the ladder: one process per pass, the source decoded once and `split` into
every rung's scaler and encoder, each rung with its own pass log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from discriminator_cli.ladder import LadderPlan, PlannedRung
from discriminator_cli.presets import AudioSettings, VideoSettings
from discriminator_cli.probe import SourceInfo

NULL_OUTPUT = "/dev/null"


@dataclass(frozen=True)
class RungJob:
    rung: PlannedRung
    output: Path        # the finished rung (pass 2)
    passlog: Path       # x264's stats file prefix, one per rung


@dataclass(frozen=True)
class AudioJob:
    key: str
    language: str       # ISO 639-2
    input_path: Path
    audio_index: int    # ffmpeg 0:a:N within its input
    output: Path


def x264_params(video: VideoSettings, gop_frames: int) -> str:
    params = [f"keyint={gop_frames}", f"min-keyint={gop_frames}"]
    if not video.scenecut:
        params.append("scenecut=-1")
    if video.nal_hrd != "none":
        params.append(f"nal-hrd={video.nal_hrd}")
    return ":".join(params)


def _filter_graph(source: SourceInfo, plan: LadderPlan, rungs: list[RungJob]) -> str:
    head = "[0:v:0]"
    steps = []
    if source.variable_frame_rate:
        steps.append(f"fps={plan.frame_rate.numerator}/{plan.frame_rate.denominator}")
    if len(rungs) > 1:
        steps.append(f"split={len(rungs)}" + "".join(f"[s{i}]" for i in range(len(rungs))))
        graph = [head + ",".join(steps)]
        for i, job in enumerate(rungs):
            graph.append(f"[s{i}]scale={job.rung.width}:{job.rung.height}:flags=bicubic,"
                         f"setsar=1[v{i}]")
        return ";".join(graph)
    steps.append(f"scale={rungs[0].rung.width}:{rungs[0].rung.height}:flags=bicubic,setsar=1")
    return head + ",".join(steps) + "[v0]"


def _video_output_args(job: RungJob, index: int, video: VideoSettings, plan: LadderPlan,
                       pass_number: int | None) -> list[str]:
    rung = job.rung
    args = ["-map", f"[v{index}]", "-c:v", video.encoder, "-preset", video.x264_preset,
            "-profile:v", video.profile, "-level:v", video.level, "-pix_fmt", video.pix_fmt,
            "-b:v", str(rung.bitrate), "-maxrate", str(rung.bitrate),
            "-bufsize", str(rung.bufsize),
            "-x264-params", x264_params(video, plan.gop_frames)]
    if pass_number is not None:
        args += ["-pass", str(pass_number), "-passlogfile", str(job.passlog)]
    if pass_number == 1:
        return [*args, "-an", "-f", "null", NULL_OUTPUT]
    return [*args, "-an", "-metadata:s:v:0", "language=und", "-f", "mp4", str(job.output)]


def _audio_output_args(job: AudioJob, input_index: int, audio: AudioSettings) -> list[str]:
    return ["-map", f"{input_index}:a:{job.audio_index}", "-vn", "-c:a", audio.encoder,
            "-b:a", str(audio.bitrate), "-ac", str(audio.channels),
            "-ar", str(audio.sample_rate), "-metadata:s:a:0", f"language={job.language}",
            "-f", "mp4", str(job.output)]


def build_pass_argv(ffmpeg: str, source: SourceInfo, plan: LadderPlan, video: VideoSettings,
                    audio: AudioSettings, rungs: list[RungJob], audio_jobs: list[AudioJob],
                    pass_number: int | None) -> list[str]:
    """One ffmpeg process for one pass of every rung in `rungs` (pass None = single pass).

    Audio outputs ride along with the final pass, so no extra decode of the source happens.
    """
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-xerror",
            "-progress", "pipe:1", "-nostats", "-i", source.path]
    extra_inputs: dict[Path, int] = {}
    for job in audio_jobs:
        if job.input_path != Path(source.path) and job.input_path not in extra_inputs:
            extra_inputs[job.input_path] = len(extra_inputs) + 1
            argv += ["-i", str(job.input_path)]
    if rungs:
        argv += ["-filter_complex", _filter_graph(source, plan, rungs)]
    for index, job in enumerate(rungs):
        argv += _video_output_args(job, index, video, plan, pass_number)
    if pass_number != 1:
        for job in audio_jobs:
            argv += _audio_output_args(job, extra_inputs.get(job.input_path, 0), audio)
    return argv
