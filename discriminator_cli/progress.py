"""The progress interface the library reports to; the CLI renders it with rich."""

from __future__ import annotations

from typing import Protocol


class ProgressSink(Protocol):
    """`unit` names what `total` counts: "s" (seconds of media), "B" (bytes), "frames"..."""

    def start(self, label: str, total: float, unit: str = "s") -> int: ...

    def update(self, task: int, completed: float) -> None: ...

    def finish(self, task: int) -> None: ...


class NullProgress:
    """Reports nowhere (library use, --quiet, --json)."""

    def start(self, label: str, total: float, unit: str = "s") -> int:
        return 0

    def update(self, task: int, completed: float) -> None:
        return None

    def finish(self, task: int) -> None:
        return None
