"""The encode cache on disk: one entry per encoded rung or audio track.

Layout under the cache root (the only place that spells it out):
    rungs/<key>.mp4   the encoded rung        rungs/<key>.json  its measurement
    audio/<key>.mp4   the encoded audio track
    chunks/<key>.mp4  one chunk of one rung (the chunked engines; key: the rung's + window)
    <kind>/<key>.lock an advisory lock a concurrent run waits on
A rung entry is complete once its measurement exists (it is written last); an audio entry once
its media exists. Keys hash every setting that changes the bytes (see `encode_key`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discriminator_cli import cache
from discriminator_cli.encode.measure import StreamMeasurement
from discriminator_cli.locks import file_lock
from discriminator_cli.publish import atomic_write_text, publish_file

# Bump when the encoded bytes or the cached measurements (peak definition) change.
CACHE_FORMAT = 2


def encode_key(settings: dict[str, Any]) -> str:
    return cache.key_of({"format": CACHE_FORMAT, **settings})


@dataclass(frozen=True)
class CacheEntry:
    key: str
    media: Path
    measurement_file: Path | None   # rungs only
    lock: Path

    @property
    def complete(self) -> bool:
        done = self.measurement_file if self.measurement_file is not None else self.media
        return done.is_file() and self.media.is_file()

    def measurement(self) -> StreamMeasurement:
        assert self.measurement_file is not None
        return StreamMeasurement.from_dict(json.loads(self.measurement_file.read_text()))

    def store(self, produced: Path, measurement: StreamMeasurement | None = None) -> None:
        """Publish a finished encode (media first, measurement last: that marks it done)."""
        publish_file(produced, self.media)
        if self.measurement_file is not None:
            assert measurement is not None
            atomic_write_text(self.measurement_file, json.dumps(measurement.as_dict()))


class RungCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def rung(self, key: str) -> CacheEntry:
        folder = self.root / "rungs"
        return CacheEntry(key, folder / f"{key}.mp4", folder / f"{key}.json",
                          folder / f"{key}.lock")

    def audio(self, key: str) -> CacheEntry:
        folder = self.root / "audio"
        return CacheEntry(key, folder / f"{key}.mp4", None, folder / f"{key}.lock")

    def chunk(self, key: str) -> CacheEntry:
        folder = self.root / "chunks"
        return CacheEntry(key, folder / f"{key}.mp4", None, folder / f"{key}.lock")

    @contextlib.contextmanager
    def locked(self, entries: Iterable[CacheEntry]) -> Iterator[None]:
        """Hold every entry's lock (in one global order, so two runs never deadlock)."""
        with contextlib.ExitStack() as stack:
            for lock in sorted({entry.lock for entry in entries}):
                stack.enter_context(file_lock(lock))
            yield
