"""`discriminator doctor`: every external program, found or not, with version and capabilities."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import out_console, plain, print_json
from discriminator_cli.errors import MissingToolError
from discriminator_cli.tools import ToolReport
from discriminator_cli.tools import doctor as run_doctor


class DoctorFormat(StrEnum):
    table = "table"
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def _status(report: ToolReport) -> str:
    if report.ok:
        return "ok"
    if report.required:
        return "missing"
    return "absent" if report.path is None else "unusable"


def _detail(report: ToolReport) -> str:
    caps = ", ".join(k.split(":", 1)[1] for k, v in report.capabilities.items() if v)
    return "; ".join(filter(None, [report.detail, f"has {caps}" if caps else ""]))


def text_line(report: ToolReport) -> str:
    """One line a log can hold: TOOL: status version path (needed for ...) — detail."""
    line = (f"{report.name}: {_status(report)} {report.version or '-'} {report.path or '-'} "
            f"(needed for {report.needed_for})")
    detail = _detail(report)
    return f"{line} — {detail}" if detail else line


def doctor(
    json_output: JsonOption = False,
    output_format: Annotated[DoctorFormat, typer.Option(
        "--format", help="table (on a terminal), text (one line per program, for logs) or "
                         "json (same as --json).")] = DoctorFormat.table,
) -> None:
    """Check ffmpeg, ffprobe, Shaka Packager, and the optional Bento4, Node.js, Chromium and npm
    players. Exits 3 when a required program is missing or lacks a capability."""
    reports = run_doctor()
    required_ok = all(r.ok for r in reports if r.required)
    if json_output or output_format is DoctorFormat.json:
        print_json({"ok": required_ok, "tools": [r.as_dict() for r in reports]})
    elif output_format is DoctorFormat.text:
        for report in reports:
            print(text_line(report))
    else:
        table = Table("tool", "status", "version", "path", "needed for", "detail")
        colours = {"ok": "green", "missing": "red", "absent": "yellow"}
        for r in reports:
            status = _status(r)
            table.add_row(r.name, f"[{colours[status]}]{status}[/{colours[status]}]",
                          plain(r.version or "-"), plain(r.path or "-"), r.needed_for,
                          plain(_detail(r)))
        out_console.print(table)
    if not required_ok:
        raise typer.Exit(MissingToolError.exit_code)
