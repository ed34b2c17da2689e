"""The SQLite files in ``state_dir``, opened and written so that a damaged or full state directory never
stops the agent and never loses what it was about to write.

- A damaged file (not a database, or failing SQLite's ``quick_check``) is moved aside to
  ``<name>.damaged-<UTC time>`` — named in the log and in ``dbwatch_state_file_moved_aside`` — and a new
  one is started.
- A file that cannot be opened for writing (a read-only or missing ``state_dir``) leaves the store
  *degraded*: the caller keeps its state in memory, and every later write tries to open the file again.
- A write that fails at runtime (disk full, I/O error) also leaves it degraded; the caller keeps what it
  could not write and hands it over again at its next write, which persists it once the disk recovers.

While degraded, ``dbwatch_state_store_degraded`` is 1 for the file and ``/readyz`` says so.
One line is logged when a file becomes degraded and one when it recovers, not one per failed write.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from dbwatch.model import MetricFamily, counter, gauge, info

__all__ = ["StateFile", "state_metrics", "degraded_files"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
REOPEN_EVERY = 5.0  # seconds between attempts to open a file that could not be opened for writing
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class StateFile:
    def __init__(self, path: str | Path, schema: str, pragmas: Iterable[str] = (),
                 flush: Callable[[], bool] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """``flush``: the owner's "write what you kept in memory", True once nothing is left unwritten;
        :meth:`retry` calls it, so a degraded file recovers even when nothing new is written to it."""
        self.path = Path(path)
        self.flush = flush
        self.schema = schema
        self.pragmas = tuple(pragmas)
        self.clock = clock
        self.db: sqlite3.Connection | None = None
        self.error: str | None = None  # why the file is degraded; None while writes succeed
        self.moved_aside: Path | None = None
        self.write_errors = 0
        self._opened_at = self._retried_at = float("-inf")
        self._open()

    @property
    def degraded(self) -> bool:
        return self.error is not None

    def read(self, query: Callable[[sqlite3.Connection], T], default: T) -> T:
        """``query(db)``, or ``default`` when the file cannot be read. A file that could not be opened for
        writing (a read-only ``state_dir``) is read as it is, so what it holds is not forgotten."""
        try:
            if self.db is not None:
                return query(self.db)
            if not self.path.is_file():
                return default
            uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro&immutable=1"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                return query(db)
        except (sqlite3.Error, OSError) as exc:
            self._fail(exc)
            return default

    def write(self, statements: Callable[[sqlite3.Connection], None]) -> bool:
        """Run ``statements(db)`` in one transaction; False (and degraded) when it could not be committed."""
        if self.db is None and (self.clock() - self._opened_at < REOPEN_EVERY or not self._open(clear=False)):
            return False
        assert self.db is not None
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                statements(self.db)
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolled back by itself (disk full)
            self._fail(exc)
            return False
        self._recovered()
        return True

    def retry(self) -> None:
        """While degraded, at most every :data:`REOPEN_EVERY` seconds: open the file again if it was not open,
        and write what the owner kept in memory (``flush``); it recovers once that is written."""
        now = self.clock()
        if self.error is None or now - self._retried_at < REOPEN_EVERY:
            return
        self._retried_at = now
        if self.db is None and not self._open(clear=False):
            return
        if self.flush is None or self.flush():
            self._recovered()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    # -- opening --------------------------------------------------------------------------------------

    def _open(self, clear: bool = True) -> bool:
        """Open (or create) the file; ``clear``: it is healthy once open (nothing was kept in memory yet)."""
        self._opened_at = self.clock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = self._connect()
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorcode not in _DAMAGED:
                self._fail(exc)
                return False
            if not self._move_aside(exc):
                return False
            try:
                self.db = self._connect()
            except (sqlite3.Error, OSError) as again:
                self._fail(again)
                return False
        except OSError as exc:
            self._fail(exc)
            return False
        if clear:
            self._recovered()
        return True

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, timeout=5.0)
        try:
            for pragma in self.pragmas:
                db.execute(pragma)
            check = db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                error = sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
                error.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
                raise error
            db.executescript(self.schema)
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, exc: sqlite3.Error) -> bool:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    part.rename(f"{target}{suffix}")
        except OSError as move_error:
            logger.error("state file %s is damaged (%s) and cannot be moved aside: %s; keeping state in memory",
                         self.path, _describe(exc), move_error.strerror or move_error)
            self.error = f"damaged and cannot be moved aside: {move_error.strerror or move_error}"
            return False
        self.moved_aside = target
        logger.error("state file %s is damaged (%s): moved it aside to %s and started a new one",
                     self.path, _describe(exc), target)
        return True

    # -- health ---------------------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        self.write_errors += 1
        first = self.error is None
        self.error = _describe(exc)
        if first:
            logger.error("state file %s cannot be written (%s): keeping its state in memory and retrying; "
                         "nothing is lost unless the agent stops before it recovers", self.path, self.error)

    def _recovered(self) -> None:
        if self.error is not None:
            logger.warning("state file %s is writable again: what was kept in memory is saved", self.path)
        self.error = None


def degraded_files(files: Iterable[StateFile]) -> dict[str, str]:
    """The state files that cannot be written now, and why (for ``/readyz``)."""
    files = list(files)
    for f in files:
        f.retry()
    return {str(f.path): f.error for f in files if f.error is not None}


def state_metrics(files: Iterable[StateFile]) -> list[MetricFamily]:
    degraded = gauge("dbwatch_state_store_degraded", "1 while a state file cannot be written (read-only or "
                     "full state_dir, I/O error): its state is kept in memory until it can.", ("file",))
    errors = counter("dbwatch_state_write_errors_total", "Writes to a state file that failed.", ("file",))
    moved = info("dbwatch_state_file_moved_aside", "A damaged state file found at start and moved aside "
                 "(1): the file and where it went.", ("file", "moved_to"))
    for f in files:
        f.retry()
        degraded.add((str(f.path),), 1 if f.degraded else 0)
        errors.add((str(f.path),), f.write_errors)
        if f.moved_aside is not None:
            moved.add((str(f.path), str(f.moved_aside)), 1)
    return [degraded, errors, moved]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__
