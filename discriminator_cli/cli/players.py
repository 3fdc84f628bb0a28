"""`discriminator players install`: the npm player libraries `preview` serves, for pip users."""

from __future__ import annotations

import sys

import typer

from discriminator_cli.cli.options import DryRunOption, JsonOption
from discriminator_cli.cli.output import err_console, info, print_json
from discriminator_cli.preview.install import install_players
from discriminator_cli.runner import CommandRunner

players_app = typer.Typer(help="The browser player libraries (dash.js, hls.js, shaka-player) "
                          "that `preview` serves.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(players_app, name="players")


@players_app.command("install")
def install(dry_run: DryRunOption = False, json_output: JsonOption = False) -> None:
    """Install the pinned player libraries (npm ci from the lockfile shipped with
    discriminator) into $XDG_DATA_HOME/discriminator/players, where `preview` finds them."""
    # Under --json the argv goes to stderr, so stdout stays one JSON document.
    runner = CommandRunner(dry_run=dry_run, echo=lambda line: print(
        line, file=sys.stderr if json_output else sys.stdout, flush=True))
    if not dry_run and not json_output:
        with err_console.status("npm ci: installing the player libraries"):
            node_modules = install_players(runner)
    else:
        node_modules = install_players(runner)
    if json_output:
        print_json({"node_modules": str(node_modules), "dry_run": dry_run})
    elif not dry_run:
        info(f"installed: {node_modules}")
