"""DASH against HLS in one package: same renditions, durations and audio languages."""

from __future__ import annotations

from discriminator_cli.languages import normalize_language
from discriminator_cli.validate.checks import TIME_EPSILON
from discriminator_cli.validate.dash import DashManifest
from discriminator_cli.validate.hls_master import HlsMaster
from discriminator_cli.validate.report import Report

VIDEO_CODECS = frozenset({"avc1", "avc3", "hvc1", "hev1", "av01", "vp09"})


def _codec_family(codecs: str | None) -> str:
    return (codecs or "?").split(".", 1)[0].lower()


def _dash_renditions(dash: DashManifest) -> tuple[set[str], int]:
    """(video renditions as 'WxH codec', number of audio renditions)."""
    video = {f"{r.width}x{r.height} {_codec_family(r.codecs)}" for r in dash.renditions
             if r.kind == "video"}
    return video, sum(1 for r in dash.renditions if r.kind == "audio")


def _hls_renditions(hls: HlsMaster) -> tuple[set[str], int]:
    """The same from the variants (one video rendition may appear once per audio group)
    and the AUDIO renditions. Audio is counted, not described: its language and codec are
    compared by their own checks, which name the culprit more precisely."""
    video = set()
    for v in hls.variants:
        codecs = [c for c in v.codecs if _codec_family(c) in VIDEO_CODECS]
        size = f"{v.resolution[0]}x{v.resolution[1]}" if v.resolution else "?x?"
        video.add(f"{size} {_codec_family(codecs[0] if codecs else None)}")
    return video, sum(1 for r in hls.renditions if r.type == "AUDIO")


def check_cross(dash: DashManifest, hls: HlsMaster, report: Report) -> None:
    (dash_video, dash_audio), (hls_video, hls_audio) = _dash_renditions(dash), \
        _hls_renditions(hls)
    if dash_video != hls_video or dash_audio != hls_audio:
        only_dash = sorted(dash_video - hls_video)
        only_hls = sorted(hls_video - dash_video)
        audio = "" if dash_audio == hls_audio else \
            f"; DASH has {dash_audio} audio rendition(s), HLS {hls_audio}"
        report.error("cross.renditions-differ", hls.path, "",
                     f"DASH ({dash.path.name}) and HLS ({hls.path.name}) describe different "
                     f"renditions: video only in DASH: {', '.join(only_dash) or 'none'}; "
                     f"video only in HLS: {', '.join(only_hls) or 'none'}{audio}; viewers "
                     "get a different ladder per protocol")
    dash_languages = {normalize_language(r.lang) for r in dash.renditions
                      if r.kind == "audio" and r.lang}
    hls_languages = {normalize_language(r.language) for r in hls.renditions
                     if r.type == "AUDIO" and r.language}
    if dash_languages and hls_languages and dash_languages != hls_languages:
        report.error("cross.languages-differ", hls.path, "",
                     f"audio languages differ: DASH has {sorted(map(str, dash_languages))}, "
                     f"HLS has {sorted(map(str, hls_languages))}")
    _check_durations(dash, hls, report)


def _check_durations(dash: DashManifest, hls: HlsMaster, report: Report) -> None:
    if dash.duration is None:
        return
    frames = [p.media.frame_seconds for p in hls.media_playlists()
              if p.media and p.media.usable and p.media.is_video]
    frames += [r.media.frame_seconds for r in dash.renditions
               if r.media and r.media.usable and r.media.is_video]
    for playlist in hls.media_playlists():
        if playlist.iframes_only or not playlist.segments:
            continue
        media = playlist.media
        own = media.frame_seconds if media and media.usable else 0.0
        tolerance = max([*frames, own]) + TIME_EPSILON
        if abs(playlist.extinf_total - dash.duration) > tolerance:
            report.error("cross.duration-differs", playlist.path, "",
                         f"HLS says {playlist.extinf_total:.3f} s but the MPD says "
                         f"{dash.duration:.3f} s (more than one frame apart); the two "
                         "protocols would present different timelines")
