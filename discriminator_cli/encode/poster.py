"""`poster.jpg`: one frame of the source at the preset's (or --poster-time) position, scaled
to the top rung's size, written into the package for `<video poster>` and players' previews."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from discriminator_cli.package_layout import POSTER_NAME
from discriminator_cli.probe import SourceInfo
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import file_arg

JPEG_QUALITY = 3  # ffmpeg's mjpeg qscale: 2 (best) .. 31; 3 keeps a 1080p poster ~200 kB


@dataclass(frozen=True)
class Poster:
    path: Path
    time: float       # seconds into the source, after clamping
    width: int
    height: int

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path.name, "time": round(self.time, 3), "width": self.width,
                "height": self.height}


def poster_time(requested: float, source: SourceInfo) -> float:
    """The requested time, or the last whole frame when the source is shorter."""
    last_frame = max(source.duration - 1 / source.fps, 0.0)
    return min(max(requested, 0.0), last_frame)


def poster_argv(ffmpeg_binary: str, source: SourceInfo, time: float, width: int, height: int,
                output: Path) -> list[str]:
    # -ss before -i seeks by index then decodes to the exact frame: fast on long masters.
    stream = ffmpeg.input(file_arg(Path(source.path)), ss=f"{time:.3f}")["v:0"]
    stream = stream.filter("scale", width, height, flags="bicubic").filter("setsar", 1)
    graph = ffmpeg.output(stream, file_arg(output), format="image2", vframes=1,
                          **{"q:v": JPEG_QUALITY, "update": 1, "pix_fmt": "yuvj420p"})
    graph = graph.global_args("-hide_banner", "-nostdin", "-loglevel", "error")
    return list(graph.compile(cmd=ffmpeg_binary, overwrite_output=True))


def write_poster(ffmpeg_binary: str, source: SourceInfo, requested: float, width: int,
                 height: int, out_dir: Path, runner: CommandRunner) -> Poster:
    time = poster_time(requested, source)
    target = out_dir / POSTER_NAME
    runner.run(poster_argv(ffmpeg_binary, source, time, width, height, target),
               what="ffmpeg poster", path=source.path,
               hint="the source may be truncated; try another --poster-time")
    return Poster(target, time, width, height)
