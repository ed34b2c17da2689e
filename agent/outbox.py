"""The durable outbox: notifications written to SQLite before any attempt to send them.

Two tables in ``state_dir/outbox.db``:

- ``outbox``: one row per notification to one receiver — its idempotency key, the JSON body, attempts,
  when to try next, and whether it is pending, delivered or failed. A row is committed (WAL,
  ``synchronous=FULL``) before it is sent, and marked delivered only after the receiver's 2xx; a crash in
  between sends it again with the same key.
- ``notified``: per (receiver, alert fingerprint), what was last queued and when, written in the same
  transaction as the row it concerns, so a restart neither repeats a page before its repeat interval nor
  forgets to send a resolve.

Plain ``sqlite3`` on the event loop's thread: every statement is a small indexed read or write.

When the file cannot be written (disk full, read-only ``state_dir``: agent/statefile.py) nothing is lost and
nothing waits: what was to be written — new rows, what was told, delivery results — is kept in memory,
delivery goes on from there, and it is all written, in order, at the first write after the file recovers.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from dbwatch.agent.statefile import StateFile

__all__ = ["Notification", "Notified", "Outbox", "PENDING", "DELIVERED", "FAILED"]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
#: spooled rows whose new id in the file is remembered: a delivery in flight (one per receiver) marks by
#: the id it started with
MOVED_KEPT = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    finished_at REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_receiver ON outbox (receiver, status, id);
CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (status, finished_at);
CREATE TABLE IF NOT EXISTS notified (
    receiver TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    fired_at REAL,
    last_sent_at REAL NOT NULL,
    PRIMARY KEY (receiver, fingerprint)
);
"""


@dataclass(frozen=True, slots=True)
class Notification:
    id: int  # negative while the row is only in memory (the file could not take it yet)
    receiver: str
    key: str
    payload: Any
    attempts: int
    next_attempt_at: float
    created_at: float
    status: str


@dataclass(slots=True)
class Notified:
    """What a receiver was last told about one alert: ``firing`` (at ``last_sent_at``) or ``resolved``."""

    status: str
    fired_at: float | None
    last_sent_at: float


@dataclass(slots=True)
class _Row:
    """A notification queued while the file could not take it."""

    receiver: str
    key: str
    payload: str
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    status: str = PENDING
    finished_at: float | None = None
    last_error: str | None = None


@dataclass(slots=True)
class _Mark:
    """Delivery results of a row in the file that the file could not take yet."""

    receiver: str
    attempts: int
    status: str
    next_attempt_at: float | None
    finished_at: float | None
    last_error: str | None


class Outbox:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.state = StateFile(self.path, _SCHEMA, ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"),
                               flush=lambda: self._flush())
        self._spool: dict[int, _Row] = {}  # by their (negative) ids, oldest first
        self._told: dict[tuple[str, str], Notified] = {}
        self._marks: dict[int, _Mark] = {}
        self._moved: dict[int, int] = {}  # a spooled row's id -> its id in the file, for a delivery in flight
        self._next_id = -1
        self._batch: tuple[list[_Row], dict[tuple[str, str], Notified]] | None = None

    def close(self) -> None:
        self._flush()
        self.state.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside are committed together (and fsynced) or not at all; when the file cannot
        take them they are kept in memory together, and written together later."""
        self._batch = ([], {})
        try:
            yield
        except BaseException:
            self._batch = None
            raise
        rows, told = self._batch
        self._batch = None
        for row in rows:
            self._spool[self._new_id()] = row
        self._told.update(told)
        self._flush()

    @property
    def unsaved(self) -> int:
        """Notifications, memories and delivery results kept in memory, waiting for the file."""
        return len(self._spool) + len(self._told) + len(self._marks)

    # -- writing what is to be sent -----------------------------------------------------------------

    def enqueue(self, receiver: str, payload: Any, now: float) -> str:
        """Queue one notification; returns its idempotency key. Call inside :meth:`transaction`."""
        key = uuid.uuid4().hex
        row = _Row(receiver, key, json.dumps(payload, separators=(",", ":"), sort_keys=True), now, now)
        if self._batch is not None:
            self._batch[0].append(row)
        else:
            self._spool[self._new_id()] = row
            self._flush()
        return key

    def remember(self, receiver: str, fingerprint: str, notified: Notified) -> None:
        if self._batch is not None:
            self._batch[1][(receiver, fingerprint)] = notified
        else:
            self._told[(receiver, fingerprint)] = notified
            self._flush()

    def memory(self) -> dict[tuple[str, str], Notified]:
        rows: list[tuple[Any, ...]] = self.state.read(lambda db: db.execute(
            "SELECT receiver, fingerprint, status, fired_at, last_sent_at FROM notified").fetchall(), [])
        told = {(r, fp): Notified(status, fired, sent) for r, fp, status, fired, sent in rows}
        return {**told, **{k: replace(v) for k, v in self._told.items()}}

    # -- delivering -----------------------------------------------------------------------------------

    def next_pending(self, receiver: str) -> Notification | None:
        """The oldest pending notification of a receiver: each receiver's are delivered in order."""
        if self.state.degraded:
            self._flush()
        done = self._finished_ids()
        row = self.state.read(lambda db: db.execute(
            "SELECT id, receiver, idempotency_key, payload, attempts, next_attempt_at, created_at, status "
            f"FROM outbox WHERE receiver = ? AND status = 'pending' AND id NOT IN ({','.join('?' * len(done))}) "
            "ORDER BY id LIMIT 1",
            (receiver, *done),
        ).fetchone(), None)
        if row is not None:
            mark = self._marks.get(row[0])
            if mark is not None and mark.next_attempt_at is not None:
                return Notification(row[0], row[1], row[2], json.loads(row[3]), row[4] + mark.attempts,
                                    mark.next_attempt_at, row[6], row[7])
            return Notification(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])
        for id, spooled in self._spool.items():  # only rows newer than any in the file wait in memory
            if spooled.receiver == receiver and spooled.status == PENDING:
                return Notification(id, spooled.receiver, spooled.key, json.loads(spooled.payload), spooled.attempts,
                                    spooled.next_attempt_at, spooled.created_at, spooled.status)
        return None

    def mark_delivered(self, id: int, now: float) -> None:
        self._mark(id, DELIVERED, None, now, None)

    def mark_retry(self, id: int, next_attempt_at: float, error: str) -> None:
        self._mark(id, PENDING, next_attempt_at, None, error)

    def mark_failed(self, id: int, now: float, error: str) -> None:
        self._mark(id, FAILED, None, now, error)

    # -- bookkeeping ------------------------------------------------------------------------------------

    def pending_counts(self) -> dict[str, int]:
        done = self._finished_ids()
        counts: dict[str, int] = dict(self.state.read(lambda db: db.execute(
            f"SELECT receiver, count(*) FROM outbox WHERE status = 'pending' AND id NOT IN ({','.join('?' * len(done))}) "
            "GROUP BY receiver", done).fetchall(), []))
        for row in self._spool.values():
            if row.status == PENDING:
                counts[row.receiver] = counts.get(row.receiver, 0) + 1
        return counts

    def oldest_pending(self) -> dict[str, float]:
        done = self._finished_ids()
        oldest: dict[str, float] = dict(self.state.read(lambda db: db.execute(
            "SELECT receiver, min(created_at) FROM outbox WHERE status = 'pending' "
            f"AND id NOT IN ({','.join('?' * len(done))}) GROUP BY receiver", done).fetchall(), []))
        for row in self._spool.values():
            if row.status == PENDING:
                oldest[row.receiver] = min(oldest.get(row.receiver, row.created_at), row.created_at)
        return oldest

    def rows(self, receiver: str | None = None) -> list[dict[str, Any]]:
        """Every row, oldest first (for tests and the ``/api`` view); payloads decoded."""
        query = "SELECT id, receiver, idempotency_key, payload, attempts, status, created_at, finished_at, last_error FROM outbox"
        params: tuple[Any, ...] = ()
        if receiver is not None:
            query, params = query + " WHERE receiver = ?", (receiver,)
        names = ("id", "receiver", "key", "payload", "attempts", "status", "created_at", "finished_at", "last_error")
        out = []
        found: list[tuple[Any, ...]] = self.state.read(lambda db: db.execute(query + " ORDER BY id", params).fetchall(), [])
        for row in found:
            item = dict(zip(names, row))
            item["payload"] = json.loads(item["payload"])
            if (mark := self._marks.get(item["id"])) is not None:
                item.update(attempts=item["attempts"] + mark.attempts, status=mark.status,
                            finished_at=mark.finished_at, last_error=mark.last_error)
            out.append(item)
        for id, spooled in self._spool.items():
            if receiver in (None, spooled.receiver):
                out.append({"id": id, "receiver": spooled.receiver, "key": spooled.key,
                            "payload": json.loads(spooled.payload), "attempts": spooled.attempts,
                            "status": spooled.status, "created_at": spooled.created_at,
                            "finished_at": spooled.finished_at, "last_error": spooled.last_error})
        return out

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` notifications, newest first, as :meth:`rows` shows them (the web console)."""
        spooled = [{"id": id, "receiver": r.receiver, "key": r.key, "payload": json.loads(r.payload),
                    "attempts": r.attempts, "status": r.status, "created_at": r.created_at,
                    "finished_at": r.finished_at, "last_error": r.last_error}
                   for id, r in reversed(list(self._spool.items()))][:limit]
        names = ("id", "receiver", "key", "payload", "attempts", "status", "created_at", "finished_at", "last_error")
        found: list[tuple[Any, ...]] = self.state.read(lambda db: db.execute(
            "SELECT id, receiver, idempotency_key, payload, attempts, status, created_at, finished_at, last_error "
            "FROM outbox ORDER BY id DESC LIMIT ?",
            (max(0, limit - len(spooled)),)).fetchall(), [])
        out = spooled
        for row in found:
            item = dict(zip(names, row))
            item["payload"] = json.loads(item["payload"])
            if (mark := self._marks.get(item["id"])) is not None:
                item.update(attempts=item["attempts"] + mark.attempts, status=mark.status,
                            finished_at=mark.finished_at, last_error=mark.last_error)
            out.append(item)
        return out

    def prune(self, now: float, retention: float, forget_after: float) -> int:
        """Drop finished rows older than ``retention`` and what was sent about alerts not seen for long."""
        removed = 0

        def prune(db: sqlite3.Connection) -> None:
            nonlocal removed
            cur = db.execute(
                "DELETE FROM outbox WHERE status IN ('delivered', 'failed') AND finished_at < ?", (now - retention,)
            )
            removed = cur.rowcount
            # a firing alert's row is refreshed at every repeat, so only alerts long gone are forgotten
            db.execute("DELETE FROM notified WHERE last_sent_at < ?", (now - forget_after,))

        return removed if self.state.write(prune) else 0

    # -- what the file has not taken yet ----------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id -= 1
        return self._next_id + 1

    def _mark(self, id: int, status: str, next_attempt_at: float | None, finished_at: float | None,
              error: str | None) -> None:
        id = self._moved.pop(id, id)
        spooled = self._spool.get(id)
        if spooled is not None:
            spooled.attempts += 1
            spooled.status, spooled.finished_at, spooled.last_error = status, finished_at, error
            if next_attempt_at is not None:
                spooled.next_attempt_at = next_attempt_at
        else:
            earlier = self._marks.get(id)
            receiver = earlier.receiver if earlier else self.state.read(lambda db: _receiver_of(db, id), "")
            attempts = earlier.attempts + 1 if earlier else 1
            self._marks[id] = _Mark(receiver, attempts, status, next_attempt_at, finished_at, error)
        self._flush()

    def _finished_ids(self) -> list[int]:
        return [id for id, mark in self._marks.items() if mark.status != PENDING]

    def _flush(self) -> bool:
        """Write everything kept in memory, in one transaction and in the order it happened."""
        if not self.unsaved:
            return True
        spool, told, marks = dict(self._spool), dict(self._told), dict(self._marks)
        moved: dict[int, int] = {}

        def write(db: sqlite3.Connection) -> None:
            moved.clear()
            for id, row in spool.items():
                cur = db.execute(
                    "INSERT INTO outbox (receiver, idempotency_key, payload, attempts, next_attempt_at, created_at, "
                    "status, finished_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row.receiver, row.key, row.payload, row.attempts, row.next_attempt_at, row.created_at,
                     row.status, row.finished_at, row.last_error),
                )
                assert cur.lastrowid is not None
                moved[id] = cur.lastrowid
            db.executemany(
                "INSERT OR REPLACE INTO notified (receiver, fingerprint, status, fired_at, last_sent_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(r, fp, n.status, n.fired_at, n.last_sent_at) for (r, fp), n in told.items()],
            )
            for id, mark in marks.items():
                db.execute(
                    "UPDATE outbox SET attempts = attempts + ?, status = ?, "
                    "next_attempt_at = coalesce(?, next_attempt_at), finished_at = ?, last_error = ? WHERE id = ?",
                    (mark.attempts, mark.status, mark.next_attempt_at, mark.finished_at, mark.last_error, id),
                )

        if not self.state.write(write):
            return False
        for id in spool:
            del self._spool[id]
        for key in told:
            del self._told[key]
        for id in marks:
            del self._marks[id]
        self._moved.update((id, moved[id]) for id, row in spool.items() if row.status == PENDING)
        for id in list(self._moved)[:-MOVED_KEPT]:
            del self._moved[id]
        return True


def _receiver_of(db: sqlite3.Connection, id: int) -> str:
    row = db.execute("SELECT receiver FROM outbox WHERE id = ?", (id,)).fetchone()
    return str(row[0]) if row else ""
