"""Rich progress bars (with ETA) behind the library's ProgressSink interface."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from discriminator_cli.cli.output import err_console


class RateColumn(ProgressColumn):
    """Items per second (frames, mel windows, layers): how fast a long phase is going."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s", style="progress.data.speed")


class RichProgress:
    def __init__(self, *, prefix: str = "", enabled: bool = True, counts: bool = False) -> None:
        """counts: show done/total and a rate for phases that count items (frames, layers)."""
        self.prefix = prefix
        columns: list[str | ProgressColumn] = [TextColumn("{task.description}"), BarColumn()]
        columns += [MofNCompleteColumn(), RateColumn()] if counts else [
            TextColumn("{task.percentage:>3.0f}%")]
        self._progress = Progress(*columns, TimeElapsedColumn(),
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
        total = self._progress.tasks[[t.id for t in self._progress.tasks].index(task)].total
        self._progress.update(TaskID(task), completed=total)
