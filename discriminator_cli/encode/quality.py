"""PSNR and SSIM of each rung against the source scaled to that rung's size.

One ffmpeg process decodes the source once and every rung once; each comparison's filters
are named after the rung so their log lines can be told apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from discriminator_cli.encode.ladder import PlannedRung
from discriminator_cli.probe import SourceInfo
from discriminator_cli.progress import NullProgress, ProgressSink
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path, file_arg

_PSNR = re.compile(r"\[psnr@psnr_(?P<rung>[\w-]+) @ [^\]]+\] PSNR .*average:(?P<value>[\d.]+|inf)")
_SSIM = re.compile(r"\[ssim@ssim_(?P<rung>[\w-]+) @ [^\]]+\] SSIM .*All:(?P<value>[\d.]+)")


def quality_argv(source: SourceInfo, rungs: list[tuple[PlannedRung, Path]]) -> list[str]:
    argv = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "info", "-nostats",
            "-progress", "pipe:1", "-i", file_arg(source.path)]
    for _, path in rungs:
        argv += ["-i", file_arg(path)]
    count = len(rungs)
    rate = f"{source.frame_rate.numerator}/{source.frame_rate.denominator}"
    graph = [f"[0:v:0]fps={rate},split={count}" + "".join(f"[src{i}]" for i in range(count))]
    for i, (rung, _) in enumerate(rungs):
        name = rung.name.replace("-", "_")
        graph.append(f"[src{i}]scale={rung.width}:{rung.height}:flags=bicubic,setsar=1,"
                     f"format=yuv420p,split[ref{i}a][ref{i}b]")
        graph.append(f"[{i + 1}:v:0]setsar=1,format=yuv420p,split[enc{i}a][enc{i}b]")
        graph.append(f"[enc{i}a][ref{i}a]psnr@psnr_{name}")
        graph.append(f"[enc{i}b][ref{i}b]ssim@ssim_{name}")
    return [*argv, "-filter_complex", ";".join(graph), "-an", "-f", "null", "-"]


def measure_quality(source: SourceInfo, rungs: list[tuple[PlannedRung, Path]], *,
                    runner: CommandRunner | None = None,
                    progress: ProgressSink | None = None) -> dict[str, dict[str, float]]:
    runner = runner or CommandRunner()
    progress = progress or NullProgress()
    task = progress.start("quality: PSNR + SSIM", source.duration)
    result = runner.run(quality_argv(source, rungs), what="ffmpeg quality", path=source.path,
                        on_progress=lambda done: progress.update(task, done))
    progress.finish(task)
    names = {r.name.replace("-", "_"): r.name for r, _ in rungs}
    scores: dict[str, dict[str, float]] = {}
    for match in _PSNR.finditer(result.stderr):
        value = match.group("value")
        scores.setdefault(names[match.group("rung")], {})["psnr"] = \
            float("inf") if value == "inf" else float(value)
    for match in _SSIM.finditer(result.stderr):
        scores.setdefault(names[match.group("rung")], {})["ssim"] = float(match.group("value"))
    return scores
