"""The one rule for "is this file inside the package?", shared by `validate` and `preview`.

A manifest's references and a preview request's URL path are both relative URL paths: they
are percent-decoded, '.' and '..' are applied lexically (as a player or browser does before
it asks), and the result must stay under the package root, also after following symlinks.
Nothing is opened here; only path names are looked at (and symlinks read), so a caller can
refuse a reference before touching the file it names.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote


class OutsideRoot(Exception):
    """The reference leaves the root; `reason` says how, for a one-line message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def confined_path(root: Path, reference: str, *, base: Path | None = None) -> Path:
    """The resolved path under `root` that the relative URL path `reference` names.

    `base` is the directory the reference is relative to (the manifest's folder; `root` when
    omitted). The file need not exist. Raises OutsideRoot for an absolute path, a '..' that
    climbs above `root` (also percent-encoded), a NUL byte or backslash, or a symlink whose
    target lies outside `root`.
    """
    decoded = unquote(reference)
    if "\x00" in decoded:
        raise OutsideRoot("holds a NUL byte")
    if "\\" in decoded:
        raise OutsideRoot("holds a backslash, which some servers read as a folder separator")
    if decoded.startswith("/"):
        raise OutsideRoot("is an absolute path")
    real_root = root.resolve()
    parts: list[str] = []
    if base is not None:
        try:
            parts = list(base.resolve().relative_to(real_root).parts)
        except ValueError:
            raise OutsideRoot("is named by a manifest that is itself outside") from None
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise OutsideRoot("climbs out with '..'")
            parts.pop()
        else:
            parts.append(segment)
    try:
        resolved = real_root.joinpath(*parts).resolve()
    except (OSError, RuntimeError):  # a symlink loop, a name too long for the system
        raise OutsideRoot("cannot be resolved (a symlink loop or an over-long name)") from None
    if not resolved.is_relative_to(real_root):
        raise OutsideRoot("is a symlink that leads outside")
    return resolved
