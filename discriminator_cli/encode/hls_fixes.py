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

from discriminator_cli.bitrate import peak_bitrate
from discriminator_cli.package_layout import playlist_segments
from discriminator_cli.validate.iframes import iframe_playlist_rates

_BANDWIDTH = re.compile(r"(?<![A-Z-])BANDWIDTH=(\d+)")
_AVERAGE = re.compile(r"AVERAGE-BANDWIDTH=(\d+)")
_URI = re.compile(r'URI="([^"]*)"')


def playlist_peak(path: Path) -> float:
    """Peak segment bit rate (RFC 8216) of one fMP4 playlist with byte ranges."""
    return peak_bitrate(*playlist_segments(path))


def declare_measured_peaks(master_path: Path) -> dict[str, tuple[int, int]]:
    """Rewrite BANDWIDTH where it is below the measured peak: video + the heaviest audio of its
    group for variants, the I-frames alone for I-frame streams (whose AVERAGE-BANDWIDTH is
    declared as measured too: Shaka's can exceed its own BANDWIDTH).

    Returns {playlist uri: (BANDWIDTH before, after)} for the entries changed.
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
    iframe_averages: dict[str, int] = {}
    for iframe in master.iframe_playlists:
        peak, average = iframe_playlist_rates(folder / iframe.uri)
        if iframe.iframe_stream_info.bandwidth < peak:
            wanted[iframe.uri] = math.ceil(peak)
        iframe_averages[iframe.uri] = round(average)
    lines = master_path.read_text(encoding="utf-8").splitlines()
    changed: dict[str, tuple[int, int]] = {}
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:") and index + 1 < len(lines):
            uri = lines[index + 1].strip()
        elif line.startswith("#EXT-X-I-FRAME-STREAM-INF:") and (found := _URI.search(line)):
            uri = found.group(1)
            if uri in iframe_averages and _AVERAGE.search(line):
                line = _AVERAGE.sub(f"AVERAGE-BANDWIDTH={iframe_averages[uri]}", line, count=1)
                lines[index] = line
        else:
            continue
        declared = _BANDWIDTH.search(line)
        if uri in wanted and declared:
            before = int(declared.group(1))
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
