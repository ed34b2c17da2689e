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
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

__all__ = ["Notification", "Notified", "Outbox", "PENDING", "DELIVERED", "FAILED"]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

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
    id: int
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


class Outbox:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside are committed together (and fsynced) or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- writing what is to be sent -----------------------------------------------------------------

    def enqueue(self, receiver: str, payload: Any, now: float) -> str:
        """Queue one notification; returns its idempotency key. Call inside :meth:`transaction`."""
        key = uuid.uuid4().hex
        self._db.execute(
            "INSERT INTO outbox (receiver, idempotency_key, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?)",
            (receiver, key, json.dumps(payload, separators=(",", ":"), sort_keys=True), now, now),
        )
        return key

    def remember(self, receiver: str, fingerprint: str, notified: Notified) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO notified (receiver, fingerprint, status, fired_at, last_sent_at) VALUES (?, ?, ?, ?, ?)",
            (receiver, fingerprint, notified.status, notified.fired_at, notified.last_sent_at),
        )

    def memory(self) -> dict[tuple[str, str], Notified]:
        rows = self._db.execute("SELECT receiver, fingerprint, status, fired_at, last_sent_at FROM notified")
        return {(r, fp): Notified(status, fired, sent) for r, fp, status, fired, sent in rows}

    # -- delivering -----------------------------------------------------------------------------------

    def next_pending(self, receiver: str) -> Notification | None:
        """The oldest pending notification of a receiver: each receiver's are delivered in order."""
        row = self._db.execute(
            "SELECT id, receiver, idempotency_key, payload, attempts, next_attempt_at, created_at, status "
            "FROM outbox WHERE receiver = ? AND status = 'pending' ORDER BY id LIMIT 1",
            (receiver,),
        ).fetchone()
        if row is None:
            return None
        return Notification(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])

    def mark_delivered(self, id: int, now: float) -> None:
        self._db.execute(
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, finished_at = ?, last_error = NULL "
            "WHERE id = ?",
            (now, id),
        )

    def mark_retry(self, id: int, next_attempt_at: float, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (next_attempt_at, error, id),
        )

    def mark_failed(self, id: int, now: float, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, finished_at = ?, last_error = ? WHERE id = ?",
            (now, error, id),
        )

    # -- bookkeeping ------------------------------------------------------------------------------------

    def pending_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT receiver, count(*) FROM outbox WHERE status = 'pending' GROUP BY receiver")
        return dict(rows.fetchall())

    def oldest_pending(self) -> dict[str, float]:
        rows = self._db.execute("SELECT receiver, min(created_at) FROM outbox WHERE status = 'pending' GROUP BY receiver")
        return dict(rows.fetchall())

    def rows(self, receiver: str | None = None) -> list[dict[str, Any]]:
        """Every row, oldest first (for tests and the ``/api`` view); payloads decoded."""
        query = "SELECT id, receiver, idempotency_key, payload, attempts, status, created_at, finished_at, last_error FROM outbox"
        params: tuple[Any, ...] = ()
        if receiver is not None:
            query, params = query + " WHERE receiver = ?", (receiver,)
        names = ("id", "receiver", "key", "payload", "attempts", "status", "created_at", "finished_at", "last_error")
        out = []
        for row in self._db.execute(query + " ORDER BY id", params):
            item = dict(zip(names, row))
            item["payload"] = json.loads(item["payload"])
            out.append(item)
        return out

    def prune(self, now: float, retention: float, forget_after: float) -> int:
        """Drop finished rows older than ``retention`` and what was sent about alerts not seen for long."""
        with self.transaction():
            cur = self._db.execute(
                "DELETE FROM outbox WHERE status IN ('delivered', 'failed') AND finished_at < ?", (now - retention,)
            )
            # a firing alert's row is refreshed at every repeat, so only alerts long gone are forgotten
            self._db.execute("DELETE FROM notified WHERE last_sent_at < ?", (now - forget_after,))
        return cur.rowcount
