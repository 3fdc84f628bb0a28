"""Several sources at once: each is its own encode job; one failing does not stop the others."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from discriminator_cli.batch import BatchOutcome, Failure, require_unique_stems
from discriminator_cli.encode.engine import make_encoder
from discriminator_cli.encode.image_sequence import is_sequence, sequence_name
from discriminator_cli.encode.job import EncodeOptions, EncodeResult, encode_source, find_sources
from discriminator_cli.errors import BadInputError, DiscriminatorError
from discriminator_cli.progress import NullProgress, ProgressSink
from discriminator_cli.runner import CommandRunner


def plan_sources(paths: list[Path], *, out: Path | None, media_root: Path) -> dict[Path, Path]:
    """source -> package directory, for files and folders of them (media_root/NAME each)."""
    sources = find_sources(paths)
    if out is not None and len(sources) > 1:
        raise BadInputError("--out names one package but several sources were given",
                            hint="drop --out (each source goes to media/NAME) or pass one source")
    require_unique_stems(sources, what="sources", named="media/NAME")
    return {source: out or media_root / (sequence_name(source) if is_sequence(source)
                                         else source.stem) for source in sources}


def encode_many(outputs: dict[Path, Path], options: EncodeOptions, *, jobs: int = 1,
                runner: CommandRunner | None = None,
                progress_for: Callable[[Path], ProgressSink] | None = None,
                ) -> BatchOutcome[EncodeResult]:
    """Encode each source into its package directory, `jobs` at a time.

    A single source raises its error as is (there is nothing else to report); with several,
    each failure is recorded and the others are still published.
    """
    runner = runner or CommandRunner()
    encoder = make_encoder(options)  # one per batch: Ctrl-C cancels every film's work

    def run_one(source: Path) -> EncodeResult:
        progress = progress_for(source) if progress_for else NullProgress()
        return encode_source(source, replace(options, out_dir=outputs[source]),
                             runner=runner, progress=progress, encoder=encoder)

    outcome: BatchOutcome[EncodeResult] = BatchOutcome()
    if len(outputs) == 1:
        outcome.results.append(run_one(next(iter(outputs))))
        return outcome
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {source: pool.submit(run_one, source) for source in outputs}
        try:
            for source, future in futures.items():
                try:
                    outcome.results.append(future.result())
                except DiscriminatorError as exc:
                    outcome.failures.append(Failure(source, exc, role="source"))
        except KeyboardInterrupt:
            # The films still running stop before publishing (engines check before the
            # rename); the ones not started never start.
            encoder.cancel()
            for future in futures.values():
                future.cancel()
            raise
    return outcome
