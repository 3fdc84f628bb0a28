"""Many faces with one loaded model: a list of faces, a folder, or a watched folder that turns
each photo dropped into it into a clip (the documentary's per-viewer server)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from discriminator_cli.batch import BatchOutcome, Failure, require_unique_stems
from discriminator_cli.errors import BadInputError, DiscriminatorError
from discriminator_cli.lipsync.engine import LipSyncEngine
from discriminator_cli.lipsync.faces import FaceDetector
from discriminator_cli.lipsync.media_io import PHOTO_SUFFIXES
from discriminator_cli.lipsync.pipeline import ClipResult, LipSyncOptions, lipsync_clip
from discriminator_cli.progress import ProgressSink
from discriminator_cli.publish import STAGING_PREFIX
from discriminator_cli.runner import CommandRunner

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
WATCH_POLL_SECONDS = 0.25


def faces_in(folder: Path) -> list[Path]:
    """Photos and videos directly inside a folder (hidden and staging files left out)."""
    if not folder.is_dir():
        raise BadInputError("not a folder", path=folder, hint="pass an existing folder")
    return sorted(p for p in folder.iterdir() if _is_face_file(p))


def _is_face_file(path: Path) -> bool:
    return (path.is_file() and not path.name.startswith(".")
            and path.suffix.lower() in PHOTO_SUFFIXES + VIDEO_SUFFIXES)


def output_for(face: Path, out_dir: Path) -> Path:
    return out_dir / f"{face.stem}.mp4"


def lipsync_many(engine: LipSyncEngine, faces: Iterable[Path], audio: Path, out_dir: Path,
                 detector: FaceDetector, options: LipSyncOptions, *,
                 runner: CommandRunner | None = None,
                 progress: ProgressSink | None = None) -> BatchOutcome[ClipResult]:
    """One clip per face into out_dir/<face stem>.mp4; a bad face does not stop the others."""
    faces = list(faces)
    require_unique_stems(faces, what="faces", named="OUT_DIR/NAME.mp4")
    outcome: BatchOutcome[ClipResult] = BatchOutcome()
    for face in faces:
        try:
            outcome.results.append(lipsync_clip(engine, face, audio, output_for(face, out_dir),
                                                detector, options, runner=runner,
                                                progress=progress))
        except DiscriminatorError as exc:
            outcome.failures.append(Failure(face, exc, role="face"))
    return outcome


def watch_folder(engine: LipSyncEngine, folder: Path, audio: Path, out_dir: Path,
                 detector: FaceDetector, options: LipSyncOptions, *,
                 on_clip: Callable[[ClipResult], None],
                 on_failure: Callable[[Failure], None],
                 should_stop: Callable[[], bool] = lambda: False,
                 max_clips: int | None = None,
                 runner: CommandRunner | None = None,
                 poll_seconds: float = WATCH_POLL_SECONDS) -> int:
    """Turn every new photo in `folder` into a clip until `should_stop()` (or Ctrl-C).

    A file is taken once its size and mtime held still for one poll (an upload or a copy in
    progress is left alone). Files that already have a clip newer than themselves are skipped,
    so a restarted server does not redo its work. Returns the number of clips made.
    """
    if not folder.is_dir():
        raise BadInputError("watch folder not found", path=folder,
                            hint="create it, or pass an existing folder to --watch")
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[Path, tuple[int, int]] = {}
    done: set[tuple[Path, int, int]] = set()
    made = 0
    while not should_stop():
        for face in faces_in(folder):
            if face.name.startswith(STAGING_PREFIX):
                continue
            try:
                stat = face.stat()
            except FileNotFoundError:  # removed or renamed since the listing: not ours now
                seen.pop(face, None)
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if (face, *signature) in done:
                continue
            if seen.get(face) != signature:
                seen[face] = signature  # changed since the last poll: wait for it to settle
                continue
            done.add((face, *signature))
            output = output_for(face, out_dir)
            if output.exists() and output.stat().st_mtime_ns >= stat.st_mtime_ns:
                continue
            try:
                result = lipsync_clip(engine, face, audio, output, detector,
                                      _forcing(options), runner=runner)
            except DiscriminatorError as exc:
                on_failure(Failure(face, exc, role="face"))
                continue
            made += 1
            on_clip(result)
            if max_clips is not None and made >= max_clips:
                return made
        time.sleep(poll_seconds)
    return made


def _forcing(options: LipSyncOptions) -> LipSyncOptions:
    """A photo replaced in the watched folder replaces its clip."""
    from dataclasses import replace

    return replace(options, force=True)
