"""The `discriminator` Typer application and the one exception-to-message map."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import NoReturn

import typer

from discriminator_cli import __version__
from discriminator_cli.cli import (
    doctor,
    encode,
    lipsync,
    mel,
    players,
    presets,
    preview,
    quantize,
    sample,
    serve,
    validate,
    verify,
)
from discriminator_cli.cli import help as help_conventions
from discriminator_cli.cli.output import error, print_json
from discriminator_cli.errors import DiscriminatorError

help_conventions.install()

app = typer.Typer(
    name="discriminator",
    help="Media preparation (x264 ladder, DASH + HLS) and offline Wav2Lip lip-sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (doctor, presets, sample, encode, validate, preview, players, mel, lipsync,
               quantize, verify, serve):
    module.register(app)


def _version_callback(value: bool) -> None:
    if value:
        print(f"discriminator {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="On an error, also print the Python "
                               "traceback (the message and exit code stay the same). Accepted "
                               "anywhere on the command line, or set DISCRIMINATOR_DEBUG=1."),
) -> None:
    """Exit codes: 0 ok, 1 validation findings / a refused result, 2 bad input, 3 a missing
    tool or extra, 4 a tool failed, 70 an internal error, 130 interrupted."""


def _wants_json(args: list[str]) -> bool:
    if "--json" in args or "--format=json" in args:
        return True
    return any(a == "--format" and b == "json" for a, b in itertools.pairwise(args))


def _fail(code: int, message: str, *, label: str, json_output: bool, debug: bool,
          details: dict[str, object] | None = None) -> NoReturn:
    """The one way a command ends in error: the traceback with --debug (and only then), one
    line on stderr, JSON on stdout with --json, and the exit code of the error's class."""
    if debug:
        traceback.print_exc()
    error(message, label=label)
    if json_output:
        print_json({"error": {"message": message, **(details or {})}, "exit_code": code})
    sys.exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, a cancelled CI job, `docker stop`): unwound exactly as Ctrl-C is,
    so child processes are killed and staging folders removed, but told apart at the end."""


_signals: list[int] = []


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _signals.append(signum)
    raise Terminated


def _interrupted(json_output: bool, debug: bool) -> NoReturn:
    if _signals:
        _fail(128 + signal.SIGTERM, "terminated (SIGTERM); nothing was published",
              label="interrupted:", json_output=json_output, debug=debug,
              details={"type": "Terminated"})
    _fail(130, "stopped; nothing was published", label="interrupted:",
          json_output=json_output, debug=debug, details={"type": "Interrupted"})


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    debug = "--debug" in args or os.environ.get("DISCRIMINATOR_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    json_output = _wants_json(args)
    try:
        # Typer, outside standalone mode, turns typer.Exit and Ctrl-C (as Exit(130)) into a
        # returned exit code instead of raising.
        code = app(args=args, prog_name="discriminator", standalone_mode=False)
        if code == 130:
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except DiscriminatorError as exc:
        _fail(exc.exit_code, exc.one_line(), label="error:", json_output=json_output,
              debug=debug, details=exc.as_dict())
    except KeyboardInterrupt:
        _interrupted(json_output, debug)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail(130, "aborted", label="interrupted:", json_output=json_output, debug=debug,
              details={"type": "Aborted"})
    except typer.TyperException as exc:  # usage errors: bad option values, missing arguments
        code = getattr(exc, "exit_code", 2)
        show = getattr(exc, "show", None)
        if callable(show) and not json_output:
            show()
            sys.exit(code)
        _fail(code, str(exc), label="error:", json_output=json_output, debug=debug,
              details={"type": "UsageError"})
    except Exception as exc:
        _fail(70, f"{type(exc).__name__}: {exc} (a bug: please report it; run again with "
              "--debug for the traceback)", label="internal error:", json_output=json_output,
              debug=debug, details={"type": type(exc).__name__})
