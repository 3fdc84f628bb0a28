"""Publish by rename: work happens in a temporary sibling of the destination.

The one write-then-rename mechanism of the toolkit: packages (directories), clips, sidecars,
cache entries and reports are all written beside their final name and moved into place with a
rename, so a crash or Ctrl-C leaves the destination exactly as it was and no reader ever sees a
half-written file. Without `force`, the destination's existence is checked again at publish
time under a lock, so two runs racing for one output cannot both "win".
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from discriminator_cli.errors import BadInputError, OutputExistsError
from discriminator_cli.locks import file_lock

STAGING_PREFIX = ".staging-"
_PUBLISHED_MODE = 0o644   # mkstemp's 0600 would hide a clip, sidecar or cache entry from others
_PUBLISHED_DIR_MODE = 0o755


def check_writable_parent(destination: Path, *, what: str = "output",
                          flag: str = "--out") -> None:
    """Fail before any work when the destination's folder cannot be written."""
    parent = destination.absolute().parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(f"cannot create the {what} here: {existing} is not a folder",
                            path=destination, hint=f"choose another {flag}")
    # Try it rather than trusting permission bits: root ignores them, read-only mounts don't.
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=STAGING_PREFIX):
            pass
    except OSError as exc:
        raise BadInputError(f"cannot write the {what}: {existing} is not writable "
                            f"({exc.strerror})", path=destination,
                            hint=f"choose a writable {flag}, or fix the folder's "
                                 "permissions") from None


def _unwritable(destination: Path, exc: OSError, flag: str) -> BadInputError:
    if is_disk_full(exc):
        return disk_full_error(destination)
    return BadInputError(f"cannot write here ({exc.strerror or exc})", path=destination,
                         hint=f"choose a writable {flag}, or fix the folder's permissions")


def _publish_lock(destination: Path) -> contextlib.AbstractContextManager[None]:
    """Serialises the final existence check + rename of one destination across processes."""
    return file_lock(destination.parent / f"{STAGING_PREFIX}{destination.name}.lock", remove=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _owner() -> str:
    """This process as staging names carry it: host and pid (a shared folder may be written
    from several machines, and a pid means nothing on another one)."""
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"
    return f"{host}-{os.getpid()}"


def _staging_head(destination: Path) -> str:
    return f"{STAGING_PREFIX}{destination.name[:80]}."


def reclaim_dead_staging(destination: Path) -> list[Path]:
    """Remove the staging a killed run (SIGKILL, power loss) left beside `destination`:
    `.staging-NAME.HOST-PID.*` of this host whose process is gone."""
    head = _staging_head(destination)
    host = _owner().rsplit("-", 1)[0]
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(destination.parent) if e.name.startswith(head)]
    except OSError:
        return removed
    for entry in entries:
        owner = entry.name[len(head):].split(".", 1)[0]
        entry_host, _, pid = owner.rpartition("-")
        if entry_host != host or not pid.isdigit() or int(pid) == os.getpid() \
                or pid_alive(int(pid)):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path)
    return removed


def check_file_destination(destination: Path, *, force: bool, flag: str = "-o",
                           what: str = "this output", example: str | None = None) -> None:
    """A file output: not a folder, and not an existing file unless forced."""
    if destination.is_dir():
        raise BadInputError(f"is a folder; {what} is a file", path=destination,
                            hint=f"give {flag} a file name"
                                 + (f", e.g. {example}" if example else ""))
    if destination.exists() and not force:
        _refuse_existing(destination, "file", flag)


def _refuse_existing(destination: Path, kind: str, flag: str) -> None:
    raise OutputExistsError(f"output {kind} already exists", path=destination,
                            hint=f"pass --force to replace it, or choose another {flag}")


@contextlib.contextmanager
def staged_directory(destination: Path, *, force: bool = False,
                     replaceable: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield an empty staging directory; on clean exit it replaces `destination`.

    With `force` an existing destination is replaced only if it is a real folder (never a
    file or a link) that `replaceable` accepts: checked again at publish time, under the lock.
    """
    destination = destination.absolute()
    if destination.exists() and not force:
        _refuse_existing(destination, "directory", "--out")
    _check_replaceable(destination, replaceable)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        reclaim_dead_staging(destination)
        staging = Path(tempfile.mkdtemp(prefix=f"{_staging_head(destination)}{_owner()}.",
                                        dir=destination.parent))
    except OSError as exc:
        raise _unwritable(destination, exc, "--out") from None
    try:
        yield staging
        os.chmod(staging, _PUBLISHED_DIR_MODE)  # mkdtemp makes 0700
        with _publish_lock(destination):
            if destination.exists() and not force:
                _refuse_existing(destination, "directory", "--out")
            _check_replaceable(destination, replaceable)
            _replace_directory(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_replaceable(destination: Path, replaceable: Callable[[Path], bool] | None) -> None:
    if not (destination.exists() or destination.is_symlink()):
        return
    if destination.is_symlink() or not destination.is_dir():
        raise OutputExistsError("the output path is a file or a link, not a folder",
                                path=destination, hint="choose another --out")
    if replaceable is not None and not replaceable(destination):
        raise OutputExistsError("--force would replace a folder that is not an earlier output",
                                path=destination,
                                hint="choose another --out, or empty the folder yourself")


def _replace_directory(staging: Path, destination: Path) -> None:
    if not destination.exists():
        os.rename(staging, destination)
        return
    # Swap: move the old one aside first so that a failure never leaves no package at all.
    retired = Path(tempfile.mkdtemp(prefix=f"{_staging_head(destination)}{_owner()}.old-",
                                    dir=destination.parent))
    retired.rmdir()
    os.rename(destination, retired)
    try:
        os.rename(staging, destination)
    except BaseException:
        os.rename(retired, destination)
        raise
    shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def staged_file(destination: Path, *, force: bool = False, flag: str = "-o") -> Iterator[Path]:
    """Yield a temporary path beside `destination`; on clean exit it is renamed into place."""
    destination = destination.absolute()
    check_file_destination(destination, force=force, flag=flag)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        reclaim_dead_staging(destination)
        fd, tmp = tempfile.mkstemp(prefix=f"{_staging_head(destination)}{_owner()}.",
                                   suffix=destination.suffix, dir=destination.parent)
    except OSError as exc:
        raise _unwritable(destination, exc, flag) from None
    os.close(fd)
    staging = Path(tmp)
    try:
        yield staging
        os.chmod(staging, _PUBLISHED_MODE)
        if force:
            os.replace(staging, destination)
        else:
            with _publish_lock(destination):
                if destination.exists():
                    _refuse_existing(destination, "file", flag)
                os.replace(staging, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file (cache metadata, memos) by rename, replacing any old one."""
    with staged_file(path, force=True) as staging:
        staging.write_text(text, encoding="utf-8")


def publish_file(produced: Path, destination: Path) -> None:
    """Move a finished file (made in a work folder) into place, replacing any old one."""
    with staged_file(destination, force=True) as staging:
        shutil.move(produced, staging)


# Shaka Packager's own wording ("Cannot close file ..., possibly file permission issue or
# running out of disk space"): it never writes into a folder this run did not just make.
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded",
                   "running out of disk space")


def is_disk_full(exc: BaseException) -> bool:
    """An OSError for ENOSPC/EDQUOT, or a tool that died of it (its stderr says so)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    stderr = getattr(exc, "stderr", "") or ""
    return any(text in stderr for text in _DISK_FULL_TEXT)


def disk_full_error(destination: Path, needed_bytes: int | None = None) -> BadInputError:
    """One line naming the destination, the space it needs and the space there is."""
    probe = destination.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = f"about {needed_bytes / 1e6:.0f} MB needed, " if needed_bytes else ""
    return BadInputError(f"disk full while writing ({need}{free / 1e6:.0f} MB free)",
                         path=destination,
                         hint="free some space or choose another --out; nothing was published")
