"""The progress interface the library reports to; the CLI renders it with rich."""

from __future__ import annotations

from typing import Protocol


class ProgressSink(Protocol):
    def start(self, label: str, total: float) -> int: ...

    def update(self, task: int, completed: float) -> None: ...

    def finish(self, task: int) -> None: ...


class NullProgress:
    """Reports nowhere (library use, --quiet, --json)."""

    def start(self, label: str, total: float) -> int:
        return 0

    def update(self, task: int, completed: float) -> None:
        return None

    def finish(self, task: int) -> None:
        return None
