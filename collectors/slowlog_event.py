"""The event every slow-log parser yields, and the parser base they share."""

from __future__ import annotations

from typing import NamedTuple

from dbwatch.collectors.logtail import MAX_RECORD, LineParser

__all__ = ["SlowEvent", "SlowParser"]


class SlowEvent(NamedTuple):
    query: str
    query_time: float  # seconds
    lock_time: float = 0.0
    rows_sent: int = 0
    rows_examined: int = 0
    rows_affected: int = 0
    timestamp: float | None = None  # Unix time the server logged
    db: str = ""
    user: str = ""
    full_scan: bool = False
    tmp_table_on_disk: bool = False
    postgres: bool = False  # fingerprint with PostgreSQL's quoting rules


_new_event = tuple.__new__  # SlowEvent from a full tuple without NamedTuple's Python-level __new__


def _valid(text: str) -> bool:
    """False when the text holds bytes that were not UTF-8 (decoded as lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class SlowParser(LineParser[SlowEvent]):
    def __init__(self, max_record: int = MAX_RECORD) -> None:
        self.max_record = max_record
        self.skipped = 0
        self.skipped_lines = 0
        self._pending = ""

    def pending(self) -> str:
        return self._pending

    def _keep(self, pending: str) -> None:
        """Keep ``pending`` (an unfinished record) for the next read; one already larger than ``max_record``
        is dropped and counted in ``skipped``."""
        if len(pending) > self.max_record:
            pending = ""
            self.skipped += 1
        self._pending = pending

    def discard_pending(self) -> None:
        self._pending = ""
