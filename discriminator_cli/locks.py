"""One advisory file lock for every "only one process at a time" rule of the toolkit: a cache
key being encoded, an output being published."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, *, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block.

    `remove=True` deletes the lock file on the way out (for locks beside a user's outputs,
    which must leave nothing behind). That is only safe because a process that waited on a
    file which was removed meanwhile notices (the path no longer names its inode) and retries
    on the new file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a")  # noqa: SIM115 - held across the yield below
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()
    try:
        yield
    finally:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
