"""Option definitions shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print every command's argv; run "
                                            "nothing.")]
