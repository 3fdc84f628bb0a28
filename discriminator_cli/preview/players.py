"""Where the browser-side pieces come from: the npm player libraries, Node.js and Chromium.

The player libraries are npm packages pinned by the package.json + package-lock.json shipped
in this package (preview/npm/; a checkout links them at its root). `npm ci` installs them into
a node_modules/ (`discriminator players install` does it into the user's data directory, for
a pip install without a checkout); they are never copied into this package. The preview server
serves a fixed list of their files under PLAYERS_URL_PREFIX, nothing else from node_modules,
and serves the package itself without them.

Look-up order for node_modules: $DISCRIMINATOR_PLAYERS_DIR (a node_modules directory, or a
directory holding one), then $XDG_DATA_HOME/discriminator/players (what `players install`
writes), then the repository root above this package (an editable install or a checkout), then
the current directory.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from discriminator_cli.errors import MissingToolError

ENV_PLAYERS_DIR = "DISCRIMINATOR_PLAYERS_DIR"
ENV_CHROMIUM = "DISCRIMINATOR_CHROMIUM"
ENV_NODE = "DISCRIMINATOR_NODE"

PLAYERS_URL_PREFIX = "/_players/"
INSTALL_COMMAND = "discriminator players install"
NPM_HINT = f"run `{INSTALL_COMMAND}` (npm ci of the pinned versions into your data " \
           "directory), or `npm ci` in a discriminator checkout, or set " \
           f"{ENV_PLAYERS_DIR} to a node_modules directory that has them"


def players_data_dir() -> Path:
    """$XDG_DATA_HOME/discriminator/players (~/.local/share/... by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "discriminator" / "players"


@dataclass(frozen=True)
class PlayerLibrary:
    """One npm package's browser bundle, served at /_players/<key>/<file name>."""

    key: str
    npm_package: str
    bundle: str  # path inside node_modules/<npm_package>/

    @property
    def url(self) -> str:
        return f"{PLAYERS_URL_PREFIX}{self.key}/{Path(self.bundle).name}"


PLAYER_LIBRARIES: dict[str, PlayerLibrary] = {
    lib.key: lib for lib in (
        PlayerLibrary("dashjs", "dashjs", "dist/modern/umd/dash.all.min.js"),
        PlayerLibrary("shaka", "shaka-player", "dist/shaka-player.compiled.js"),
        PlayerLibrary("hlsjs", "hls.js", "dist/hls.min.js"),
    )
}


@dataclass(frozen=True)
class PagePlayer:
    """One choice in the page's player picker: a library playing one of the manifests."""

    id: str
    library: str  # a PLAYER_LIBRARIES key
    manifest: str  # "dash" or "hls"
    label: str
    # False where the player derives a rendition's bandwidth instead of reporting the
    # manifest's (shaka-player on HLS subtracts its audio estimate from BANDWIDTH).
    reports_declared_bandwidth: bool = True


PAGE_PLAYERS: dict[str, PagePlayer] = {
    player.id: player for player in (
        PagePlayer("dashjs", "dashjs", "dash", "dash.js · DASH"),
        PagePlayer("shaka", "shaka", "dash", "shaka-player · DASH"),
        PagePlayer("shaka-hls", "shaka", "hls", "shaka-player · HLS",
                   reports_declared_bandwidth=False),
        PagePlayer("hlsjs", "hlsjs", "hls", "hls.js · HLS"),
    )
}


def _candidate_dirs() -> list[Path]:
    override = os.environ.get(ENV_PLAYERS_DIR)
    if override:
        base = Path(override).expanduser()
        return [base if base.name == "node_modules" else base / "node_modules"]
    # What `discriminator players install` put in the user's data folder comes first: the
    # user asked for those; a checkout's own node_modules next (`npm ci` there), then the cwd.
    repo_root = Path(__file__).resolve().parents[2]
    return [players_data_dir() / "node_modules", repo_root / "node_modules",
            Path.cwd() / "node_modules"]


def has_all(node_modules: Path) -> bool:
    return all((node_modules / lib.npm_package / lib.bundle).is_file()
               for lib in PLAYER_LIBRARIES.values())


def find_node_modules() -> Path | None:
    """The node_modules directory holding every player bundle, or None."""
    for candidate in _candidate_dirs():
        if has_all(candidate):
            return candidate.resolve()
    return None


def require_node_modules() -> Path:
    found = find_node_modules()
    if found is None:
        looked = ", ".join(str(p) for p in _candidate_dirs())
        missing = sorted({lib.npm_package for lib in PLAYER_LIBRARIES.values()})
        raise MissingToolError(f"player libraries ({', '.join(missing)}) not found in {looked}",
                               hint=NPM_HINT)
    return found


def library_files(node_modules: Path) -> dict[str, Path]:
    """URL path -> file, for every servable player file (bundles and their source maps)."""
    files: dict[str, Path] = {}
    for lib in PLAYER_LIBRARIES.values():
        bundle = node_modules / lib.npm_package / lib.bundle
        files[lib.url] = bundle
        source_map = bundle.with_name(bundle.name + ".map")
        if source_map.is_file():
            files[lib.url + ".map"] = source_map
    return files


def which_override(env: str, names: tuple[str, ...]) -> str | None:
    override = os.environ.get(env)
    if override:
        return shutil.which(override) or (override if os.access(override, os.X_OK) else None)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_chromium() -> str | None:
    """Debian's chromium (or $DISCRIMINATOR_CHROMIUM); None when absent."""
    return which_override(ENV_CHROMIUM, ("chromium", "chromium-browser"))


def require_chromium() -> str:
    found = find_chromium()
    if found is None:
        raise MissingToolError("chromium not found",
                               hint=f"apt-get install chromium (or set {ENV_CHROMIUM})")
    return found


def find_node() -> str | None:
    return which_override(ENV_NODE, ("node", "nodejs"))


def require_node() -> str:
    found = find_node()
    if found is None:
        raise MissingToolError("node (Node.js) not found",
                               hint=f"install Node.js 20 or newer (or set {ENV_NODE})")
    return found


def require_playwright(node_modules: Path) -> Path:
    package = node_modules / "playwright-core"
    if not (package / "package.json").is_file():
        raise MissingToolError(f"playwright-core not found in {node_modules}", hint=NPM_HINT)
    return package
