"""`encode --preset overlay`: sources with an alpha channel -> VP9-with-alpha WebM, packaged as
DASH on-demand, each rung's WebM also a progressive file for a plain `<video>` overlay.

Steps: resolve the source (a video with alpha, or a PNG sequence stored losslessly first), refuse
it without alpha, plan the ladder, two libvpx-vp9 passes over every rung at once, check that
every rung has its keyframes at the same fixed interval, write the MPD from the WebM files' own
Cues, a poster, validate, publish by rename. No HLS: none of the three players has a VP9-alpha
path over HLS (hls.js plays fMP4/TS; VP9 in fMP4 carries no alpha), so the summary says so
instead of writing a playlist that would play opaque or not at all.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discriminator_cli import cache
from discriminator_cli.bitrate import average_bitrate, peak_bitrate
from discriminator_cli.encode.image_sequence import (
    check_frames,
    ingest_sequence,
    is_sequence,
    sequence_frames,
)
from discriminator_cli.encode.ladder import LadderPlan, plan_ladder
from discriminator_cli.encode.measure import StreamMeasurement, measure_stream
from discriminator_cli.encode.poster import write_poster
from discriminator_cli.encode.vp9 import build_vp9_pass_argv, vp9_codecs
from discriminator_cli.encode.webm_dash import WebmRepresentation, write_webm_mpd
from discriminator_cli.encode.work import work_directory
from discriminator_cli.encode.x264 import RungJob
from discriminator_cli.errors import BadInputError, ToolFailedError
from discriminator_cli.package_layout import MPD_NAME, is_package_folder
from discriminator_cli.probe import SourceInfo, probe_source
from discriminator_cli.progress import ProgressSink
from discriminator_cli.publish import STAGING_PREFIX, atomic_write_text, staged_directory
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path, require_ffmpeg_capabilities
from discriminator_cli.webm import WebmLayout, cue_segments, read_layout

if TYPE_CHECKING:
    from discriminator_cli.encode.job import EncodeOptions, EncodeResult, StageTimer

HLS_NOTE = ("hls.js, shaka-player and dash.js have no VP9-with-alpha path over HLS (HLS "
            "carries fMP4 or TS, and VP9 in MP4 has no alpha); serve stream.mpd to DASH players "
            "or a progressive overlay_*.webm to a plain <video>")
# ffprobe pix_fmt names with an alpha plane: yuva420p, yuva444p12le, gbrap10le, rgba, argb,
# bgra, abgr, rgba64le, bgra64be, ya8, ya16le, ...
_ALPHA_PIX_FMT = re.compile(r"^(yuva|gbrap|ya\d|rgba|bgra|argb|abgr)")


def has_alpha(pix_fmt: str) -> bool:
    return bool(_ALPHA_PIX_FMT.match(pix_fmt))


def rung_file(name: str) -> str:
    return f"overlay_{name}.webm"


@dataclass
class OverlaySummary:
    mpd: str
    progressive: list[str]        # one WebM per rung, also the DASH Representations' media
    keyframe_interval: int        # frames
    hls: None = None

    def as_dict(self) -> dict[str, Any]:
        return {"dash": self.mpd, "progressive": self.progressive,
                "keyframe_interval": self.keyframe_interval, "hls": self.hls,
                "hls_note": HLS_NOTE}


def _check_options(options: EncodeOptions) -> None:
    refused = [(options.subtitles, "--subtitles", "captions"),
               (options.extra_audio, "--audio", "audio"),
               (options.loudness is not None or options.true_peak is not None,
                "--loudness/--true-peak", "audio")]
    for given, flag, what in refused:
        if given:
            raise BadInputError(f"{flag} does not apply to the overlay preset (overlays carry "
                                f"no {what})", hint=f"drop {flag}, or package the {what} with "
                                                    "the main programme")
    if options.engine != "local":
        raise BadInputError(f"--engine {options.engine} does not encode overlays",
                            hint="use --engine local with the overlay preset")


def _resolve_source(source_path: Path, options: EncodeOptions, ffmpeg: str, work: Path,
                    runner: CommandRunner) -> tuple[SourceInfo, SourceInfo]:
    """(what the summary names, what ffmpeg reads): a PNG sequence is read from its lossless
    intermediate; refuses a source without alpha before any encoding."""
    assert options.preset.vp9 is not None
    if is_sequence(source_path):
        frames = sequence_frames(source_path)
        size = check_frames(frames)
        intermediate = work / "sequence.mkv"
        rate = options.preset.vp9.image_frame_rate
        ingest_sequence(ffmpeg, source_path, frames, size, rate, intermediate, runner)
        # Known without probing (so --dry-run can plan it): the intermediate holds exactly
        # these frames, at this rate, as lossless BGRA.
        media = SourceInfo(path=str(intermediate), size_bytes=sum(f.stat().st_size
                                                                 for f in frames),
                           duration=len(frames) / rate, width=size[0], height=size[1],
                           coded_width=size[0], coded_height=size[1], rotation=0,
                           frame_rate=Fraction(rate), variable_frame_rate=False,
                           video_codec="png", pix_fmt="bgra", frame_count=len(frames))
        shown = replace(media, path=str(source_path))
        return shown, media
    media = probe_source(source_path, runner)
    if not has_alpha(media.pix_fmt):
        raise BadInputError(f"no alpha channel ({media.video_codec}, pix_fmt {media.pix_fmt})",
                            path=source_path,
                            hint="the overlay preset needs ProRes 4444 with alpha, QuickTime "
                                 "Animation (32-bit) or RGBA PNGs; use another preset for "
                                 "opaque video")
    return media, media


def _check_keyframes(measurements: dict[str, StreamMeasurement], gop: int,
                     source: Path) -> None:
    """Every rung's keyframes exactly every `gop` frames: DASH switches rungs at them."""
    for name, m in measurements.items():
        expected = tuple(range(0, m.frames, gop))
        if m.keyframes != expected:
            raise ToolFailedError(f"libvpx placed rung {name}'s keyframes at frames "
                                  f"{list(m.keyframes[:6])}..., not every {gop}",
                                  argv=[], returncode=0, path=source,
                                  hint="report this with the source; the rungs would not "
                                       "switch cleanly")


def _encode(media: SourceInfo, plan: LadderPlan, options: EncodeOptions, ffmpeg: str,
            jobs: list[RungJob], runner: CommandRunner, progress: ProgressSink) -> None:
    assert options.preset.vp9 is not None
    video = options.preset.video
    passes: list[int | None] = [1, 2] if video.two_pass else [None]
    label = "+".join(j.rung.name for j in jobs)
    for number in passes:
        name = f"VP9 pass {number}/2: {label}" if number else f"VP9: {label}"
        argv = build_vp9_pass_argv(ffmpeg, media, plan, video, options.preset.vp9, jobs, number)
        task = progress.start(name, media.duration)

        def advance(done: float, task: int = task) -> None:
            progress.update(task, done)

        runner.run(argv, what=f"ffmpeg {name}", path=media.path, on_progress=advance,
                   hint="the source may be truncated or corrupt; check it plays to the end")
        progress.finish(task)


def encode_overlay(source_path: Path, options: EncodeOptions, *, runner: CommandRunner,
                   progress: ProgressSink, timer: StageTimer) -> EncodeResult:
    from discriminator_cli.encode.job import EncodeResult, RungResult, check_output_free

    _check_options(options)
    if not runner.dry_run:
        check_output_free(options.out_dir, force=options.force)
    ffmpeg = ffmpeg_path()
    require_ffmpeg_capabilities(ffmpeg, ["encoder:libvpx-vp9", "filter:split",
                                         "filter:scale"], runner)
    root = cache.cache_root(options.cache_dir)
    with work_directory(root / "work", dry_run=runner.dry_run) as work:
        with timer("probe"):
            shown, media = _resolve_source(source_path, options, ffmpeg, work, runner)
            plan = plan_ladder(media, options.preset)
            if not plan.rungs:
                raise BadInputError("no rung of the preset fits this source", path=source_path,
                                    hint="use a preset with smaller rungs")
        warnings = []
        if media.audio:
            warnings.append("source audio left out: overlays are silent")
        jobs = [RungJob(r, work / rung_file(r.name), work / f"{r.name}-passlog")
                for r in plan.rungs]
        with timer("encode"):
            _encode(media, plan, options, ffmpeg, jobs, runner, progress)
        summary = OverlaySummary(MPD_NAME, [rung_file(r.name) for r in plan.rungs],
                                 plan.gop_frames)
        if runner.dry_run:
            staging = options.out_dir.parent / f"{STAGING_PREFIX}{options.out_dir.name}.DRYRUN"
            runner.note(f"{MPD_NAME} is then written from each WebM's Cues (no packager runs)")
            poster = write_poster(ffmpeg, media, _poster_seconds(options), plan.rungs[0].width,
                                  plan.rungs[0].height, staging, runner)
            return EncodeResult(source=shown, out_dir=options.out_dir, backend="webm",
                                rungs=[RungResult(r.name, r.width, r.height, r.bitrate, False,
                                                  None) for r in plan.rungs],
                                audio_languages=[], warnings=warnings, timings=timer.timings,
                                files=[], dry_run=True, poster=poster, overlay=summary)
        measurements = {job.rung.name: measure_stream(job.output, kind="video",
                                                      segment_seconds=plan.segment_seconds,
                                                      runner=runner) for job in jobs}
        _check_keyframes(measurements, plan.gop_frames, source_path)
        validation = None
        with staged_directory(options.out_dir, force=options.force,
                              replaceable=is_package_folder) as staging:
            with timer("package"):
                reps = []
                for job in jobs:
                    target = staging / rung_file(job.rung.name)
                    shutil.move(job.output, target)
                    layout = read_layout(target)
                    measured = _with_alpha_bytes(measurements[job.rung.name], layout,
                                                 plan.segment_seconds)
                    measurements[job.rung.name] = measured
                    reps.append(WebmRepresentation(
                        f"video_{job.rung.name}", target.name, layout,
                        vp9_codecs(job.rung.width, job.rung.height, float(plan.frame_rate),
                                   measured.peak_bitrate),
                        job.rung.width, job.rung.height))
                atomic_write_text(staging / MPD_NAME, write_webm_mpd(
                    reps, plan.frame_rate, media.duration, plan.segment_seconds))
            top = plan.rungs[0]
            poster = write_poster(ffmpeg, media, _poster_seconds(options), top.width,
                                  top.height, staging, runner)
            if options.validate:
                with timer("validate"):
                    # job.py imports this module: its validate-then-refuse step is looked up
                    # at call time.
                    from discriminator_cli.encode.job import check_staged_package

                    validation = check_staged_package(staging, options.out_dir)
            files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*")
                           if p.is_file())
    return EncodeResult(source=shown, out_dir=options.out_dir, backend="webm",
                        rungs=[RungResult(r.name, r.width, r.height, r.bitrate, False,
                                          measurements[r.name]) for r in plan.rungs],
                        audio_languages=[], warnings=warnings, timings=timer.timings,
                        files=files, dry_run=False, validation=validation, poster=poster,
                        overlay=summary)


def _with_alpha_bytes(measurement: StreamMeasurement, layout: WebmLayout,
                      segment_seconds: float) -> StreamMeasurement:
    """Bitrates from the WebM's clusters: ffprobe's packet sizes leave out the alpha plane
    (it rides in BlockAdditional, beside the packet), which would understate every rate."""
    segments = cue_segments(layout)
    total = sum(s.size for s in segments)
    return replace(measurement, bytes=total,
                   average_bitrate=round(average_bitrate(segments)),
                   peak_bitrate=round(peak_bitrate(segments, segment_seconds)))


def _poster_seconds(options: EncodeOptions) -> float:
    requested = options.poster_time if options.poster_time is not None \
        else options.preset.poster.time_seconds
    if requested < 0:
        raise BadInputError(f"--poster-time {requested:g} is negative",
                            hint="give seconds from the start, e.g. --poster-time 12.5")
    return requested


