"""The one error hierarchy. The CLI maps each class to an exit code and a one-line message."""

from __future__ import annotations

from pathlib import Path


class DiscriminatorError(Exception):
    """Base class: `message` says what went wrong, `hint` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, path: Path | str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = str(path) if path is not None else None

    def as_dict(self) -> dict[str, object]:
        """What `--json` prints about the error."""
        return {"type": type(self).__name__, "path": self.path, "problem": self.message,
                "hint": self.hint}

    def one_line(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text += f" — {self.hint}"
        return " ".join(text.split())


class BadInputError(DiscriminatorError):
    """The user's input (a file, an option, a preset) cannot be used."""

    exit_code = 2


class PresetError(BadInputError):
    """A preset file is missing, malformed or holds an invalid value."""


class MissingToolError(DiscriminatorError):
    """A required binary (ffmpeg, ffprobe, packager, Bento4) is not available."""

    exit_code = 3


class MissingExtraError(DiscriminatorError):
    """An optional Python dependency group is not installed."""

    exit_code = 3


class ToolFailedError(DiscriminatorError):
    """A subprocess exited non-zero; carries the tail of its stderr."""

    exit_code = 4

    def __init__(self, message: str, *, argv: list[str], returncode: int, stderr: str = "",
                 hint: str | None = None, path: Path | str | None = None):
        super().__init__(message, hint=hint, path=path)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "argv": self.argv, "returncode": self.returncode,
                "stderr_tail": self.stderr[-2000:]}

    def one_line(self) -> str:
        last = [line for line in self.stderr.strip().splitlines() if line.strip()]
        detail = f" ({last[-1].strip()})" if last else ""
        base = super().one_line()
        return base + detail


class OutputExistsError(BadInputError):
    """The destination exists and --force was not given."""


class ValidationFailedError(DiscriminatorError):
    """A package failed validation (used when another command validates what it made)."""

    exit_code = 1


class QuantizationRefusedError(DiscriminatorError):
    """A quantised model is too far from fp32 on held-out frames; nothing was written.

    `report` carries the measurements (a lipsync.quantize.QuantizeReport)."""

    exit_code = 1

    def __init__(self, message: str, *, report: object, hint: str | None = None,
                 path: Path | str | None = None):
        super().__init__(message, hint=hint, path=path)
        self.report = report

    def as_dict(self) -> dict[str, object]:
        as_dict = getattr(self.report, "as_dict", None)
        return {**super().as_dict(), "report": as_dict() if callable(as_dict) else None}
