"""An SQLite store: results and pending lookups survive restarts, on one machine."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from .answers import AnswerKey, CachedAnswer, live_answers, prepare_entries
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
CREATE TABLE IF NOT EXISTS answers (
    service  TEXT NOT NULL,
    artifact TEXT NOT NULL,
    searcher TEXT NOT NULL,
    body     TEXT NOT NULL,
    expires  REAL NOT NULL,
    size     INTEGER NOT NULL,
    PRIMARY KEY (service, artifact, searcher)
);
CREATE INDEX IF NOT EXISTS answers_expires ON answers (expires);
CREATE TABLE IF NOT EXISTS answers_usage (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    bytes   INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS answers_added AFTER INSERT ON answers BEGIN
    UPDATE answers_usage SET entries = entries + 1, bytes = bytes + NEW.size;
END;
CREATE TRIGGER IF NOT EXISTS answers_removed AFTER DELETE ON answers BEGIN
    UPDATE answers_usage SET entries = entries - 1, bytes = bytes - OLD.size;
END;
CREATE TRIGGER IF NOT EXISTS answers_replaced AFTER UPDATE ON answers BEGIN
    UPDATE answers_usage SET bytes = bytes - OLD.size + NEW.size;
END;
"""
TRIM_EVERY = 500  # puts between trims to cache_size rows and of expired rows
ANSWER_TRIM_EVERY = 500  # answer puts between deletes of the expired answers
KEYS_PER_SELECT = 300    # 3 variables a key: under the 999 of SQLite before 3.32
EVICT_CHUNK = 100        # answers read at a time when evicting
T = TypeVar("T")
PUT_ANSWER = ("INSERT INTO answers (service, artifact, searcher, body, expires, size) VALUES (?, ?, ?, ?, ?, ?) "
              "ON CONFLICT (service, artifact, searcher) DO UPDATE SET body = excluded.body, "
              "expires = excluded.expires, size = excluded.size")


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


def _key_values(count: int) -> str:
    return ", ".join(["(?, ?, ?)"] * count)


class SQLiteStore(Store):
    """WAL mode; at most ``maxsize`` rows (the oldest go first), each for ``ttl`` seconds.

    Answers: at most ``answers_max_entries`` rows and ``answers_max_bytes`` of JSON, held
    exactly at every put, by every process sharing the file: triggers keep the totals in
    ``answers_usage``, and a put past a bound drops the answers that expire soonest (through the
    index on ``expires``: no COUNT).  Expired answers are deleted every ANSWER_TRIM_EVERY puts
    and at open (meanwhile they count, and are the first to go); the totals are recounted at open."""

    def __init__(self, path: str, maxsize: int = 10000, ttl: float = 600,
                 answers_max_entries: int = 100000, answers_max_bytes: int = 256 * 1024 * 1024,
                 trim: bool = True):
        self.path = os.path.expanduser(path)
        self.maxsize = maxsize
        self.ttl = ttl
        self.answers_max_entries = answers_max_entries
        self.answers_max_bytes = answers_max_bytes
        self._lock = threading.Lock()
        self._puts = 0
        self._answer_puts = 0
        _make_parents(self.path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA recursive_triggers=ON")  # an INSERT OR REPLACE counts what it replaces
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
        self._transaction(self._recount_answers)
        if trim:  # not for a maintenance tool, whose bounds are not the running service's
            self._trim()
            self._trim_answers()

    def _run(self, sql: str, args=()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Several statements at once: a put and its evictions, seen whole by other processes."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._db)
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result
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

    def get_answers(self, keys: Sequence[AnswerKey]) -> Dict[AnswerKey, CachedAnswer]:
        found: List[Tuple[AnswerKey, str]] = []
        now = time.time()
        for start in range(0, len(keys), KEYS_PER_SELECT):
            chunk = keys[start:start + KEYS_PER_SELECT]
            rows = self._run("SELECT a.service, a.artifact, a.searcher, a.body "
                             f"FROM (VALUES {_key_values(len(chunk))}) AS k JOIN answers AS a "
                             "ON a.service = k.column1 AND a.artifact = k.column2 AND a.searcher = k.column3 "
                             "WHERE a.expires > ?", [*(part for key in chunk for part in key), now]).fetchall()
            found += [(AnswerKey(service, artifact, searcher), body) for service, artifact, searcher, body in rows]
        return live_answers(found, now)

    def put_answers(self, entries: Sequence[Tuple[AnswerKey, CachedAnswer]]) -> None:
        keep, drop = prepare_entries(entries, self.answers_max_bytes)
        if not keep and not drop:
            return

        def write(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM answers WHERE service = ? AND artifact = ? AND searcher = ?", drop)
            db.executemany(PUT_ANSWER, [(*e.key, e.text, e.expires, len(e.text)) for e in keep])
            self._evict_answers(db)
        self._transaction(write)
        self._answer_puts += len(keep)
        if self._answer_puts >= ANSWER_TRIM_EVERY:
            self._answer_puts = 0
            self._trim_answers()

    def clear_answers(self, service: Optional[str] = None, artifact: Optional[str] = None) -> int:
        """Counts the unexpired answers removed (expired ones are deleted too, uncounted)."""
        where: List[str] = ["expires > ?"]
        args: List[object] = [time.time()]
        for column, value in (("service", service), ("artifact", artifact)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)

        def delete(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM answers WHERE expires <= ?", args[:1])
            return db.execute("DELETE FROM answers WHERE " + " AND ".join(where), args).rowcount
        return self._transaction(delete)

    def _evict_answers(self, db: sqlite3.Connection) -> None:
        """While past a bound, drop the answers that expire soonest (expired ones first of all)."""
        while True:
            entries, size = db.execute("SELECT entries, bytes FROM answers_usage").fetchone()
            if entries <= self.answers_max_entries and size <= self.answers_max_bytes:
                return
            doomed = []
            for rowid, row_size in db.execute("SELECT rowid, size FROM answers ORDER BY expires LIMIT ?",
                                              (EVICT_CHUNK,)).fetchall():
                if entries <= self.answers_max_entries and size <= self.answers_max_bytes:
                    break
                doomed.append((rowid,))
                entries, size = entries - 1, size - row_size
            if not doomed:  # totals that say more than the table holds: recount
                self._recount_answers(db)
                return
            db.executemany("DELETE FROM answers WHERE rowid = ?", doomed)

    @staticmethod
    def _recount_answers(db: sqlite3.Connection) -> None:
        """The totals from the rows themselves: at open, in case another program wrote the file."""
        db.execute("INSERT OR REPLACE INTO answers_usage (id, entries, bytes) "
                   "SELECT 0, COUNT(*), COALESCE(SUM(size), 0) FROM answers")

    def _trim_answers(self) -> None:
        """Delete the expired answers (a range of the index), then evict past the bounds (which
        may have shrunk since the file was written)."""
        def trim(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM answers WHERE expires <= ?", (time.time(),))
            self._evict_answers(db)
        self._transaction(trim)

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
