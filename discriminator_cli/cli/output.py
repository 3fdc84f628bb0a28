"""Shared CLI output: one stderr console for progress and messages, JSON on stdout.

Every piece of text that comes from the user or a file (paths, URIs, tool output, messages that
quote them) is printed as a rich `Text`, never parsed as markup: a file named `take[bold].mov`
prints as itself. Off a terminal (logs, CI) nothing is cut or wrapped at 80 columns.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from discriminator_cli.batch import BatchOutcome

# Wide enough that no log line or table is ever wrapped when output goes to a file or a pipe.
LOG_WIDTH = 10_000


class _Consoles:
    """Consoles made on first use, so they see the streams the process really has (tests
    swap sys.stdout/sys.stderr)."""

    @staticmethod
    def make(*, stderr: bool) -> Console:
        console = Console(stderr=stderr, highlight=False)
        if console.is_terminal:
            return console
        return Console(stderr=stderr, highlight=False, width=LOG_WIDTH, soft_wrap=True)


# Progress bars and messages go to stderr so that `--json` stdout stays machine-readable.
err_console = _Consoles.make(stderr=True)
out_console = _Consoles.make(stderr=False)


def plain(value: object) -> Text:
    """User or file text for a table cell or a message: printed as is, never as markup."""
    return Text(str(value))


def styled(label: str, style: str, message: object) -> Text:
    return Text.assemble((label, style), " ", str(message))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def info(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        err_console.print(plain(message), soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(styled("warning:", "yellow", message), soft_wrap=True)


def error(message: str, *, label: str = "error:") -> None:
    err_console.print(styled(label, "red", message), soft_wrap=True)


def finish_batch(outcome: BatchOutcome[Any], *, noun: str, json_output: bool) -> None:
    """Report a batch's failures ("N of M failed") and exit with the worst failure's code."""
    for failure in outcome.failures:
        error(failure.error.one_line())
    if not outcome.failures:
        return
    if not json_output:
        rest = ("nothing was published" if len(outcome.failures) == outcome.total
                else "the others were published")
        info(f"{len(outcome.failures)} of {outcome.total} {noun} failed; {rest}")
    raise typer.Exit(outcome.exit_code)
