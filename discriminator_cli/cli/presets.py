"""`discriminator presets list|show`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from discriminator_cli.cli.options import JsonOption
from discriminator_cli.cli.output import out_console, plain, print_json
from discriminator_cli.encode.presets import available_presets, load_preset, preset_text

presets_app = typer.Typer(help="List and show encoding presets (TOML files).",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(presets_app, name="presets")


@presets_app.command("list")
def list_presets(json_output: JsonOption = False) -> None:
    """Every preset: bundled ones and those in the user preset folder."""
    rows: list[dict[str, Any]] = []
    for name, source in available_presets().items():
        preset = load_preset(name)
        rows.append({"name": name, "source": source, "description": preset.description,
                     "rungs": [f"{r.width}x{r.height}@{r.bitrate}" for r in preset.rungs]})
    if json_output:
        print_json(rows)
        return
    table = Table("name", "rungs", "description", "source")
    for row in rows:
        table.add_row(plain(row["name"]), ", ".join(row["rungs"]), plain(row["description"]),
                      plain(row["source"]))
    out_console.print(table)


@presets_app.command("show")
def show_preset(
    name: Annotated[str, typer.Argument(help="Preset name or path to a .toml file.")],
    json_output: JsonOption = False,
) -> None:
    """Print a preset (validated) as TOML, or as JSON with --json."""
    preset = load_preset(name)
    if json_output:
        print_json(preset.as_dict())
    else:
        print(preset_text(name), end="")
