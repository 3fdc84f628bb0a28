"""`discriminator validate PATH...`: check DASH + HLS packages; the exit code gates CI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import out_console, print_json
from discriminator_cli.publish import staged_file
from discriminator_cli.validate import validate_paths


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Package directories, .mpd or .m3u8 "
                                                "files.")],
    json_output: JsonOption = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report "
                                               "here (one testsuite per manifest).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
) -> None:
    """Check packages down to the MP4 boxes. Exit 0: no errors (warnings too with --strict);
    1: errors found; 2: nothing usable to check."""
    report = validate_paths(paths)
    if junit is not None:
        with staged_file(junit, force=True) as staging:
            staging.write_bytes(report.junit_xml(strict=strict))
    if json_output:
        print_json(report.as_dict(strict=strict))
    elif report.findings:
        out_console.print(report.table())
    else:
        out_console.print(f"[green]valid[/green]: {report.summary_line()}")
    code = report.exit_code(strict=strict)
    if code:
        raise typer.Exit(code)
