"""I-frame playlists: the bit rates EXT-X-I-FRAME-STREAM-INF declares, measured.

An I-frame playlist's entries are byte ranges holding one I-frame each, with the time to the
next I-frame as EXTINF. Its BANDWIDTH is the peak segment bit rate over those entries (RFC 8216
4.3.4.2, the same definition as a variant's) and AVERAGE-BANDWIDTH the bytes over the
duration. `iframe_playlist_rates` is what encode calls to declare them; `check_iframe_rates`
is what validate checks.
"""

from __future__ import annotations

from pathlib import Path

import m3u8

from discriminator_cli.bitrate import Segment, average_bitrate, peak_bitrate
from discriminator_cli.package_layout import playlist_segments
from discriminator_cli.validate import checks
from discriminator_cli.validate.hls import HlsPlaylist
from discriminator_cli.validate.hls_syntax import PlaylistLine
from discriminator_cli.validate.report import Report


def iframe_rates(segments: list[Segment], target_duration: float | None, *,
                 with_last: bool = True) -> tuple[float, float]:
    """(peak, average) bits per second of an I-frame playlist's entries.

    `with_last=False` leaves the final entry out of the peak, as Shaka Packager and Bento4
    do (it is short, so dense); RFC 8216 counts it.
    """
    if not segments:
        return 0.0, 0.0
    nominal = float(target_duration or max(s.duration for s in segments))
    counted = segments if with_last or len(segments) < 2 else segments[:-1]
    return peak_bitrate(counted, nominal), average_bitrate(segments)


def iframe_playlist_rates(path: Path) -> tuple[float, float]:
    """(peak, average) bits per second of the I-frame playlist at `path`, every entry
    counted: the values to declare as BANDWIDTH and AVERAGE-BANDWIDTH."""
    segments, nominal = playlist_segments(path)
    return iframe_rates(segments, nominal)


def check_iframe_rates(info: m3u8.StreamInfo, playlist: HlsPlaylist, path: Path,
                       report: Report, line: PlaylistLine) -> None:
    if not playlist.segments:
        return
    peak, average = iframe_rates(playlist.segments, playlist.target_duration, with_last=False)
    full_peak, _ = iframe_rates(playlist.segments, playlist.target_duration)
    if info.bandwidth:
        if checks.peak_too_low(info.bandwidth, peak):
            report.error("hls.iframe-bandwidth-below-peak", path, line.where,
                         f"EXT-X-I-FRAME-STREAM-INF BANDWIDTH={info.bandwidth} is below the "
                         f"measured peak {checks.kbps(peak)} of {playlist.path.name}'s I-frame "
                         "byte ranges; trick play will stall on a connection chosen by it")
        elif checks.peak_too_low(info.bandwidth, full_peak):
            report.warning("hls.iframe-bandwidth-final-window", path, line.where,
                           f"EXT-X-I-FRAME-STREAM-INF BANDWIDTH={info.bandwidth} is below "
                           f"{checks.kbps(full_peak)}, the RFC 8216 peak of "
                           f"{playlist.path.name} once its final entry counts (packagers "
                           "leave that short, dense entry out)")
    if info.average_bandwidth and checks.average_off(info.average_bandwidth, average):
        report.error("hls.iframe-average-bandwidth-mismatch", path, line.where,
                     f"EXT-X-I-FRAME-STREAM-INF AVERAGE-BANDWIDTH={info.average_bandwidth} is "
                     f"more than {checks.AVERAGE_TOLERANCE:.0%} away from the measured average "
                     f"{checks.kbps(average)} of {playlist.path.name}")
