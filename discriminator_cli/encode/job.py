"""`encode`: probe a source, plan its ladder, run the two x264 passes (cached per rung),
package DASH + HLS in a staging directory, validate, and publish by rename.

The engines differ only in how the missing rungs get encoded (`RungEncoder`): `local` runs one
ffmpeg per pass over the whole source (`LocalEncoder`, here), `chunked` and `ray` encode
GOP-aligned chunks and join them (encode/chunked.py, encode/ray_engine.py). Probe, plan, cache,
package, validate and publish are the same code for all of them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from discriminator_cli import cache
from discriminator_cli.encode import editors
from discriminator_cli.encode.chunks import DEFAULT_CHUNK_SECONDS
from discriminator_cli.encode.engine import EncodeContext, RungEncoder, make_encoder
from discriminator_cli.encode.image_sequence import is_sequence
from discriminator_cli.encode.ladder import LadderPlan, plan_ladder
from discriminator_cli.encode.loudness import LoudnessReport
from discriminator_cli.encode.measure import StreamMeasurement, measure_stream
from discriminator_cli.encode.overlay import OverlaySummary, encode_overlay
from discriminator_cli.encode.packaging import PackageInput, package, resolve_backend
from discriminator_cli.encode.poster import Poster
from discriminator_cli.encode.presets import Preset
from discriminator_cli.encode.rung_cache import CacheEntry, RungCache, encode_key
from discriminator_cli.encode.work import work_directory
from discriminator_cli.encode.x264 import GRAPH_VERSION, AudioJob, RungJob
from discriminator_cli.errors import (
    BadInputError,
    OutputExistsError,
    ToolFailedError,
    ValidationFailedError,
)
from discriminator_cli.languages import check_language
from discriminator_cli.package_layout import HLS_MASTER_NAME, MPD_NAME, is_package_folder
from discriminator_cli.probe import SourceInfo, probe_audio_file, probe_source
from discriminator_cli.progress import NullProgress, ProgressSink
from discriminator_cli.publish import (
    STAGING_PREFIX,
    check_writable_parent,
    disk_full_error,
    is_disk_full,
    staged_directory,
)
from discriminator_cli.runner import CommandRunner
from discriminator_cli.tools import ffmpeg_path, require_ffmpeg_capabilities, tool_version

EngineName = Literal["local", "chunked", "ray"]
VIDEO_EXTENSIONS = (".mov", ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mxf", ".mts", ".ts")


@dataclass
class EncodeOptions:
    preset: Preset
    out_dir: Path
    language: str | None = None                  # overrides the preset's audio language
    extra_audio: list[tuple[str, Path]] = field(default_factory=list)
    packager: str = "shaka"
    force: bool = False
    quality: bool = False
    validate: bool = True
    cache_dir: Path | None = None
    engine: EngineName = "local"
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS       # chunked / ray engines
    ray_address: str | None = None                     # None: a Ray instance on this machine
    ship_sources: bool = False       # ray: send sources through the object store
    # editors' features (see encode/editors.py)
    subtitles: list[tuple[str, Path]] = field(default_factory=list)   # (language, file)
    loudness: float | None = None                # LUFS; overrides the preset's [loudness]
    true_peak: float | None = None               # dBTP ceiling; overrides the preset's
    poster_time: float | None = None             # seconds; overrides the preset's [poster]


@dataclass
class RungResult:
    name: str
    width: int
    height: int
    target_bitrate: int
    cached: bool
    measurement: StreamMeasurement | None
    quality: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "width": self.width, "height": self.height,
                                "target_bitrate": self.target_bitrate, "cached": self.cached}
        if self.measurement:
            m = self.measurement
            data.update(average_bitrate=m.average_bitrate, peak_bitrate=m.peak_bitrate,
                        frames=m.frames, duration=m.duration, gop_count=len(m.keyframes))
        if self.quality:
            data["quality"] = self.quality
        return data


@dataclass
class EncodeResult:
    source: SourceInfo
    out_dir: Path
    backend: str
    rungs: list[RungResult]
    audio_languages: list[str]
    warnings: list[str]
    timings: dict[str, float]
    files: list[str]
    dry_run: bool
    validation: dict[str, Any] | None = None
    poster: Poster | None = None
    loudness: list[LoudnessReport] = field(default_factory=list)
    caption_languages: list[str] = field(default_factory=list)
    caption_files: dict[str, str] = field(default_factory=dict)  # language -> where it came from
    overlay: OverlaySummary | None = None        # the overlay preset's WebM package

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source.as_dict(), "out_dir": str(self.out_dir),
                "packager": self.backend, "dry_run": self.dry_run,
                "rungs": [r.as_dict() for r in self.rungs],
                "audio_languages": self.audio_languages, "warnings": self.warnings,
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "files": self.files, "validation": self.validation,
                "poster": self.poster.as_dict() if self.poster else None,
                "loudness": [r.as_dict() for r in self.loudness],
                "caption_languages": self.caption_languages,
                "caption_files": self.caption_files,
                "overlay": self.overlay.as_dict() if self.overlay else None}


def find_sources(paths: list[Path]) -> list[Path]:
    """Files as given; folders expand to the videos inside them (not recursive). A folder of
    PNG frames (and no videos) is one source, a PNG sequence for the overlay preset."""
    sources: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not found and is_sequence(path):
                found = [path]
            if not found:
                raise BadInputError("folder holds no video files", path=path,
                                    hint=f"put {', '.join(VIDEO_EXTENSIONS)} files there")
            sources.extend(found)
        else:
            sources.append(path)
    return sources


def _audio_plan(source: SourceInfo, options: EncodeOptions, runner: CommandRunner,
                warnings: list[str]) -> list[tuple[str, Path, int]]:
    """(language, input file, audio index within that file) for every audio track."""
    tracks: list[tuple[str, Path, int]] = []
    main_language = check_language(options.language or options.preset.audio.language)
    for stream in source.audio:
        if stream.audio_index == 0:
            tracks.append((main_language, Path(source.path), 0))
        elif stream.language and stream.language != main_language:
            tracks.append((check_language(stream.language, where="source audio language"),
                           Path(source.path), stream.audio_index))
        else:
            warnings.append(f"source audio stream #{stream.index} has no distinct language tag "
                            "and was left out (add it with --audio LANG=FILE)")
    for language, path in options.extra_audio:
        probe_audio_file(path, runner)
        tracks.append((check_language(language, where="--audio"), path, 0))
    languages = [t[0] for t in tracks]
    duplicates = {lang for lang in languages if languages.count(lang) > 1}
    if duplicates:
        raise BadInputError(f"two audio tracks in {', '.join(sorted(duplicates))}",
                            hint="give each audio track its own language")
    return tracks


def _source_warnings(source: SourceInfo, plan: LadderPlan) -> list[str]:
    warnings = []
    if source.variable_frame_rate:
        warnings.append(f"variable frame rate; encoded at a constant {float(plan.frame_rate):g} "
                        "fps")
    if source.rotation:
        warnings.append(f"rotated {source.rotation}°; frames are turned upright "
                        f"({source.width}x{source.height})")
    if source.coded_width % 2 or source.coded_height % 2:
        warnings.append(f"odd dimensions {source.coded_width}x{source.coded_height}; rungs are "
                        "scaled to even sizes")
    if plan.dropped:
        warnings.append(f"rungs above the source's {source.width}x{source.height} left out: "
                        f"{', '.join(plan.dropped)}")
    if any(r.clamped for r in plan.rungs):
        warnings.append("the top rung was clamped to the source size (never upscaled)")
    if not source.audio:
        warnings.append("no audio stream: the package is video-only")
    return warnings


class StageTimer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def encode_source(source_path: Path, options: EncodeOptions, *,
                  runner: CommandRunner | None = None,
                  progress: ProgressSink | None = None,
                  encoder: RungEncoder | None = None) -> EncodeResult:
    """The editors' job for one source: probe, plan, encode what the cache lacks, package,
    validate and publish by rename."""
    runner = runner or CommandRunner()
    encoder = encoder or make_encoder(options)
    progress = progress or NullProgress()
    timer = StageTimer()
    if options.preset.is_overlay:
        return encode_overlay(source_path, options, runner=runner, progress=progress,
                              timer=timer)
    if is_sequence(source_path):
        raise BadInputError("a PNG sequence is an overlay source", path=source_path,
                            hint="encode it with --preset overlay (VP9 with alpha)")
    if not runner.dry_run:
        # Before any work: an encode that cannot be published is an hour lost.
        check_output_free(options.out_dir, force=options.force)
    with timer("probe"):
        source = probe_source(source_path, runner)
        plan = plan_ladder(source, options.preset)
        if not plan.rungs:
            raise BadInputError("no rung of the preset fits this source", path=source_path,
                                hint="use a preset with smaller rungs")
        warnings = _source_warnings(source, plan)
        audio_tracks = _audio_plan(source, options, runner, warnings)
        backend = resolve_backend(options.packager)
        ffmpeg = ffmpeg_path()
        captions = editors.load_caption_step(options, source, ffmpeg, runner, warnings)
        require_ffmpeg_capabilities(ffmpeg, ["encoder:libx264", "encoder:aac", "filter:split",
                                             "filter:scale"], runner)
    root = cache.cache_root(options.cache_dir)
    with timer("hash"):
        source_hash, rung_entries, audio_entries = _cache_entries(
            source, plan, options, audio_tracks, root, tool_version(ffmpeg, runner=runner),
            remember=not runner.dry_run, progress=progress)
    cached = {name: entry.complete for name, entry in rung_entries.items()}
    with work_directory(root / "work", dry_run=runner.dry_run) as work:
        rung_jobs = [RungJob(r, work / f"{r.name}.mp4", work / f"{r.name}-passlog")
                     for r in plan.rungs]
        audio_jobs = [AudioJob(lang, path, index, work / f"audio_{lang}.mp4")
                      for lang, path, index in audio_tracks]
        ctx = EncodeContext(source, source_hash, plan, options.preset, ffmpeg, runner, progress,
                            root, work, rung_entries, options)
        with timer("loudness"):
            audio_jobs, loudness_plans = editors.plan_loudness_step(
                options, ffmpeg, audio_jobs, audio_entries, runner)
        with timer("encode"):
            _encode_missing(ctx, encoder, rung_jobs, audio_jobs, audio_entries,
                            RungCache(root))
        with timer("loudness"):
            loudness = editors.finish_loudness_step(source, plan, options, ffmpeg, audio_jobs,
                                                    loudness_plans, audio_entries, runner)
        rung_results = []
        for rung in plan.rungs:
            entry = rung_entries[rung.name]
            rung_results.append(RungResult(rung.name, rung.width, rung.height, rung.bitrate,
                                           cached[rung.name],
                                           entry.measurement() if entry.complete else None))
        inputs = [PackageInput("video", f"video_{r.name}", rung_entries[r.name].media)
                  for r in plan.rungs]
        inputs += [PackageInput("audio", f"audio_{lang}", audio_entries[lang].media, lang)
                   for lang, _, _ in audio_tracks]
        inputs += editors.caption_inputs(captions, work, dry_run=runner.dry_run)
        if options.quality:
            from discriminator_cli.encode.quality import measure_quality

            with timer("quality"):
                scores = measure_quality(source, [(r, rung_entries[r.name].media)
                                                  for r in plan.rungs],
                                         runner=runner, progress=progress)
            for result in rung_results:
                result.quality = scores.get(result.name)
        validation = None
        files: list[str] = []
        if runner.dry_run:
            staging = options.out_dir.parent / f"{STAGING_PREFIX}{options.out_dir.name}.DRYRUN"
            package(backend, inputs, staging, work, plan.segment_seconds, runner)
            poster = editors.poster_step(source, plan, options, ffmpeg, staging, runner)
        else:
            with staged_directory(options.out_dir, force=options.force,
                                replaceable=is_package_folder) as staging:
                task = progress.start(f"package ({backend})", 1)
                with timer("package"):
                    try:
                        package(backend, inputs, staging, work, plan.segment_seconds, runner)
                    except (OSError, ToolFailedError) as exc:
                        if is_disk_full(exc):
                            needed = sum(item.path.stat().st_size for item in inputs)
                            raise disk_full_error(options.out_dir, needed) from exc
                        raise
                progress.finish(task)
                poster = editors.poster_step(source, plan, options, ffmpeg, staging, runner)
                if options.validate:
                    with timer("validate"):
                        validation = _validate_staged(staging, options.out_dir, plan,
                                                      options.preset)
                encoder.check_interrupted()  # a cancelled batch publishes nothing
                files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*")
                               if p.is_file())
    return EncodeResult(source=source, out_dir=options.out_dir, backend=backend,
                        rungs=rung_results, audio_languages=[t[0] for t in audio_tracks],
                        warnings=warnings, timings=timer.timings, files=files,
                        dry_run=runner.dry_run, validation=validation, poster=poster,
                        loudness=loudness, caption_languages=[c.language for c in captions],
                        caption_files={c.language: str(c.source) for c in captions})


def check_output_free(out_dir: Path, *, force: bool) -> None:
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise OutputExistsError("the output path is a file, not a package folder",
                                path=out_dir.absolute(), hint="choose another --out")
    if out_dir.exists() and not force:
        raise OutputExistsError("output directory already exists", path=out_dir.absolute(),
                                hint="pass --force to replace it, or choose another --out")
    if out_dir.exists() and not is_package_folder(out_dir):
        raise OutputExistsError("--force replaces only a package, and this folder holds other "
                                f"files (no {MPD_NAME} or {HLS_MASTER_NAME})",
                                path=out_dir.absolute(),
                                hint="choose another --out, or empty the folder yourself")
    check_writable_parent(out_dir, what="package")


def _cache_entries(source: SourceInfo, plan: LadderPlan, options: EncodeOptions,
                   audio_tracks: list[tuple[str, Path, int]], root: Path, ffmpeg_version: str,
                   *, remember: bool, progress: ProgressSink,
                   ) -> tuple[str, dict[str, CacheEntry], dict[str, CacheEntry]]:
    """The cache entry of every rung and audio track: keys hash all that changes the bytes."""
    rung_cache = RungCache(root)
    # Hashing a big master takes a while the first time (later runs hit the memo).
    task = progress.start("hash source", source.size_bytes, unit="B")
    source_hash = cache.content_hash(Path(source.path), root, remember=remember,
                                     on_bytes=lambda done: progress.update(task, done))
    progress.finish(task)
    video = options.preset.video
    rungs = {r.name: rung_cache.rung(encode_key({
        "source": source_hash, "rung": r.as_dict(), "video": video,
        "fps": str(plan.frame_rate), "gop": plan.gop_frames,
        "vfr": source.variable_frame_rate, "ffmpeg": ffmpeg_version,
        "graph": GRAPH_VERSION})) for r in plan.rungs}
    loudness = editors.effective_loudness(options.preset, options.loudness, options.true_peak)
    # Only a normalised track's key names its loudness: plain tracks keep their cache entries.
    loudness_key = {"loudness": loudness} if loudness else {}
    input_hashes = {path: (source_hash if path == Path(source.path)
                           else cache.content_hash(path, root, remember=remember))
                    for _, path, _ in audio_tracks}
    audio = {lang: rung_cache.audio(encode_key({
        "input": input_hashes[path], "index": index, "audio": options.preset.audio,
        "language": lang, "ffmpeg": ffmpeg_version, **loudness_key}))
        for lang, path, index in audio_tracks}
    return source_hash, rungs, audio


def _validate_staged(staging: Path, final: Path, plan: LadderPlan,
                     preset: Preset) -> dict[str, Any]:
    from discriminator_cli.validate.h264 import HrdParameters

    # The buffer model reads the stream's own HRD parameters; the preset's are the fallback.
    fallback = {f"video_{r.name}.mp4": HrdParameters(r.bitrate, r.bufsize,
                                                     cbr=preset.video.nal_hrd == "cbr",
                                                     source="preset")
                for r in plan.rungs}
    return check_staged_package(staging, final, hrd_fallback=fallback)


def check_staged_package(staging: Path, final: Path, *,
                         hrd_fallback: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a staged package; refuse to publish it (ValidationFailedError) on errors."""
    from discriminator_cli.validate import validate_package

    report = validate_package(staging, hrd_fallback=hrd_fallback)
    if report.errors:
        first = report.errors[0]
        raise ValidationFailedError(
            f"the package failed validation ({len(report.errors)} errors; first: "
            f"{first.one_line()})", path=final,
            hint="nothing was published; rerun with --no-validate to inspect it anyway")
    return report.summary()


def _encode_missing(ctx: EncodeContext, encoder: RungEncoder, rung_jobs: list[RungJob],
                    audio_jobs: list[AudioJob], audio_entries: dict[str, CacheEntry],
                    rung_cache: RungCache) -> None:
    """Encode what the cache lacks. Per-key locks make a concurrent run wait, then hit."""
    runner, rung_entries = ctx.runner, ctx.rung_entries
    with contextlib.ExitStack() as stack:
        if not runner.dry_run:
            stack.enter_context(rung_cache.locked([*rung_entries.values(),
                                                   *audio_entries.values()]))
        todo = [j for j in rung_jobs if not rung_entries[j.rung.name].complete]
        audio_todo = [j for j in audio_jobs if not audio_entries[j.language].complete]
        if not todo and not audio_todo:
            runner.note("ffmpeg: every rung and audio track is cached; no encode runs")
            return
        encoder.encode(ctx, todo, audio_todo)
        if runner.dry_run:
            return
        for job in todo:
            rung_entries[job.rung.name].store(
                job.output, measure_stream(job.output, kind="video",
                                           segment_seconds=ctx.plan.segment_seconds,
                                           runner=runner))
        for audio_job in audio_todo:
            audio_entries[audio_job.language].store(audio_job.output)
