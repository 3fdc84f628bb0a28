"""The job store: one SQLite table in the data directory, every state change a transaction.

States: queued -> running -> done | failed. A job is written (and synced: WAL with
synchronous=FULL) before its 202 goes out, so an accepted job survives a crash or SIGKILL;
at start a job left `running` by a dead process goes back to `queued`, in its old place.
`claim` hands each queued job to exactly one worker (the UPDATE is guarded by the state).

Only state changes are written here. A running job's progress is not: it lives in memory
(`worker.ProgressBoard`), because an interrupted job starts again from frame 0 and so its
progress never has to survive a crash; writing it here cost one synced transaction per chunk.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    narration TEXT NOT NULL,
    photo TEXT NOT NULL,
    box TEXT,
    submitted REAL NOT NULL,
    started REAL,
    finished REAL,
    frames INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
"""
_COLUMNS = ("id, seq, state, narration, photo, box, submitted, started, finished, frames, "
            "attempts, error")


@dataclass(frozen=True)
class Job:
    id: str
    seq: int
    state: str
    narration: str
    photo: str            # file name inside the uploads folder
    box: str | None       # "x1,y1,x2,y2" given by the client, else detection
    submitted: float
    started: float | None
    finished: float | None
    frames: int | None
    attempts: int
    error: str | None
    position: int | None = None  # 1-based place in the queue (queued jobs only)
    progress: int = 0            # frames made so far (running jobs; from memory, not the table)


class JobStore:
    """Thread-safe: one connection, one lock (SQLite serialises writers anyway)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a 202 promises the row is on disk
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- writes ------------------------------------------------------------------------------
    def add_if_room(self, job_id: str, narration: str, photo: str, box: str | None,
                    limit: int) -> bool:
        """Insert unless `limit` jobs are already waiting or running (one transaction)."""
        with self._transaction() as db:
            (pending,) = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN "
                                    "('queued', 'running')").fetchone()
            if pending >= limit:
                return False
            db.execute("INSERT INTO jobs (id, state, narration, photo, box, submitted) "
                       "VALUES (?, 'queued', ?, ?, ?, ?)",
                       (job_id, narration, photo, box, time.time()))
        return True

    def claim(self) -> Job | None:
        """The oldest queued job, now `running` and owned by the caller; None if none."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq "
                             "LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', started = ?, "
                       "attempts = attempts + 1 WHERE id = ? AND state = 'queued'",
                       (time.time(), row["id"]))
            return self._get(db, row["id"])

    def claim_specific(self, job_id: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute("UPDATE jobs SET state = 'running', started = ? WHERE id = ? "
                                "AND state = 'queued'", (time.time(), job_id))
            return cursor.rowcount == 1

    def finish(self, job_id: str, frames: int) -> bool:
        return self._end(job_id, "done", frames=frames, error=None)

    def fail(self, job_id: str, reason: str) -> bool:
        return self._end(job_id, "failed", frames=None, error=reason)

    def _end(self, job_id: str, state: str, *, frames: int | None, error: str | None) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET state = ?, finished = ?, error = ?, "
                "frames = COALESCE(?, frames) WHERE id = ? AND state = 'running'",
                (state, time.time(), error, frames, job_id))
            return cursor.rowcount == 1

    def requeue_interrupted(self) -> list[str]:
        """Jobs a dead process left `running` wait again, keeping their place in the queue."""
        with self._transaction() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE state = 'running'")]
            db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")
        return ids

    def delete(self, job_id: str) -> Job | None:
        with self._transaction() as db:
            job = self._get(db, job_id)
            if job is not None:
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return job

    # -- reads -------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._get(self._db, job_id)

    def _get(self, db: sqlite3.Connection, job_id: str) -> Job | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        position = None
        if row["state"] == "queued":
            (ahead,) = db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND "
                                  "seq < ?", (row["seq"],)).fetchone()
            position = ahead + 1
        return Job(**dict(zip(row.keys(), tuple(row), strict=True)), position=position)

    def counts(self) -> dict[str, int]:
        with self._lock:
            found = dict(self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
                         .fetchall())
        return {state: int(found.get(state, 0)) for state in STATES}

    def finished_before(self, cutoff: float) -> list[Job]:
        with self._lock:
            ids = [r["id"] for r in self._db.execute(
                "SELECT id FROM jobs WHERE state IN ('done', 'failed') AND finished < ?",
                (cutoff,))]
            return [job for job in (self._get(self._db, i) for i in ids) if job is not None]

    def all_ids(self) -> list[str]:
        with self._lock:
            return [r["id"] for r in self._db.execute("SELECT id FROM jobs ORDER BY seq")]
