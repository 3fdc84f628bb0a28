"""Captions carried inside the source (mov_text in MP4/MOV, subrip or webvtt in Matroska):
extracted as WebVTT by ffmpeg and checked like a --subtitles file, for every language that no
--subtitles file gives.

Extraction runs under --dry-run too (like ffprobe: the plan needs its answer, and it writes only
a temporary file). Streams that cannot become WebVTT, or carry no usable language tag, are left
out with a warning that says how to add them.
"""

from __future__ import annotations

import shlex
import tempfile
from dataclasses import replace
from pathlib import Path

from discriminator_cli.encode.captions import (
    TIME_TOLERANCE,
    CaptionSyntaxError,
    CaptionTrack,
    check_cue_times,
    decode_text,
    parse_webvtt,
)
from discriminator_cli.errors import BadInputError
from discriminator_cli.languages import is_known_language
from discriminator_cli.probe import SourceInfo, SubtitleStream
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import file_arg

TEXT_SUBTITLE_CODECS = ("mov_text", "subrip", "webvtt", "text")


def extract_argv(ffmpeg: str, source: Path, stream: SubtitleStream, target: Path) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-i", file_arg(source), "-map", f"0:s:{stream.subtitle_index}", "-c:s", "webvtt",
            "-f", "webvtt", file_arg(target)]


def _usable(stream: SubtitleStream, given: set[str], taken: set[str],
            warnings: list[str]) -> bool:
    where = f"source subtitle stream #{stream.index}"
    if stream.codec not in TEXT_SUBTITLE_CODECS:
        warnings.append(f"{where} ({stream.codec}) is not text and was left out (add a WebVTT "
                        "or SRT of it with --subtitles LANG=FILE)")
        return False
    if stream.language is None or not is_known_language(stream.language):
        tag = f"language tag {stream.language!r}" if stream.language else "no language tag"
        warnings.append(f"{where} has {tag} and was left out (add it with --subtitles "
                        "LANG=FILE)")
        return False
    if stream.language in given:
        return False  # the --subtitles file for that language wins
    if stream.language in taken:
        warnings.append(f"{where} is a second {stream.language} caption stream and was left "
                        "out (give the one you want with --subtitles LANG=FILE)")
        return False
    return True


def source_captions(source: SourceInfo, given: set[str], ffmpeg: str, runner: CommandRunner,
                    warnings: list[str]) -> list[CaptionTrack]:
    """A CaptionTrack per text subtitle stream of the source whose language `given` lacks."""
    tracks: list[CaptionTrack] = []
    taken: set[str] = set()
    for stream in source.subtitles:
        if not _usable(stream, given, taken, warnings):
            continue
        assert stream.language is not None
        taken.add(stream.language)
        with tempfile.TemporaryDirectory(prefix="discriminator-subs-") as folder:
            target = Path(folder) / "stream.vtt"
            argv = extract_argv(ffmpeg, Path(source.path), stream, target)
            runner.note(f"subtitle stream #{stream.index} ({stream.language}) is read (also "
                        f"under --dry-run) with: {shlex.join(argv)}")
            runner.run(argv,
                       what=f"ffmpeg extract subtitle stream #{stream.index}", path=source.path,
                       mutating=False)
            raw = target.read_bytes()
        tracks.append(_checked(stream, raw, source, warnings))
    return tracks


def _checked(stream: SubtitleStream, raw: bytes, source: SourceInfo,
             warnings: list[str]) -> CaptionTrack:
    """Parse and check the extracted cues; a cue running past the video (common in muxed
    files) is cut at the video's end instead of failing the encode."""
    assert stream.language is not None
    where = f"subtitle stream #{stream.index} ({stream.language})"
    try:
        cues = parse_webvtt(decode_text(raw, source.path))
        kept = [c for c in cues if c.start < source.duration]
        trimmed = [c if c.end <= source.duration + TIME_TOLERANCE else
                   replace(c, end=source.duration) for c in kept]
        if len(trimmed) != len(cues) or trimmed != kept:
            warnings.append(f"{where}: cues past the end of the video were cut at "
                            f"{source.duration:.3f} s")
        if not trimmed:
            raise CaptionSyntaxError(1, "no cues inside the video")
        check_cue_times(trimmed, source.duration)
    except (CaptionSyntaxError, BadInputError) as exc:
        raise BadInputError(f"{where}: {exc}", path=source.path,
                            hint="fix the stream, or give that language's captions with "
                                 "--subtitles LANG=FILE") from None
    return CaptionTrack(stream.language, Path(source.path), tuple(trimmed))
