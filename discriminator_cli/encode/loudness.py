"""Two-pass EBU R128 loudness normalisation of every audio track.

Pass 1 measures the track with ffmpeg's `loudnorm` (print_format=json). Pass 2 is the same
filter given those measurements, riding along with the encode's audio output; it is linear (one
gain for the whole track, dynamics untouched) whenever that gain keeps the true peak under the
ceiling, and falls back to loudnorm's dynamic mode only when it would not. The packaged track
is then measured again with the `ebur128` filter (an independent meter) for the summary.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import ffmpeg

from discriminator_cli.encode.presets import LoudnessSettings
from discriminator_cli.errors import ToolFailedError
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import file_arg

MAX_LRA = 50.0  # loudnorm's upper bound for the LRA target
# AAC's overshoot: the decoded track peaks above what loudnorm let through. Measured here on
# pink noise through loudnorm's limiter at 96k: up to ~1.4 dB; on tones ~0.2 dB.
CODEC_HEADROOM_DB = 0.5
MIN_TRUE_PEAK = -9.0  # loudnorm's lower bound for TP
_JSON_BLOCK = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.DOTALL)
_EBU_I = re.compile(r"^\s*I:\s+(-?[\d.]+|-inf)\s+LUFS", re.MULTILINE)
_EBU_PEAK = re.compile(r"^\s*Peak:\s+(-?[\d.]+|-inf)\s+dBFS", re.MULTILINE)


@dataclass(frozen=True)
class Measured:
    """loudnorm's first-pass measurement of one track."""

    integrated: float       # LUFS
    true_peak: float        # dBTP
    lra: float              # LU
    threshold: float        # LUFS

    @classmethod
    def from_loudnorm(cls, stderr: str) -> Measured:
        blocks = _JSON_BLOCK.findall(stderr)
        if not blocks:
            raise ValueError("loudnorm printed no measurement")
        data = json.loads(blocks[-1])
        return cls(_number(data["input_i"]), _number(data["input_tp"]),
                   _number(data["input_lra"]), _number(data["input_thresh"]))


def _number(text: str) -> float:
    # Digital silence measures "-inf"; keep it finite so JSON and arithmetic stay sane.
    value = float(text)
    return max(value, -99.0)


@dataclass(frozen=True)
class LoudnessPlan:
    settings: LoudnessSettings
    measured: Measured
    headroom: float = CODEC_HEADROOM_DB   # dB kept below the ceiling for the codec

    @property
    def filter_peak(self) -> float:
        return max(self.settings.true_peak_db - self.headroom, MIN_TRUE_PEAK)

    def corrected(self, overshoot: float) -> LoudnessPlan:
        """The plan again with the headroom the codec turned out to need (+0.3 dB)."""
        return replace(self, headroom=self.headroom + overshoot + 0.3)

    @property
    def gain(self) -> float:
        return self.settings.target_lufs - self.measured.integrated

    @property
    def linear(self) -> bool:
        """One gain for the whole track keeps the peak under the ceiling."""
        return self.measured.true_peak + self.gain <= self.filter_peak

    def filter_args(self) -> dict[str, str]:
        """loudnorm's second-pass options. The LRA target is raised to the measured range so
        that the range alone never forces dynamic mode (a documentary's range is its own)."""
        s, m = self.settings, self.measured
        lra = min(max(s.loudness_range, m.lra), MAX_LRA)
        return {"I": f"{s.target_lufs:g}", "TP": f"{self.filter_peak:.2f}", "LRA": f"{lra:g}",
                "measured_I": f"{m.integrated:g}", "measured_TP": f"{m.true_peak:g}",
                "measured_LRA": f"{m.lra:g}", "measured_thresh": f"{m.threshold:g}",
                "linear": "true" if self.linear else "false", "print_format": "none"}


@dataclass(frozen=True)
class LoudnessReport:
    """What the summary and --json show for one track."""

    language: str
    target_lufs: float
    true_peak_ceiling: float
    mode: str               # "linear" or "dynamic"
    before_lufs: float
    before_true_peak: float
    after_lufs: float | None
    after_true_peak: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoudnessReport:
        return cls(**data)


def measure_argv(ffmpeg_binary: str, path: Path, audio_index: int,
                 settings: LoudnessSettings) -> list[str]:
    stream = ffmpeg.input(file_arg(path))[f"a:{audio_index}"].filter(
        "loudnorm", I=f"{settings.target_lufs:g}", TP=f"{settings.true_peak_db:g}",
        LRA=f"{settings.loudness_range:g}", print_format="json")
    graph = ffmpeg.output(stream, "-", format="null").global_args(
        "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info")
    return list(graph.compile(cmd=ffmpeg_binary))


def plan_loudness(ffmpeg_binary: str, path: Path, audio_index: int,
                  settings: LoudnessSettings, runner: CommandRunner) -> LoudnessPlan:
    """Pass 1. It only reads the input, so it runs under --dry-run too: the pass-2 argv that
    --dry-run prints carries the real measurements."""
    argv = measure_argv(ffmpeg_binary, path, audio_index, settings)
    result = runner.run(argv, what="ffmpeg loudnorm (measure)", path=path, mutating=False,
                        hint="the audio may be truncated or corrupt; check it plays")
    try:
        measured = Measured.from_loudnorm(result.stderr)
    except (ValueError, KeyError) as exc:
        raise ToolFailedError(f"ffmpeg loudnorm: unreadable measurement ({exc})", argv=argv,
                              returncode=0, stderr=result.stderr, path=path) from None
    return LoudnessPlan(settings, measured)


def ebur128_argv(ffmpeg_binary: str, path: Path) -> list[str]:
    stream = ffmpeg.input(file_arg(path))["a:0"].filter("ebur128", peak="true")
    graph = ffmpeg.output(stream, "-", format="null").global_args(
        "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info")
    return list(graph.compile(cmd=ffmpeg_binary))


def measure_ebur128(ffmpeg_binary: str, path: Path, runner: CommandRunner,
                    ) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of the first audio track, from ebur128's summary."""
    result = runner.run(ebur128_argv(ffmpeg_binary, path), what="ffmpeg ebur128", path=path,
                        mutating=False)
    summary = result.stderr.rsplit("Summary:", 1)[-1]
    loudness, peak = _EBU_I.search(summary), _EBU_PEAK.search(summary)
    if not (loudness and peak):
        raise ToolFailedError("ffmpeg ebur128 printed no summary", argv=result.argv,
                              returncode=0, stderr=result.stderr, path=path)
    return _number(loudness.group(1)), _number(peak.group(1))


def report_for(language: str, plan: LoudnessPlan, after: tuple[float, float] | None,
               ) -> LoudnessReport:
    return LoudnessReport(language, plan.settings.target_lufs, plan.settings.true_peak_db,
                          "linear" if plan.linear else "dynamic", plan.measured.integrated,
                          plan.measured.true_peak, after[0] if after else None,
                          after[1] if after else None)
