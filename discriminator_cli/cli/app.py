"""The `discriminator` Typer application and the one exception-to-message map."""

from __future__ import annotations

import os
import sys

import typer

from discriminator_cli import __version__
from discriminator_cli.cli import (
    doctor,
    encode,
    lipsync,
    mel,
    presets,
    preview,
    quantize,
    sample,
    serve,
    validate,
)
from discriminator_cli.cli.output import err_console
from discriminator_cli.errors import DiscriminatorError

app = typer.Typer(
    name="discriminator",
    help="Media preparation (x264 ladder, DASH + HLS) and offline Wav2Lip lip-sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (doctor, presets, sample, encode, validate, preview, mel, lipsync, quantize,
               serve):
    module.register(app)


def _version_callback(value: bool) -> None:
    if value:
        print(f"discriminator {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Pass --debug anywhere on the command line for full tracebacks."""


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("DISCRIMINATOR_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        # Typer, outside standalone mode, turns typer.Exit and Ctrl-C (as Exit(130)) into a
        # returned exit code instead of raising.
        code = app(args=args, prog_name="discriminator", standalone_mode=False)
        if code == 130:
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except DiscriminatorError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {exc.one_line()}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        err_console.print("[red]interrupted:[/red] stopped; nothing was published", soft_wrap=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option values, missing arguments
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if debug:
            raise
        err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc} "
                          "(run again with --debug for the traceback)", soft_wrap=True)
        sys.exit(70)
