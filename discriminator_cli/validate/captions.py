"""Captions in a package: WebVTT syntax (with line numbers), cue times within the
presentation, files inside the package, and the same languages in DASH and HLS."""

from __future__ import annotations

from pathlib import Path

from discriminator_cli.encode.captions import TIME_TOLERANCE, CaptionSyntaxError, parse_webvtt
from discriminator_cli.languages import normalize_language
from discriminator_cli.validate.dash import DashManifest
from discriminator_cli.validate.hls_master import HlsMaster
from discriminator_cli.validate.report import Report


def _inside(report: Report, manifest: Path, file: Path, location: str) -> bool:
    package = manifest.parent.resolve()
    if not file.resolve().is_relative_to(package):
        report.error("captions.outside-package", manifest, location,
                     f"caption file {file} lies outside the package folder {package}: "
                     "publishing the folder would leave it behind")
        return False
    return True


def _check_vtt(report: Report, file: Path, manifest: Path, duration: float | None, *,
               needs_timestamp_map: bool) -> None:
    data = file.read_bytes()
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        report.error("captions.encoding", file, f"line {line}",
                     "not UTF-8: WebVTT must be UTF-8", manifest=manifest)
        return
    try:
        cues = parse_webvtt(text.replace("\r\n", "\n"))
    except CaptionSyntaxError as exc:
        report.error("captions.syntax", file, f"line {exc.line}", exc.problem,
                     manifest=manifest)
        return
    if duration is not None:
        for cue in cues:
            if cue.end > duration + TIME_TOLERANCE:
                report.error("captions.cue-after-end", file, f"line {cue.line}",
                             f"cue ends at {cue.end:.3f} s, after the presentation "
                             f"({duration:.3f} s)", manifest=manifest)
    if needs_timestamp_map and "X-TIMESTAMP-MAP=" not in text.split("\n\n", 1)[0]:
        report.warning("captions.timestamp-map", file, "line 1",
                       "an HLS WebVTT segment without X-TIMESTAMP-MAP: players must guess how "
                       "its cue times map onto the media timeline", manifest=manifest)


def _dash_languages(mpd: DashManifest, report: Report) -> set[str]:
    languages = set()
    for rendition in mpd.renditions:
        if rendition.kind != "text":
            continue
        if not rendition.lang:
            report.error("captions.missing-language", mpd.path, rendition.location,
                         "a text AdaptationSet without @lang: players cannot offer it by "
                         "language")
        else:
            languages.add(str(normalize_language(rendition.lang)))
        file = rendition.text_file
        if file is not None and _inside(report, mpd.path, file, rendition.location):
            _check_vtt(report, file, mpd.path, mpd.duration, needs_timestamp_map=False)
    return languages


def _segments(playlist: Path) -> list[str]:
    return [line.strip() for line in playlist.read_text(encoding="utf-8", errors="replace")
            .splitlines() if line.strip() and not line.startswith("#")]


def _hls_languages(master: HlsMaster, report: Report, duration: float | None) -> set[str]:
    languages = set()
    for rendition in master.renditions:
        if rendition.type != "SUBTITLES":
            continue
        if not rendition.language:
            report.error("captions.missing-language", master.path, rendition.location,
                         "a SUBTITLES rendition without LANGUAGE")
        else:
            languages.add(str(normalize_language(rendition.language)))
        playlist = rendition.text_playlist
        if playlist is None or not _inside(report, master.path, playlist, rendition.location):
            continue
        for uri in _segments(playlist):
            segment = (playlist.parent / uri).resolve()
            if not segment.is_file():
                report.error("file.missing", playlist, "", f"caption segment '{uri}' does not "
                             "exist; players will get a 404", manifest=master.path)
            elif _inside(report, master.path, segment, rendition.location):
                _check_vtt(report, segment, master.path, duration, needs_timestamp_map=True)
    return languages


def check_captions(dash: list[DashManifest], masters: list[HlsMaster], report: Report) -> None:
    durations = {mpd.path.parent: mpd.duration for mpd in dash}
    dash_languages = {mpd.path.parent: _dash_languages(mpd, report) for mpd in dash}
    for master in masters:
        hls_languages = _hls_languages(master, report, durations.get(master.path.parent))
        other = dash_languages.get(master.path.parent)
        if other is not None and other != hls_languages:
            report.error("cross.caption-languages-differ", master.path, "",
                         f"caption languages differ: DASH has {sorted(other)}, HLS has "
                         f"{sorted(hls_languages)}")
