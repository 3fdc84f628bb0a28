"""Segmented WebVTT for HLS, after either packager.

Shaka Packager (on-demand, no segment templates) and Bento4's mp4dash both list a sidecar
WebVTT as one segment, without X-TIMESTAMP-MAP, lasting as long as the captions rather than the
video. Here each subtitle playlist is rewritten as segments of the package's segment length,
each a WebVTT file with `X-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:0` (cue time 0 is media time
0, as in the fMP4 renditions), covering the whole video. The DASH sidecar stays one file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from discriminator_cli.encode.captions import parse_webvtt, to_webvtt
from discriminator_cli.package_layout import HLS_MASTER_NAME

TIMESTAMP_MAP = "X-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:0"
_URI = re.compile(r'URI="([^"]+)"')


def _uris(playlist: Path) -> list[str]:
    return [line.strip() for line in playlist.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def _video_duration(master: Path, text: str) -> float:
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF") and number + 1 < len(lines):
            variant = master.parent / lines[number + 1].strip()
            return sum(float(x.split(":", 1)[1].split(",", 1)[0])
                       for x in variant.read_text(encoding="utf-8").splitlines()
                       if x.startswith("#EXTINF:"))
    raise ValueError(f"{master} lists no variant")


def segment_subtitles(out_dir: Path, segment_seconds: float) -> list[Path]:
    """Rewrite every SUBTITLES rendition of the master; returns the playlists rewritten."""
    master = out_dir / HLS_MASTER_NAME
    text = master.read_text(encoding="utf-8")
    renditions = [_URI.search(line) for line in text.splitlines()
                  if line.startswith("#EXT-X-MEDIA:") and "TYPE=SUBTITLES" in line]
    if not renditions:
        return []
    total = _video_duration(master, text)
    done = []
    for match in renditions:
        if match is None:
            continue
        playlist = out_dir / match.group(1)
        (sidecar,) = _uris(playlist)
        cues = parse_webvtt((playlist.parent / sidecar).read_text(encoding="utf-8"))
        count = max(1, math.ceil(total / segment_seconds - 1e-6))
        stem = Path(sidecar).stem
        lines = ["#EXTM3U", "#EXT-X-VERSION:6",
                 f"#EXT-X-TARGETDURATION:{math.ceil(segment_seconds)}",
                 "#EXT-X-PLAYLIST-TYPE:VOD"]
        for index in range(count):
            start = index * segment_seconds
            end = min(start + segment_seconds, total)
            # A cue crossing a boundary goes in both segments; players drop the repeat.
            inside = [c for c in cues if c.start < end and c.end > start]
            name = f"{stem}_{index + 1}.vtt"
            (playlist.parent / name).write_text(to_webvtt(inside, TIMESTAMP_MAP),
                                                encoding="utf-8")
            lines += [f"#EXTINF:{end - start:.3f},", name]
        lines.append("#EXT-X-ENDLIST")
        playlist.write_text("\n".join(lines) + "\n", encoding="utf-8")
        done.append(playlist)
    return done
