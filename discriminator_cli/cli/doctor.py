"""`discriminator doctor`: which binaries were found, their versions and capabilities."""

from __future__ import annotations

import typer
from rich.table import Table

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import out_console, print_json
from discriminator_cli.tools import doctor as run_doctor


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(json_output: JsonOption = False) -> None:
    """Check ffmpeg, ffprobe, Shaka Packager and (optional) Bento4."""
    reports = run_doctor()
    required_ok = all(r.ok for r in reports if r.name != "bento4")
    if json_output:
        print_json({"ok": required_ok, "tools": [r.as_dict() for r in reports]})
    else:
        table = Table("tool", "status", "version", "path", "detail")
        for r in reports:
            status = "[green]ok[/green]" if r.ok else (
                "[yellow]absent[/yellow]" if r.name == "bento4" else "[red]missing[/red]")
            caps = ", ".join(k.split(":", 1)[1] for k, v in r.capabilities.items() if v)
            detail = "; ".join(filter(None, [r.detail, f"has {caps}" if caps else ""]))
            table.add_row(r.name, status, r.version or "-", r.path or "-", detail)
        out_console.print(table)
    if not required_ok:
        raise typer.Exit(3)
