"""Rich progress bars (with ETA) behind the library's ProgressSink interface."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.progress import (
    BarColumn,
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


def _amount(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 1e6:.0f} MB"
    if unit == "s":
        return f"{value:.1f} s"
    return f"{value:.0f} {unit}"


class CountColumn(ProgressColumn):
    """Done / total in the task's own unit: seconds of media, MB, frames."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "s")
        total = _amount(task.total or 0, unit)
        return Text(f"{_amount(task.completed, unit).split()[0]}/{total}")


class RateColumn(ProgressColumn):
    """How fast it goes: x realtime for media, MB/s for bytes, frames/s for frames."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        if not speed:
            return Text("")
        unit = task.fields.get("unit", "s")
        if unit == "s":
            return Text(f"{speed:.2f}x")
        if unit == "B":
            return Text(f"{speed / 1e6:.0f} MB/s")
        return Text(f"{speed:.1f} {unit}/s")


class RichProgress:
    def __init__(self, *, prefix: str = "", enabled: bool = True) -> None:
        """Every bar shows done/total and a rate in its task's unit (ProgressSink.start)."""
        self.prefix = prefix
        self._progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                  TextColumn("{task.percentage:>3.0f}%"), CountColumn(),
                                  RateColumn(), TimeElapsedColumn(),
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

    def start(self, label: str, total: float, unit: str = "s") -> int:
        with self._lock:
            description = f"{self.prefix}{label}"
            return int(self._progress.add_task(description, total=max(total, 1e-6), unit=unit))

    def update(self, task: int, completed: float) -> None:
        self._progress.update(TaskID(task), completed=completed)

    def finish(self, task: int) -> None:
        found = next(t for t in self._progress.tasks if t.id == TaskID(task))
        self._progress.update(TaskID(task), completed=found.total)
