"""The cache directory, content hashes and per-key locks.

Cache entries are written with publish.py's write-then-rename helpers, so concurrent runs never
see (or leave) a half-written entry; a per-key lock file lets a second run wait for the first
instead of doing the same work twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from discriminator_cli.publish import atomic_write_text

ENV_CACHE_DIR = "DISCRIMINATOR_CACHE_DIR"
_HASH_CHUNK = 1 << 20


def cache_root(override: Path | str | None = None) -> Path:
    """--cache-dir, else $DISCRIMINATOR_CACHE_DIR, else $XDG_CACHE_HOME/discriminator."""
    # Absolute, so that no tool ever reads a cache path starting with '-' as an option.
    if override:
        return Path(override).absolute()
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(base) / "discriminator").absolute()


def file_sha256(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """Streamed sha256 of a file's content (never reads the file whole); `on_bytes` hears
    the running count of bytes hashed."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)
    return digest.hexdigest()


def content_hash(path: Path, root: Path, *, remember: bool = True,
                 on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 of a file, memoised by (path, size, mtime, inode) so big sources hash once.

    `remember=False` (a dry run) reads the memo but writes nothing."""
    stat = path.stat()
    memo_key = hashlib.sha256(
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}".encode()).hexdigest()
    memo = root / "hashes" / f"{memo_key}.txt"
    if memo.is_file():
        cached = memo.read_text().strip()
        if len(cached) == 64:
            return cached
    value = file_sha256(path, on_bytes)
    if remember:
        atomic_write_text(memo, value)
    return value


def key_of(parts: dict[str, Any]) -> str:
    """A stable key for a dict of settings."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
