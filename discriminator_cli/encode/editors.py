"""The editors' steps of an encode job, one function per feature, each called once from
`job.encode_source`: captions (checked before any work, packaged as sidecar WebVTT), loudness
(measure before the encode, report after), poster.

Kept apart from job.py so that the job reads as its list of steps and a feature's plumbing
(cache sidecars, dry-run behaviour) stays in one place.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from discriminator_cli.encode.captions import CaptionTrack, load_captions, to_webvtt
from discriminator_cli.encode.captions_source import source_captions
from discriminator_cli.encode.ladder import LadderPlan
from discriminator_cli.encode.loudness import (
    LoudnessPlan,
    LoudnessReport,
    measure_ebur128,
    plan_loudness,
    report_for,
)
from discriminator_cli.encode.packaging import PackageInput
from discriminator_cli.encode.poster import Poster, write_poster
from discriminator_cli.encode.presets import (
    LOUDNESS_RANGE,
    TRUE_PEAK_RANGE,
    LoudnessSettings,
    Preset,
)
from discriminator_cli.encode.rung_cache import CacheEntry
from discriminator_cli.encode.x264 import AudioJob, build_pass_argv
from discriminator_cli.errors import BadInputError
from discriminator_cli.probe import SourceInfo
from discriminator_cli.publish import atomic_write_text
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import require_ffmpeg_capabilities

if TYPE_CHECKING:
    from discriminator_cli.encode.job import EncodeOptions

DEFAULT_TRUE_PEAK = -1.0
HEADROOM_RETRIES = 3   # audio-only re-encodes when the codec pushed a track over the ceiling


# --- loudness -----------------------------------------------------------------------------

def effective_loudness(preset: Preset, target: float | None,
                       true_peak: float | None) -> LoudnessSettings | None:
    """The preset's [loudness] with --loudness / --true-peak applied; None = leave levels."""
    for value, (low, high), flag in ((target, LOUDNESS_RANGE, "--loudness"),
                                     (true_peak, TRUE_PEAK_RANGE, "--true-peak")):
        if value is not None and not low <= value <= high:
            raise BadInputError(f"{flag} {value:g} is outside {low:g}..{high:g}",
                                hint="e.g. --loudness -16 (web) or -23 (broadcast), "
                                     "--true-peak -1")
    base = preset.loudness
    if base is None and target is None:
        if true_peak is not None:
            raise BadInputError("--true-peak needs a loudness target",
                                hint="add --loudness LUFS, or a [loudness] table to the preset")
        return None
    if base is None:
        assert target is not None
        base = LoudnessSettings(target_lufs=target, true_peak_db=DEFAULT_TRUE_PEAK)
    return replace(base, **({"target_lufs": target} if target is not None else {}),
                   **({"true_peak_db": true_peak} if true_peak is not None else {}))


def _sidecar(entry: CacheEntry) -> Path:
    return entry.media.with_suffix(".loudness.json")


def plan_loudness_step(options: EncodeOptions, ffmpeg: str, audio_jobs: list[AudioJob],
                       audio_entries: dict[str, CacheEntry], runner: CommandRunner,
                       ) -> tuple[list[AudioJob], dict[str, LoudnessPlan]]:
    """Pass 1 for every track the cache lacks; their jobs get the pass-2 filter."""
    settings = effective_loudness(options.preset, options.loudness, options.true_peak)
    if settings is None:
        return audio_jobs, {}
    require_ffmpeg_capabilities(ffmpeg, ["filter:loudnorm", "filter:ebur128"], runner)
    plans: dict[str, LoudnessPlan] = {}
    jobs = []
    for job in audio_jobs:
        if audio_entries[job.language].complete:
            jobs.append(job)
            continue
        plan = plan_loudness(ffmpeg, job.input_path, job.audio_index, settings, runner)
        plans[job.language] = plan
        jobs.append(replace(job, loudnorm=tuple(plan.filter_args().items())))
    return jobs, plans


def finish_loudness_step(source: SourceInfo, plan: LadderPlan, options: EncodeOptions,
                         ffmpeg: str, audio_jobs: list[AudioJob],
                         plans: dict[str, LoudnessPlan], audio_entries: dict[str, CacheEntry],
                         runner: CommandRunner) -> list[LoudnessReport]:
    """Measure each normalised track as packaged (ebur128). A track the codec pushed over the
    ceiling is encoded again (audio only, a few times at most) with that much more headroom.
    Cached tracks keep the report written when they were encoded."""
    if effective_loudness(options.preset, options.loudness, options.true_peak) is None:
        return []
    jobs = {job.language: job for job in audio_jobs}
    reports = []
    for language, entry in audio_entries.items():
        sidecar = _sidecar(entry)
        if language not in plans:
            if sidecar.is_file():
                reports.append(LoudnessReport.from_dict(json.loads(sidecar.read_text())))
            continue
        loudness_plan = plans[language]
        after = None if runner.dry_run else measure_ebur128(ffmpeg, entry.media, runner)
        for _ in range(HEADROOM_RETRIES):
            if after is None or after[1] < loudness_plan.settings.true_peak_db:
                break
            loudness_plan = loudness_plan.corrected(after[1] -
                                                    loudness_plan.settings.true_peak_db)
            job = replace(jobs[language], loudnorm=tuple(loudness_plan.filter_args().items()))
            argv = build_pass_argv(ffmpeg, source, plan, options.preset.video,
                                   options.preset.audio, [], [job], None)
            runner.run(argv, what=f"ffmpeg audio {language} (more true-peak headroom)",
                       path=job.input_path)
            entry.store(job.output)
            after = measure_ebur128(ffmpeg, entry.media, runner)
        report = report_for(language, loudness_plan, after)
        if not runner.dry_run:
            atomic_write_text(sidecar, json.dumps(report.as_dict()))
        reports.append(report)
    return reports


# --- captions -----------------------------------------------------------------------------

def load_caption_step(options: EncodeOptions, source: SourceInfo, ffmpeg: str,
                      runner: CommandRunner, warnings: list[str]) -> list[CaptionTrack]:
    """Every --subtitles file read and checked before any encoding starts, then the source's
    own text subtitle streams for the languages no file gives."""
    tracks = [load_captions(language, path, source.duration)
              for language, path in options.subtitles]
    languages = [t.language for t in tracks]
    duplicates = sorted({lang for lang in languages if languages.count(lang) > 1})
    if duplicates:
        raise BadInputError(f"two caption files in {', '.join(duplicates)}",
                            hint="give each --subtitles its own language")
    return tracks + source_captions(source, set(languages), ffmpeg, runner, warnings)


def caption_inputs(tracks: list[CaptionTrack], work: Path, *,
                   dry_run: bool) -> list[PackageInput]:
    """The normalised WebVTT of each track in the work folder, as packager inputs."""
    inputs = []
    for track in tracks:
        target = work / f"text_{track.language}.vtt"
        if not dry_run:
            target.write_text(to_webvtt(list(track.cues)), encoding="utf-8")
        inputs.append(PackageInput("text", f"text_{track.language}", target, track.language))
    return inputs


# --- poster -------------------------------------------------------------------------------

def poster_step(source: SourceInfo, plan: LadderPlan, options: EncodeOptions, ffmpeg: str,
                staging: Path, runner: CommandRunner) -> Poster:
    """poster.jpg at the top rung's size, at --poster-time or the preset's time."""
    top = max(plan.rungs, key=lambda r: r.width * r.height)
    requested = options.poster_time if options.poster_time is not None \
        else options.preset.poster.time_seconds
    if requested < 0:
        raise BadInputError(f"--poster-time {requested:g} is negative",
                            hint="give seconds from the start, e.g. --poster-time 12.5")
    return write_poster(ffmpeg, source, requested, top.width, top.height, staging, runner)
