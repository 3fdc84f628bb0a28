"""Captions: WebVTT and SRT read strictly (errors name the file and line), SRT turned into
WebVTT, cue times checked against the video, and the language against the language table.

The same parser serves `encode --subtitles` (bad input: one-line BadInputError) and `validate`
(findings), so a file that encode accepts is one validate passes.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from discriminator_cli.errors import BadInputError
from discriminator_cli.languages import check_language, is_known_language

_TIME = r"(?:(\d+):)?([0-5]\d):([0-5]\d)[.,](\d{3})"
_VTT_TIMING = re.compile(rf"^{_TIME}[ \t]+-->[ \t]+{_TIME}(?:[ \t]+(.*))?$")
_SRT_INDEX = re.compile(r"^\d+$")
TIME_TOLERANCE = 0.05  # seconds a cue may end after the video (rounding of both)


class CaptionSyntaxError(ValueError):
    def __init__(self, line: int, problem: str):
        super().__init__(f"line {line}: {problem}")
        self.line, self.problem = line, problem


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str
    line: int          # the timing line, 1-based
    settings: str = ""


def _seconds(groups: tuple[str | None, ...]) -> float:
    hours, minutes, seconds, millis = groups
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) + \
        int(millis or 0) / 1000


def _timing(line: str, number: int, *, srt: bool) -> tuple[float, float, str]:
    text = line.strip()
    if srt:
        text = text.replace(",", ".")
    match = _VTT_TIMING.match(text)
    if not match:
        if text.startswith("-") or "--> -" in text:
            raise CaptionSyntaxError(number, f"negative time in {line.strip()!r}")
        raise CaptionSyntaxError(number, f"malformed cue timing {line.strip()!r} (expected "
                                         "'00:00:01.000 --> 00:00:02.500')")
    groups = match.groups()
    start, end = _seconds(groups[0:4]), _seconds(groups[4:8])
    if end <= start:
        raise CaptionSyntaxError(number, f"cue ends at {end:.3f} s, not after its start "
                                         f"{start:.3f} s (negative or zero duration)")
    return start, end, "" if srt else (groups[8] or "").strip()


def decode_text(data: bytes, path: Path | str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BadInputError(f"line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})",
                            path=path, hint="re-save the captions as UTF-8") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def parse_webvtt(text: str) -> list[Cue]:
    lines = text.split("\n")
    if not lines or not re.match(r"^WEBVTT([ \t].*)?$", lines[0]):
        raise CaptionSyntaxError(1, "a WebVTT file starts with 'WEBVTT'")
    cues: list[Cue] = []
    index = 1
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        block_start = index
        block = []
        while index < len(lines) and lines[index].strip():
            block.append(lines[index])
            index += 1
        if block[0].startswith(("NOTE", "STYLE", "REGION")) or \
                (block_start == 1 and block[0].startswith("X-TIMESTAMP-MAP")):
            continue
        # An arrow, even a malformed one, marks the timing line (else it is the cue's id).
        timing_at = 0 if "->" in block[0] else 1
        if timing_at >= len(block) or "->" not in block[timing_at]:
            raise CaptionSyntaxError(block_start + 1 + timing_at,
                                     f"expected a cue timing line, got {block[-1].strip()!r}")
        start, end, settings = _timing(block[timing_at], block_start + 1 + timing_at, srt=False)
        cues.append(Cue(start, end, "\n".join(block[timing_at + 1:]),
                        block_start + 1 + timing_at, settings))
    return cues


def parse_srt(text: str) -> list[Cue]:
    lines = text.split("\n")
    cues: list[Cue] = []
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        if not _SRT_INDEX.match(lines[index].strip()):
            raise CaptionSyntaxError(index + 1, f"expected a cue number, got "
                                                f"{lines[index].strip()!r}")
        if index + 1 >= len(lines) or "-->" not in lines[index + 1]:
            raise CaptionSyntaxError(index + 2, "expected a cue timing line after the number")
        start, end, _ = _timing(lines[index + 1], index + 2, srt=True)
        body = []
        index += 2
        while index < len(lines) and lines[index].strip():
            body.append(lines[index])
            index += 1
        cues.append(Cue(start, end, "\n".join(body), index - len(body)))
    return cues


def check_cue_times(cues: list[Cue], duration: float | None) -> None:
    """Cues in order, not overlapping, and inside the video."""
    for previous, cue in itertools.pairwise(cues):
        if cue.start < previous.end:
            raise CaptionSyntaxError(cue.line, f"cue starts at {cue.start:.3f} s, before the "
                                               f"cue at line {previous.line} ends "
                                               f"({previous.end:.3f} s): overlapping cues")
    if duration is not None:
        for cue in cues:
            if cue.end > duration + TIME_TOLERANCE:
                raise CaptionSyntaxError(cue.line, f"cue ends at {cue.end:.3f} s, after the "
                                                   f"video ({duration:.3f} s)")


def _clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def to_webvtt(cues: list[Cue], header: str = "") -> str:
    blocks = ["WEBVTT" + (f"\n{header}" if header else "")]
    for cue in cues:
        timing = f"{_clock(cue.start)} --> {_clock(cue.end)}"
        blocks.append(f"{timing} {cue.settings}".rstrip() + (f"\n{cue.text}" if cue.text else ""))
    return "\n\n".join(blocks) + "\n"


@dataclass(frozen=True)
class CaptionTrack:
    language: str          # ISO 639-2
    source: Path
    cues: tuple[Cue, ...]


def load_captions(language: str, path: Path, duration: float | None) -> CaptionTrack:
    """Read, check and normalise one --subtitles LANG=FILE; BadInputError names the line."""
    code = check_language(language, where="--subtitles language")
    if not is_known_language(code):
        raise BadInputError(f"--subtitles language {code!r} is not a known ISO 639-2 code",
                            path=path, hint="use e.g. eng, fra, deu, spa")
    if not path.is_file():
        raise BadInputError("captions file not found", path=path, hint="check the --subtitles "
                                                                       "path")
    text = decode_text(path.read_bytes(), path)
    is_vtt = text.startswith("WEBVTT") or path.suffix.lower() == ".vtt"
    try:
        cues = parse_webvtt(text) if is_vtt else parse_srt(text)
        if not cues:
            raise CaptionSyntaxError(1, "no cues")
        check_cue_times(cues, duration)
    except CaptionSyntaxError as exc:
        raise BadInputError(str(exc), path=path,
                            hint="fix the captions file (WebVTT or SRT)") from None
    return CaptionTrack(code, path, tuple(cues))
