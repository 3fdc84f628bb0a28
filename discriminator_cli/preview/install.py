"""`discriminator players install`: the pinned player libraries for a pip install.

A pip user has no checkout and no node_modules. The package.json and package-lock.json shipped
in preview/npm/ pin the exact versions the project tests with; `npm ci` installs exactly those
into a staging folder beside the user's data directory, which then replaces
players.players_data_dir() by rename (never half-installed), where players.find_node_modules
looks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from discriminator_cli.errors import MissingToolError, ToolFailedError
from discriminator_cli.preview.players import (
    PLAYER_LIBRARIES,
    has_all,
    players_data_dir,
    which_override,
)
from discriminator_cli.publish import staged_directory
from discriminator_cli.runner import CommandRunner

NPM_DIR = Path(__file__).with_name("npm")
NPM_FILES = ("package.json", "package-lock.json")
ENV_NPM = "DISCRIMINATOR_NPM"


def find_npm() -> str | None:
    return which_override(ENV_NPM, ("npm",))


def npm_ci_argv(npm: str) -> list[str]:
    return [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]


def install_players(runner: CommandRunner, destination: Path | None = None) -> Path:
    """Run `npm ci` from the shipped lockfile into `destination` (the data directory by
    default) and return its node_modules; under --dry-run print the argv and touch nothing."""
    destination = (destination or players_data_dir()).absolute()
    npm = find_npm()
    if npm is None:
        raise MissingToolError("npm not found",
                               hint=f"install Node.js 20 or newer with npm (or set {ENV_NPM})")
    argv = npm_ci_argv(npm)
    what = "npm ci (player libraries)"
    if runner.dry_run:
        runner.run(argv, what=what, cwd=destination)
        return destination / "node_modules"
    with staged_directory(destination, force=True) as staging:
        for name in NPM_FILES:
            shutil.copyfile(NPM_DIR / name, staging / name)
        result = runner.run(argv, what=what, cwd=staging, path=destination,
                            hint="npm needs to reach its registry (or a mirror set in .npmrc)")
        if not has_all(staging / "node_modules"):
            missing = sorted(lib.npm_package for lib in PLAYER_LIBRARIES.values()
                             if not (staging / "node_modules" / lib.npm_package
                                     / lib.bundle).is_file())
            raise ToolFailedError(f"{what} finished without {', '.join(missing)}",
                                  argv=result.argv, returncode=result.returncode,
                                  stderr=result.stderr, path=destination)
    return destination / "node_modules"
