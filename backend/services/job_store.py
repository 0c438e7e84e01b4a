"""Job records in SQLite beside the checkpoints, so that a restarted server finds every job again.

Every change of a job's state is a compare-and-set (`UPDATE ... WHERE id = ? AND state = ?`), so two
processes that race on one job cannot both move it (a queued job launches once); a submission checks and
inserts inside one `BEGIN IMMEDIATE` transaction, which SQLite serialises across processes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator

COLUMNS = ("id", "kind", "state", "run_id", "spec", "argv", "out_dir", "pid", "pid_start", "cancel_requested",
           "attempts", "exit_code", "message", "created_at", "started_at", "finished_at", "updated_at", "scheduler_id")
JSON_COLUMNS = ("spec", "argv")
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, run_id TEXT NOT NULL,
    spec TEXT NOT NULL, argv TEXT NOT NULL, out_dir TEXT, pid INTEGER, pid_start INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 1,
    exit_code INTEGER, message TEXT, created_at REAL NOT NULL, started_at REAL, finished_at REAL,
    updated_at REAL, scheduler_id TEXT)
"""
ADDED = {"scheduler_id": "TEXT"}  # columns newer than some databases: added on open


class JobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one writer at a time inside this process; SQLite guards the rest
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)
            db.execute("CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state)")
            db.execute("CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at, id)")
            have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, kind in ADDED.items():
                if name not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def _row(self, row: sqlite3.Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        job = dict(row)
        for key in JSON_COLUMNS:
            job[key] = json.loads(job[key])
        return job

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside BEGIN IMMEDIATE: no other writer, in this process or another, until it ends
        (committed, or rolled back on an exception)."""
        with self._lock, closing(self._connect()) as db:
            db.isolation_level = None  # explicit BEGIN/COMMIT
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def insert(self, job: dict[str, Any], db: sqlite3.Connection | None = None) -> None:
        """Insert a job record; inside `transaction()` pass its connection."""
        values = {k: json.dumps(v) if k in JSON_COLUMNS else v for k, v in job.items()}
        query = f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
        if db is not None:
            db.execute(query, list(values.values()))
            return
        with self._lock, closing(self._connect()) as db, db:
            db.execute(query, list(values.values()))

    def on_run(self, run_id: str, kind: str, db: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        """The jobs of one kind on one run, oldest first."""
        query, args = "SELECT * FROM jobs WHERE run_id = ? AND kind = ? ORDER BY created_at, id", (run_id, kind)
        if db is not None:
            return [self._row(r) for r in db.execute(query, args).fetchall()]
        with closing(self._connect()) as db:
            return [self._row(r) for r in db.execute(query, args).fetchall()]

    def page(self, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first: `limit` jobs after skipping `offset`."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                              (limit, offset)).fetchall()
        return [self._row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many jobs there are in each state (one indexed query, for the health check)."""
        with closing(self._connect()) as db:
            return {state: n for state, n in db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")}

    def get(self, job_id: str) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            return self._row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def all(self, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM jobs", ()
        if states:
            query, args = query + f" WHERE state IN ({', '.join('?' * len(states))})", states
        with closing(self._connect()) as db:
            return [self._row(r) for r in db.execute(query + " ORDER BY created_at, id", args).fetchall()]

    def update(self, job_id: str, expect_state: str | None = None, *, db: sqlite3.Connection | None = None,
               **fields: Any) -> bool:
        """Set fields; with expect_state only while the job is still in that state (a compare-and-set).
        True if a row changed. Inside `transaction()` pass its connection."""
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown job column {', '.join(sorted(unknown))}")
        values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in fields.items()]
        query = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?"
        values.append(job_id)
        if expect_state is not None:
            query += " AND state = ?"
            values.append(expect_state)
        if db is not None:
            return db.execute(query, values).rowcount > 0
        with self._lock, closing(self._connect()) as db, db:
            return db.execute(query, values).rowcount > 0

    def delete(self, job_id: str, unless_states: tuple[str, ...] = ()) -> bool:
        """Forget a job, unless it is (by now) in one of `unless_states`; True if it was deleted."""
        query, args = "DELETE FROM jobs WHERE id = ?", [job_id]
        if unless_states:
            query += f" AND state NOT IN ({', '.join('?' * len(unless_states))})"
            args += list(unless_states)
        with self._lock, closing(self._connect()) as db, db:
            return db.execute(query, args).rowcount > 0

    def prune(self, states: tuple[str, ...], finished_before: float) -> list[str]:
        """Delete the jobs in `states` that finished before `finished_before` (seconds since the epoch);
        returns their ids."""
        marks = ", ".join("?" * len(states))
        where = f"state IN ({marks}) AND COALESCE(finished_at, updated_at, created_at) < ?"
        with self._lock, closing(self._connect()) as db, db:
            return [r[0] for r in db.execute(f"DELETE FROM jobs WHERE {where} RETURNING id", (*states, finished_before))]
