"""`discriminator validate PATH...`: check DASH + HLS packages; the exit code gates CI."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import out_console, print_json
from discriminator_cli.publish import staged_file
from discriminator_cli.validate import Report, validate_paths


class OutputFormat(StrEnum):
    table = "table"
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Package directories, .mpd or .m3u8 "
                                                "files.")],
    output_format: Annotated[OutputFormat | None, typer.Option(
        "--format", help="table: for a terminal (the default there); text: one finding per "
        "line, FILE:LOCATION: severity check-id: message, never wrapped (the default when "
        "stdout is not a terminal); json: as --json.", show_default=False)] = None,
    json_output: JsonOption = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report "
                                               "here (one testsuite per manifest).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
) -> None:
    """Check packages down to the MP4 boxes. Exit 0: no errors (warnings too with --strict);
    1: errors found; 2: nothing usable to check."""
    report = validate_paths(paths)
    if junit is not None:
        with staged_file(junit, force=True, flag="--junit") as staging:
            staging.write_bytes(report.junit_xml(strict=strict))
    chosen = OutputFormat.json if json_output else output_format or (
        OutputFormat.table if out_console.is_terminal else OutputFormat.text)
    if chosen is OutputFormat.json:
        print_json(report.as_dict(strict=strict))
    elif chosen is OutputFormat.text:
        # Plain writes: a log or CI keeps each finding on one line, whatever its length.
        sys.stdout.write(report.text() + "\n")
        sys.stdout.flush()
    else:
        _print_table(report)
    code = report.exit_code(strict=strict)
    if code:
        raise typer.Exit(code)


def _print_table(report: Report) -> None:
    if not report.findings:
        out_console.print(f"[green]valid[/green]: {report.summary_line()}")
        return
    # Off a terminal out_console is wide enough that the table is never cut at 80 columns.
    out_console.print(report.table())
