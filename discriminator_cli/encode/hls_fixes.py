"""HLS post-fixes both packagers need: the measured peak BANDWIDTH and the master's version.

Shaka Packager and Bento4 both compute BANDWIDTH without the final segment, which is short and
dense (and, from Bento4, also carries the mfra index), so their value can sit below the peak a
player really meets. After packaging we measure the peak from the byte ranges players fetch,
with the same definition `validate` checks, and raise any BANDWIDTH below it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import m3u8

from discriminator_cli.bitrate import Segment, peak_bitrate

_BANDWIDTH = re.compile(r"(?<![A-Z-])BANDWIDTH=(\d+)")


def playlist_peak(path: Path) -> float:
    """Peak segment bit rate of one fMP4 media playlist with byte ranges."""
    playlist = m3u8.load(str(path))
    segments, start = [], 0.0
    for segment in playlist.segments:
        if not segment.byterange:
            continue
        length = int(str(segment.byterange).split("@", 1)[0])
        segments.append(Segment(size=length, start=start,
                                duration=float(segment.duration)))
        start += float(segment.duration)
    nominal = float(playlist.target_duration or max((s.duration for s in segments), default=1))
    return peak_bitrate(segments, nominal)


def declare_measured_peaks(master_path: Path) -> dict[str, tuple[int, int]]:
    """Rewrite BANDWIDTH where it is below video peak + the heaviest audio of its group.

    Returns {variant uri: (declared before, declared after)} for the variants changed.
    """
    folder = master_path.parent
    master = m3u8.load(str(master_path))
    audio_peaks: dict[str, float] = {}
    for media in master.media:
        if media.type == "AUDIO" and media.uri:
            peak = playlist_peak(folder / media.uri)
            audio_peaks[media.group_id] = max(audio_peaks.get(media.group_id, 0.0), peak)
    wanted: dict[str, int] = {}
    for variant in master.playlists:
        peak = playlist_peak(folder / variant.uri) + audio_peaks.get(variant.stream_info.audio
                                                                     or "", 0.0)
        if variant.stream_info.bandwidth < peak:
            wanted[variant.uri] = math.ceil(peak)
    if not wanted:
        return {}
    lines = master_path.read_text(encoding="utf-8").splitlines()
    changed: dict[str, tuple[int, int]] = {}
    for index, line in enumerate(lines[:-1]):
        uri = lines[index + 1].strip()
        if line.startswith("#EXT-X-STREAM-INF:") and uri in wanted:
            before = int(_BANDWIDTH.search(line).group(1))  # type: ignore[union-attr]
            lines[index] = _BANDWIDTH.sub(f"BANDWIDTH={wanted[uri]}", line, count=1)
            changed[uri] = (before, wanted[uri])
    master_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


def declare_master_version(master: Path) -> None:
    """Shaka writes no EXT-X-VERSION in the master playlist; declare the highest version its
    media playlists need (6 for fMP4 byte ranges) so strict clients and validators agree."""
    text = master.read_text(encoding="utf-8")
    if "#EXT-X-VERSION:" in text:
        return
    versions = [int(line.split(":", 1)[1]) for playlist in master.parent.glob("*.m3u8")
                for line in playlist.read_text(encoding="utf-8").splitlines()
                if line.startswith("#EXT-X-VERSION:") and line.split(":", 1)[1].isdigit()]
    version = max(versions, default=6)
    lines = text.splitlines()
    lines.insert(1, f"#EXT-X-VERSION:{version}")
    master.write_text("\n".join(lines) + "\n", encoding="utf-8")
