"""Publish by rename: work happens in a temporary sibling of the destination.

A crash or Ctrl-C leaves the destination exactly as it was (the temporary sibling is removed);
only a complete result is moved into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from discriminator_cli.errors import OutputExistsError

STAGING_PREFIX = ".staging-"


@contextlib.contextmanager
def staged_directory(destination: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield an empty staging directory; on clean exit it replaces `destination`."""
    destination = destination.absolute()
    if destination.exists() and not force:
        raise OutputExistsError("output directory already exists", path=destination,
                                hint="pass --force to replace it, or choose another --out")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{destination.name}.",
                                    dir=destination.parent))
    try:
        yield staging
        _replace_directory(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_directory(staging: Path, destination: Path) -> None:
    os.chmod(staging, 0o755)  # mkdtemp makes 0700; a published package must be readable
    if not destination.exists():
        os.rename(staging, destination)
        return
    # Swap: move the old one aside first so that a failure never leaves no package at all.
    retired = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}old.", dir=destination.parent))
    retired.rmdir()
    os.rename(destination, retired)
    try:
        os.rename(staging, destination)
    except BaseException:
        os.rename(retired, destination)
        raise
    shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def staged_file(destination: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; on clean exit it is renamed into place."""
    destination = destination.absolute()
    if destination.exists() and not force:
        raise OutputExistsError("output file already exists", path=destination,
                                hint="pass --force to replace it, or choose another -o")
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{STAGING_PREFIX}", suffix=destination.suffix,
                               dir=destination.parent)
    os.close(fd)
    staging = Path(tmp)
    try:
        yield staging
        os.chmod(staging, 0o644)
        os.replace(staging, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
