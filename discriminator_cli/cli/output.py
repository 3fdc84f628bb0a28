"""Shared CLI output helpers: one stderr console for progress and messages, JSON on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from discriminator_cli.batch import BatchOutcome

# Progress bars and messages go to stderr so that `--json` stdout stays machine-readable.
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def info(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        err_console.print(message)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}")


def finish_batch(outcome: BatchOutcome[Any], *, noun: str, json_output: bool) -> None:
    """Report a batch's failures ("N of M failed") and exit with the worst failure's code."""
    for failure in outcome.failures:
        err_console.print(f"[red]error:[/red] {failure.error.one_line()}", soft_wrap=True)
    if not outcome.failures:
        return
    if not json_output:
        err_console.print(f"{len(outcome.failures)} of {outcome.total} {noun} failed; the "
                          "others were published")
    raise typer.Exit(outcome.exit_code)
