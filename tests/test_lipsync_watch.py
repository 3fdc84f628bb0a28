"""Watch mode's polling rules, without the model: files that vanish, uploads in progress."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.lipsync

from discriminator_cli.batch import Failure  # noqa: E402
from discriminator_cli.lipsync import batch  # noqa: E402
from discriminator_cli.lipsync.faces import FixedBox  # noqa: E402
from discriminator_cli.lipsync.pipeline import LipSyncOptions  # noqa: E402


def _polls(count: int):  # type: ignore[no-untyped-def]
    state = {"left": count}

    def should_stop() -> bool:
        state["left"] -= 1
        return state["left"] < 0

    return should_stop


def test_a_photo_removed_between_listing_and_stat_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setattr(batch, "faces_in", lambda folder: [folder / "gone.jpg"])
    made = batch.watch_folder(None, inbox, tmp_path / "a.wav", tmp_path / "out",  # type: ignore[arg-type]
                              FixedBox((0, 0, 8, 8)), LipSyncOptions(),
                              on_clip=lambda r: None, on_failure=lambda f: None,
                              should_stop=_polls(3), poll_seconds=0.0)
    assert made == 0


def test_a_growing_file_waits_until_its_size_settles(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    photo = inbox / "viewer.jpg"
    photo.write_bytes(b"x" * 10)
    taken: list[tuple[int, int]] = []

    def fake_clip(engine, face, audio, output, detector, options, runner=None):  # type: ignore[no-untyped-def]
        taken.append((poll["n"], face.stat().st_size))
        raise batch.BadInputError("stop here", path=face)

    poll = {"n": 0}

    def should_stop() -> bool:
        poll["n"] += 1
        if poll["n"] <= 3:  # an upload still writing: the file grows on each of 3 polls
            with photo.open("ab") as handle:
                handle.write(b"y" * 10)
        return poll["n"] > 6

    monkeypatch.setattr(batch, "lipsync_clip", fake_clip)
    failures: list[Failure] = []
    batch.watch_folder(None, inbox, tmp_path / "a.wav", tmp_path / "out",  # type: ignore[arg-type]
                       FixedBox((0, 0, 8, 8)), LipSyncOptions(), on_clip=lambda r: None,
                       on_failure=failures.append, should_stop=should_stop, poll_seconds=0.0)
    assert taken == [(4, 40)]  # once, complete, at the first poll that saw no change
    assert [f.path.name for f in failures] == ["viewer.jpg"]
