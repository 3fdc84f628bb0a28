"""How `--help` names option values.

Typer 0.29 (which no longer uses click) prints Python annotations as value placeholders
(`<bool>` after a flag, `<list[Path]>`, `<str>`) and shows required arguments as `{name}` in
the usage line. People reading the help want the usual conventions: flags take no value,
values are named PATH / TEXT / INTEGER / NUMBER, choices are listed `a|b|c`, arguments are
upper case. Typer offers no setting for this, so the three display hooks are replaced here, in
one place; tests/test_cli_help.py fails if a Typer upgrade changes these hooks.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from typer import core, rich_utils

# Help read in a pipe or a log (CI, `| less`) is not folded at 80 columns, which would split
# choices like auto|fp32|bf16|int8; a terminal keeps its own width.
HELP_WIDTH_OFF_TERMINAL = 120

_NAMES = {"str": "TEXT", "path": "PATH", "int": "INTEGER", "int range": "INTEGER",
          "float": "NUMBER", "float range": "NUMBER", "bool": "BOOLEAN"}
_LIST = re.compile(r"^list\[(.*)\]$")


def value_name(label: str) -> str:
    """Typer's '<list[Path]>' / '<int range>' / '<a|b>' -> 'PATH...' / 'INTEGER' / 'a|b'."""
    inner = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    repeated = _LIST.match(inner)
    if repeated:
        return value_name(repeated.group(1)) + "..."
    if "|" in inner:
        return inner  # the choices themselves
    return _NAMES.get(inner.lower(), inner.upper())


_original_display_type = core._TyperParameter.display_type


def _display_type(self: Any, ctx: Any) -> str:
    return value_name(_original_display_type(self, ctx))


def _option_display_type_rich(self: Any, ctx: Any) -> str | None:
    if getattr(self, "is_flag", False) or getattr(self, "count", False):
        return None  # --force, --json: a flag takes no value
    return str(self.display_type(ctx))


def _argument_name(self: Any) -> str:
    name = str(self.metavar or self.name).upper()
    return name if self.nargs == 1 or name.endswith("...") else name + "..."


def _argument_usage(self: Any) -> str:
    name = _argument_name(self)
    return name if self.required else f"[{name}]"


def install() -> None:
    if rich_utils.MAX_WIDTH is None and not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        rich_utils.MAX_WIDTH = HELP_WIDTH_OFF_TERMINAL
    core._TyperParameter.display_type = _display_type  # type: ignore[method-assign]
    core.TyperOption.display_type_rich = _option_display_type_rich  # type: ignore[method-assign]
    core.TyperArgument._rich_display_name = _argument_name  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
