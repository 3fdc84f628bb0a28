"""ffmpeg argv for the overlay ladder: VP9 with alpha (libvpx-vp9, yuva420p) into WebM.

Like x264.py: one process per pass, the source decoded once and `split` into every rung, each
rung with its own pass log, built with ffmpeg-python and run by the CommandRunner. The second
pass writes WebM ready for DASH on-demand: clusters start at keyframes (`dash`) and the Cues
sit before the clusters (`cues_to_front`), so one WebM serves a DASH player and a plain
`<video>` alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffmpeg

from discriminator_cli.encode.ladder import LadderPlan
from discriminator_cli.encode.presets import VideoSettings, Vp9Settings
from discriminator_cli.encode.x264 import NULL_OUTPUT, RungJob
from discriminator_cli.probe import SourceInfo
from discriminator_cli.tools import file_arg

# VP9 levels (webmproject.org/vp9/levels): (level, max luma picture size, max luma sample
# rate, max bitrate in bit/s).
VP9_LEVELS = (
    (10, 36_864, 829_440, 200_000), (11, 73_728, 2_764_800, 800_000),
    (20, 122_880, 4_608_000, 1_800_000), (21, 245_760, 9_216_000, 3_600_000),
    (30, 552_960, 20_736_000, 7_200_000), (31, 983_040, 36_864_000, 12_000_000),
    (40, 2_228_224, 83_558_400, 18_000_000), (41, 2_228_224, 160_432_128, 30_000_000),
    (50, 8_912_896, 311_951_360, 60_000_000), (51, 8_912_896, 588_251_136, 120_000_000),
    (52, 8_912_896, 1_176_502_272, 180_000_000), (60, 35_651_584, 1_176_502_272, 180_000_000),
    (61, 35_651_584, 2_353_004_544, 240_000_000), (62, 35_651_584, 4_706_009_088, 480_000_000),
)


def vp9_codecs(width: int, height: int, fps: float, bitrate: int) -> str:
    """The RFC 6381 codecs string players feed to MediaSource.isTypeSupported: profile 0
    (4:2:0, 8 bit; the alpha plane is a separate stream), the smallest level that fits."""
    pixels = width * height
    level = next((lv for lv, size, rate, bits in VP9_LEVELS
                  if pixels <= size and pixels * fps <= rate and bitrate <= bits),
                 VP9_LEVELS[-1][0])
    return f"vp09.00.{level:02d}.08"


def _rung_streams(source: SourceInfo, plan: LadderPlan, rungs: list[RungJob],
                  input_path: Path | None) -> list[Any]:
    video = ffmpeg.input(file_arg(input_path or Path(source.path)))["v:0"]
    if source.variable_frame_rate:
        video = video.filter("fps", f"{plan.frame_rate.numerator}/{plan.frame_rate.denominator}")
    if len(rungs) > 1:
        branches = video.filter_multi_output("split", len(rungs))
        heads = [branches.stream(i) for i in range(len(rungs))]
    else:
        heads = [video]
    # scale keeps the alpha plane; the format filter then fixes the encoder's input to
    # yuva420p so that no later negotiation can drop it.
    return [head.filter("scale", job.rung.width, job.rung.height, flags="bicubic")
            .filter("setsar", 1).filter("format", "yuva420p")
            for head, job in zip(heads, rungs, strict=True)]


def build_vp9_pass_argv(ffmpeg_binary: str, source: SourceInfo, plan: LadderPlan,
                        video: VideoSettings, vp9: Vp9Settings, rungs: list[RungJob],
                        pass_number: int | None, input_path: Path | None = None) -> list[str]:
    """One ffmpeg process for one pass of every rung (pass None = single pass)."""
    outputs = []
    for stream, job in zip(_rung_streams(source, plan, rungs, input_path), rungs, strict=True):
        rung = job.rung
        options: dict[str, object] = {
            "c:v": "libvpx-vp9", "pix_fmt": video.pix_fmt, "b:v": rung.bitrate,
            "maxrate": rung.bitrate, "bufsize": rung.bufsize,
            # kf min = kf max: a keyframe exactly every gop_frames frames, in every rung.
            "g": plan.gop_frames, "keyint_min": plan.gop_frames,
            "deadline": vp9.deadline, "cpu-used": vp9.cpu_used, "row-mt": 1, "an": None,
            "sn": None}
        if pass_number is not None:
            options.update({"pass": pass_number, "passlogfile": str(job.passlog)})
        if pass_number == 1:
            outputs.append(ffmpeg.output(stream, NULL_OUTPUT, format="null", **options))
        else:
            outputs.append(ffmpeg.output(stream, file_arg(job.output), format="webm",
                                         dash=1, cues_to_front=1, **options))
    graph = ffmpeg.merge_outputs(*outputs).global_args(
        "-hide_banner", "-nostdin", "-loglevel", "error", "-xerror", "-progress", "pipe:1",
        "-nostats")
    return list(graph.compile(cmd=ffmpeg_binary, overwrite_output=True))
