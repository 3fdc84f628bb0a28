"""The package's poster.jpg: present, a JPEG that decodes, at the top rendition's size."""

from __future__ import annotations

import struct
from pathlib import Path

from discriminator_cli.errors import DiscriminatorError
from discriminator_cli.package_layout import POSTER_NAME
from discriminator_cli.runner import CommandRunner
from discriminator_cli.validate.report import Report

# Start-of-frame markers (baseline, extended, progressive, lossless...); not DHT/JPG/DAC.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF segment, or None when the markers do not parse."""
    if not data.startswith(b"\xff\xd8"):
        return None
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        length = struct.unpack(">H", data[offset + 2:offset + 4])[0]
        if marker in _SOF_MARKERS and offset + 9 <= len(data):
            height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
            return width, height
        if marker in (0xD9, 0xDA) or length < 2:  # end of image / start of scan
            return None
        offset += 2 + length
    return None


def check_poster(package: Path, report: Report, top_size: tuple[int, int] | None) -> None:
    poster = package / POSTER_NAME
    if not poster.is_file():
        report.warning("poster.missing", package, None,
                       f"the package has no {POSTER_NAME}: players and the preview page show a "
                       "black frame until playback starts (re-encode to add one)")
        return
    size = jpeg_size(poster.read_bytes())
    if size is None:
        report.error("poster.decode", poster, None,
                     "not a JPEG image (no start-of-frame marker): <video poster> shows nothing")
        return
    try:
        from discriminator_cli.tools import ffmpeg_path, file_arg

        CommandRunner().run([ffmpeg_path(), "-hide_banner", "-nostdin", "-v", "error",
                             "-xerror", "-i", file_arg(poster), "-f", "null", "-"],
                            what="ffmpeg decode poster", path=poster, mutating=False)
    except DiscriminatorError as exc:
        report.error("poster.decode", poster, None,
                     f"the JPEG does not decode ({exc.one_line()}): <video poster> shows "
                     "nothing")
        return
    if top_size and size != top_size:
        report.warning("poster.size", poster, None,
                       f"{size[0]}x{size[1]}, but the top rendition is "
                       f"{top_size[0]}x{top_size[1]}: the poster is rescaled and then "
                       "replaced by a frame of another size")
