"""Rich progress bars (with ETA) behind the library's ProgressSink interface."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from discriminator_cli.cli.output import err_console


class RichProgress:
    def __init__(self, *, prefix: str = "", enabled: bool = True) -> None:
        self.prefix = prefix
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                                  TextColumn("ETA"), TimeRemainingColumn(),
                                  console=err_console, transient=False,
                                  # no bars in logs and pipes: they'd only add noise
                                  disable=not (enabled and err_console.is_terminal))
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def child(self, prefix: str) -> RichProgress:
        """The same display, with task labels prefixed (one source of several)."""
        other = RichProgress.__new__(RichProgress)
        other.prefix, other._progress, other._lock = prefix, self._progress, self._lock
        return other

    def start(self, label: str, total: float) -> int:
        with self._lock:
            description = f"{self.prefix}{label}"
            return int(self._progress.add_task(description, total=max(total, 1e-6)))

    def update(self, task: int, completed: float) -> None:
        self._progress.update(TaskID(task), completed=completed)

    def finish(self, task: int) -> None:
        found = next(t for t in self._progress.tasks if t.id == TaskID(task))
        self._progress.update(TaskID(task), completed=found.total)
