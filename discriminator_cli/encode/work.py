"""Per-run work folders under the cache, and reclaiming the ones dead runs left behind.

A run that is SIGKILLed (or loses power) cannot clean up after itself, and its pass logs and
half-made rungs can weigh gigabytes. Every work folder is named after its process id; the next
run removes the folders whose process no longer exists.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from discriminator_cli.publish import pid_alive

WORK_PREFIX = "encode-"


def _owner_pid(folder: Path) -> int | None:
    parts = folder.name[len(WORK_PREFIX):].split("-", 1)
    return int(parts[0]) if parts and parts[0].isdigit() else None


def reclaim_stale(work_root: Path) -> list[Path]:
    """Remove work folders whose owning process is gone; returns what was removed."""
    removed: list[Path] = []
    if not work_root.is_dir():
        return removed
    for folder in work_root.iterdir():
        if not (folder.is_dir() and folder.name.startswith(WORK_PREFIX)):
            continue
        pid = _owner_pid(folder)
        # Folders without a pid (older versions) have no owner that could still need them.
        if pid is None or (pid != os.getpid() and not pid_alive(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def work_directory(work_root: Path, *, dry_run: bool = False) -> Iterator[Path]:
    """A fresh work folder, removed on exit. Under --dry-run nothing is created: the path is
    only named in the printed commands."""
    if dry_run:
        yield work_root / f"{WORK_PREFIX}{os.getpid()}-dry-run"
        return
    work_root.mkdir(parents=True, exist_ok=True)
    reclaim_stale(work_root)
    with tempfile.TemporaryDirectory(dir=work_root,
                                     prefix=f"{WORK_PREFIX}{os.getpid()}-") as name:
        yield Path(name)
