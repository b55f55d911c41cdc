"""An SQLite store: results and pending lookups survive restarts, on one machine."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import List, Optional

from .base import LookupRecord, Store, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS lookups (
    id       TEXT PRIMARY KEY,
    record   TEXT NOT NULL,
    complete INTEGER NOT NULL,
    expires  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lookups_expires ON lookups (expires);
CREATE INDEX IF NOT EXISTS lookups_pending ON lookups (complete) WHERE complete = 0;
CREATE TABLE IF NOT EXISTS leases (
    id    TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
"""
TRIM_EVERY = 500  # puts between trims to cache_size rows and of expired rows


def _make_parents(path: str) -> None:
    """Create the missing directories above ``path``, each mode 0700 (results are private),
    or raise StoreError naming the option."""
    missing = []
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(parent) and parent != os.path.dirname(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except OSError as exc:
            if os.path.isdir(directory):
                continue  # made meanwhile by another process
            reason = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
            raise StoreError(f"option 'sqlite_path' ({path}): cannot create the directory {directory}: "
                             f"{reason}") from exc


class SQLiteStore(Store):
    """WAL mode; at most ``maxsize`` rows (the oldest go first), each for ``ttl`` seconds."""

    def __init__(self, path: str, maxsize: int = 10000, ttl: float = 600):
        self.path = os.path.expanduser(path)
        self.maxsize = maxsize
        self.ttl = ttl
        self._lock = threading.Lock()
        self._puts = 0
        _make_parents(self.path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
        self._trim()

    def _run(self, sql: str, args=()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def get(self, request_id: str) -> Optional[LookupRecord]:
        row = self._run("SELECT record FROM lookups WHERE id = ? AND expires > ?",
                        (request_id, time.time())).fetchone()
        return LookupRecord.from_json(row[0]) if row else None

    def put(self, record: LookupRecord) -> None:
        self._run("INSERT INTO lookups (id, record, complete, expires) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT (id) DO UPDATE SET record = excluded.record, "
                  "complete = excluded.complete, expires = excluded.expires",
                  (record.id, record.to_json(), int(record.complete), time.time() + self.ttl))
        self._puts += 1
        if self._puts % TRIM_EVERY == 0:
            self._trim()

    def _trim(self) -> None:
        """Drop expired rows and leases, then the oldest rows beyond ``maxsize``."""
        now = time.time()
        self._run("DELETE FROM lookups WHERE expires <= ?", (now,))
        self._run("DELETE FROM leases WHERE until <= ?", (now,))
        extra = self._run("SELECT COUNT(*) FROM lookups").fetchone()[0] - self.maxsize
        if extra > 0:
            self._run("DELETE FROM lookups WHERE id IN "
                      "(SELECT id FROM lookups ORDER BY expires LIMIT ?)", (extra,))

    def ping(self) -> None:
        """One page read: the file is there and readable (fails once closed, or on a bad disk)."""
        self._run("SELECT 1 FROM leases LIMIT 1").fetchall()

    def pending(self, limit: int = 1000) -> List[LookupRecord]:
        rows = self._run("SELECT record FROM lookups WHERE complete = 0 AND expires > ? LIMIT ?",
                         (time.time(), limit)).fetchall()
        return [LookupRecord.from_json(r[0]) for r in rows]

    def lease(self, request_id: str, owner: str, seconds: float) -> bool:
        now = time.time()
        cursor = self._run("INSERT INTO leases (id, owner, until) VALUES (?, ?, ?) "
                           "ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, until = excluded.until "
                           "WHERE leases.until <= ? OR leases.owner = excluded.owner",
                           (request_id, owner, now + seconds, now))
        return cursor.rowcount == 1

    def release(self, request_id: str, owner: str) -> None:
        self._run("DELETE FROM leases WHERE id = ? AND owner = ?", (request_id, owner))

    def __len__(self) -> int:
        return self._run("SELECT COUNT(*) FROM lookups WHERE expires > ?", (time.time(),)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
