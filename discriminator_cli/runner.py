"""One runner for every subprocess: ffmpeg, ffprobe, Shaka Packager and Bento4.

Argv lists only (never a shell string), stdin isolated, stderr kept for the error message,
`--dry-run` prints the exact argv instead of running it, and ffmpeg's `-progress pipe:1`
stream is turned into progress callbacks.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from discriminator_cli.errors import ToolFailedError

ProgressCallback = Callable[[float], None]  # seconds of media done
Echo = Callable[[str], None]

_STDERR_KEEP_CHARS = 20_000


@dataclass
class RunResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    dry_run: bool = False


@dataclass
class CommandRunner:
    """Runs argv lists. `dry_run` prints them instead; `history` records every argv run."""

    dry_run: bool = False
    echo: Echo | None = None
    history: list[list[str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        what: str,
        cwd: Path | None = None,
        path: Path | str | None = None,
        hint: str | None = None,
        on_progress: ProgressCallback | None = None,
        env: dict[str, str] | None = None,
        mutating: bool = True,
        check: bool = True,
    ) -> RunResult:
        """Run argv; raise ToolFailedError (with stderr) on a non-zero exit.

        `mutating=False` marks read-only commands (ffprobe, version probes) that still run
        under --dry-run, because planning the real commands needs their answers.
        """
        args = [os.fspath(a) for a in argv]
        if self.dry_run and mutating:
            if self.echo:
                where = f"cd {shlex.quote(str(cwd))} && " if cwd else ""
                self.echo(where + shlex.join(args))
            return RunResult(args, 0, "", "", dry_run=True)
        if on_progress is not None:
            return self._run_with_progress(args, what=what, cwd=cwd, path=path, hint=hint,
                                           env=env, on_progress=on_progress)
        with self._lock:
            self.history.append(args)
        return self._run_simple(args, what=what, cwd=cwd, path=path, hint=hint, env=env,
                                check=check)

    @contextlib.contextmanager
    def open(self, argv: Sequence[str | os.PathLike[str]], *, what: str,
             stdin: bool = False, stdout: bool = False, path: Path | str | None = None,
             hint: str | None = None, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> Iterator[StreamingProcess]:
        """Run argv with binary stdin and/or stdout pipes for the duration of the block.

        On a clean exit of the block stdin is closed, the process awaited, and a non-zero exit
        raises ToolFailedError with its stderr; on an exception the process is killed.
        Under --dry-run the argv is printed and nothing runs (callers check `dry_run` first).
        """
        args = [os.fspath(a) for a in argv]
        if self.dry_run:
            if self.echo:
                self.echo(shlex.join(args))
            raise RuntimeError("CommandRunner.open() cannot run under --dry-run")
        with self._lock:
            self.history.append(args)
        try:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, cwd=cwd, env=env)
        except FileNotFoundError as exc:
            raise ToolFailedError(f"{what}: cannot execute {args[0]}", argv=args, returncode=127,
                                  hint="run `discriminator doctor`", path=path) from exc
        chunks: list[bytes] = []
        stream = StreamingProcess(proc, chunks)
        drain: threading.Thread | None = None
        try:
            # Everything after Popen sits inside the try, so a Ctrl-C at any point kills the
            # tool instead of orphaning it (an orphaned encoder would re-create its output).
            # stderr is drained on a thread so a chatty tool can never block on a full pipe.
            assert proc.stderr is not None
            stderr_pipe = proc.stderr
            drain = threading.Thread(target=lambda: chunks.extend(stderr_pipe), daemon=True)
            drain.start()
            yield stream
            if proc.stdin:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            if proc.stdout:
                proc.stdout.close()
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if drain is not None:
                drain.join(timeout=5)
        if proc.returncode != 0 and not stream.stopped:
            raise ToolFailedError(f"{what} failed (exit {proc.returncode})", argv=args,
                                  returncode=proc.returncode, stderr=stream.stderr_text(),
                                  hint=hint, path=path)

    def note(self, text: str) -> None:
        """Under --dry-run, say why a command that would normally run is not in the listing."""
        if self.dry_run and self.echo:
            self.echo(f"# {text}")

    def _run_simple(self, args: list[str], *, what: str, cwd: Path | None,
                    path: Path | str | None, hint: str | None,
                    env: dict[str, str] | None, check: bool = True) -> RunResult:
        try:
            proc = subprocess.run(args, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace", env=env, check=False)
        except FileNotFoundError as exc:
            raise ToolFailedError(f"{what}: cannot execute {args[0]}", argv=args, returncode=127,
                                  hint="run `discriminator doctor`", path=path) from exc
        if check and proc.returncode != 0:
            raise ToolFailedError(f"{what} failed (exit {proc.returncode})", argv=args,
                                  returncode=proc.returncode,
                                  stderr=proc.stderr[-_STDERR_KEEP_CHARS:], hint=hint, path=path)
        return RunResult(args, proc.returncode, proc.stdout, proc.stderr)

    def _run_with_progress(self, args: list[str], *, what: str, cwd: Path | None,
                           path: Path | str | None, hint: str | None,
                           env: dict[str, str] | None,
                           on_progress: ProgressCallback) -> RunResult:
        """ffmpeg with `-progress pipe:1`: stdout carries key=value progress blocks."""
        with self.open(args, what=what, stdout=True, path=path, hint=hint, cwd=cwd,
                       env=env) as stream:
            for line in stream.stdout:
                key, _, value = line.decode(errors="replace").strip().partition("=")
                if key == "out_time_us" and value.lstrip("-").isdigit():
                    on_progress(max(0, int(value)) / 1_000_000)
        return RunResult(args, 0, "", stream.stderr_text())


@dataclass
class StreamingProcess:
    """A running tool with binary pipes (raw frames in or out); see CommandRunner.open."""

    process: subprocess.Popen[bytes]
    stderr_chunks: list[bytes]
    stopped: bool = False

    def stderr_text(self) -> str:
        return b"".join(self.stderr_chunks).decode(errors="replace")[-_STDERR_KEEP_CHARS:]

    def stop(self) -> None:
        """End the tool on purpose (a reader that needs no more frames); its exit status is
        then not an error."""
        self.stopped = True
        self.process.terminate()

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def read_exactly(self, size: int) -> bytes | None:
        """The next `size` bytes of stdout, or None at a clean end of stream."""
        data = self.stdout.read(size)
        if not data:
            return None
        while len(data) < size:
            more = self.stdout.read(size - len(data))
            if not more:
                return None  # a partial last frame: the stream was cut short
            data += more
        return data
