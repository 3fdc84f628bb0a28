"""Many inputs, one job each: the result type that encode and lip-sync batches share.

A bad input never stops the others; the batch records it as a Failure and goes on. The CLI turns
a BatchOutcome into "N of M failed" and an exit code in one place (cli/output.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from discriminator_cli.errors import BadInputError, DiscriminatorError

T = TypeVar("T")


@dataclass
class Failure:
    path: Path                       # the input that failed (a source video, a face)
    error: DiscriminatorError
    role: str = "source"             # the JSON key naming the input: "source" or "face"

    def as_dict(self) -> dict[str, str]:
        return {self.role: str(self.path), "error": self.error.one_line()}


@dataclass
class BatchOutcome(Generic[T]):
    results: list[T] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.results) + len(self.failures)

    @property
    def exit_code(self) -> int:
        """0, or the most severe failure's code (a missing tool outranks a bad file)."""
        return max((f.error.exit_code for f in self.failures), default=0)


def require_unique_stems(paths: Iterable[Path], *, what: str, named: str) -> None:
    """Outputs are named after their input's stem: two inputs must not share one."""
    stems = [p.stem for p in paths]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise BadInputError(f"two {what} share a name ({', '.join(clashes)})",
                            hint=f"rename one; outputs are {named}")
