"""Job records in SQLite beside the checkpoints, so that a restarted server finds every job again."""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

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

    def insert(self, job: dict[str, Any]) -> None:
        values = {k: json.dumps(v) if k in JSON_COLUMNS else v for k, v in job.items()}
        names = ", ".join(values)
        with self._lock, closing(self._connect()) as db, db:
            db.execute(f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * len(values))})", list(values.values()))

    def get(self, job_id: str) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            return self._row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def all(self, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM jobs", ()
        if states:
            query, args = query + f" WHERE state IN ({', '.join('?' * len(states))})", states
        with closing(self._connect()) as db:
            return [self._row(r) for r in db.execute(query + " ORDER BY created_at, id", args).fetchall()]

    def update(self, job_id: str, expect_state: str | None = None, **fields: Any) -> bool:
        """Set fields; with expect_state only while the job is still in that state. True if a row changed."""
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown job column {', '.join(sorted(unknown))}")
        values = [json.dumps(v) if k in JSON_COLUMNS else v for k, v in fields.items()]
        query = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?"
        values.append(job_id)
        if expect_state is not None:
            query += " AND state = ?"
            values.append(expect_state)
        with self._lock, closing(self._connect()) as db, db:
            return db.execute(query, values).rowcount > 0

    def delete(self, job_id: str) -> None:
        with self._lock, closing(self._connect()) as db, db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
