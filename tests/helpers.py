"""Small readers the tests use to check real outputs (ffprobe packets, boxes, playlists)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from discriminator_cli.tools import ffprobe_path


def ffprobe_json(path: Path, *args: str) -> dict:
    out = subprocess.run([ffprobe_path(), "-v", "error", *args, "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def keyframe_indices(path: Path, stream: str = "v:0") -> tuple[list[int], int]:
    """(frame indices of keyframes, frame count) from the packet flags."""
    data = ffprobe_json(path, "-select_streams", stream, "-show_entries", "packet=flags")
    flags = [p["flags"] for p in data["packets"]]
    return [i for i, f in enumerate(flags) if "K" in f], len(flags)


def video_stream(path: Path) -> dict:
    data = ffprobe_json(path, "-show_streams", "-select_streams", "v:0")
    return data["streams"][0]


def box_type_at(path: Path, offset: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(offset)
        header = handle.read(8)
    return header[4:8].decode("latin-1")


def byte_ranges(playlist: Path) -> list[tuple[str, int, int]]:
    """(uri, offset, length) for every EXT-X-BYTERANGE segment, offsets resolved."""
    result = []
    next_offset: dict[str, int] = {}
    pending: tuple[int, int | None] | None = None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXT-X-BYTERANGE:"):
            length, _, offset = line.split(":", 1)[1].partition("@")
            pending = (int(length), int(offset) if offset else None)
        elif line and not line.startswith("#") and pending:
            length, offset = pending
            start = offset if offset is not None else next_offset.get(line, 0)
            result.append((line, start, length))
            next_offset[line] = start + length
            pending = None
    return result


def attributes(line: str) -> dict[str, str]:
    """Attributes of an HLS tag line (quoted values unquoted)."""
    body = line.split(":", 1)[1]
    return {m.group(1): m.group(2).strip('"')
            for m in re.finditer(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', body)}


def start_local_ray() -> bool:
    """A 2-CPU local Ray instance for the tests (False: one was running already)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return False
    for attempt in (1, 2):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     logging_level="warning")
            return True
        except Exception as exc:
            # Ray waits a fixed 30 s for its raylet; a loaded 2-core box can miss that once.
            if attempt == 2 or "timed out during startup" not in str(exc):
                raise
            ray.shutdown()
    return True


def processes_naming(text: str) -> list[str]:
    """Command lines of live processes that mention `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended while we looked
            continue
        if text in args:
            found.append(args)
    return found
