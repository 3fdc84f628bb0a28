"""`discriminator doctor`: every external program, found or not, with version and capabilities."""

from __future__ import annotations

import typer
from rich.table import Table

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import out_console, print_json
from discriminator_cli.errors import MissingToolError
from discriminator_cli.tools import doctor as run_doctor


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(json_output: JsonOption = False) -> None:
    """Check ffmpeg, ffprobe, Shaka Packager, and the optional Bento4, Node.js, Chromium and npm
    players. Exits 3 when a required program is missing or lacks a capability."""
    reports = run_doctor()
    required_ok = all(r.ok for r in reports if r.required)
    if json_output:
        print_json({"ok": required_ok, "tools": [r.as_dict() for r in reports]})
    else:
        table = Table("tool", "status", "version", "path", "needed for", "detail")
        for r in reports:
            status = "[green]ok[/green]" if r.ok else (
                "[red]missing[/red]" if r.required else "[yellow]absent[/yellow]")
            caps = ", ".join(k.split(":", 1)[1] for k, v in r.capabilities.items() if v)
            detail = "; ".join(filter(None, [r.detail, f"has {caps}" if caps else ""]))
            table.add_row(r.name, status, r.version or "-", r.path or "-", r.needed_for, detail)
        out_console.print(table)
    if not required_ok:
        raise typer.Exit(MissingToolError.exit_code)
