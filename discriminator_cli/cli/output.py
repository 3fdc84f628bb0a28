"""Shared CLI output helpers: one stderr console for progress and messages, JSON on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

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
