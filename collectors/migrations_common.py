"""What the migrations collectors of both engines share: DDL lock queues as metric families, and a statement
made fit for a label.

A queue is exported per relation (``dbwatch_migration_blocking_queries{relation}``: the sessions queued behind
DDL on it; ``dbwatch_migration_ddl_seconds{relation}``: the oldest such DDL), so its series live as long as the
queue does whatever the sessions involved. Which DDL it is (pid, waiting or holding, its statement) is an
info-style family, ``dbwatch_migration_ddl_info{relation, pid, state, statement} 1``, present only while that
DDL has a queue or waits: few series, gone with the DDL, joined on ``relation`` by MigrationBlockingQueries
for its annotations (in dbwatch and in the exported Prometheus rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dbwatch.model import MetricFamily, gauge

__all__ = ["DdlLock", "blocking_families", "statement_label"]

# A quoted literal may hold anything (a password in CREATE USER ... IDENTIFIED BY, a row's data): labels
# never carry it. Doubled quotes and backslash escapes stay inside the literal; a literal the server's own
# truncation of the statement text cut (an opening quote, no closing one) runs to the end.
_LITERAL = re.compile(r"'(?:[^'\\]|''|\\.)*(?:'|\Z)", re.S)
# MySQL/MariaDB read "..." as a string literal too (unless ANSI_QUOTES); PostgreSQL as an identifier.
_DOUBLE_QUOTED = re.compile(r'"(?:[^"\\]|""|\\.)*(?:"|\Z)', re.S)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class DdlLock:
    """A DDL statement that holds or waits for a strong lock on ``relation``, and the sessions queued behind it."""

    relation: str
    pid: int
    waiting: bool  # it has not got its lock yet: everything after it queues too
    statement: str  # as the server shows it (literals still in)
    seconds: float
    queued: int


def statement_label(query: str, length: int, double_quoted_literals: bool = False) -> str:
    """``query`` on one line, string literals as ``'?'`` (and ``"..."`` when ``double_quoted_literals``, as
    MySQL reads them), at most ``length`` characters."""
    text = _LITERAL.sub("'?'", query or "")
    if double_quoted_literals:
        text = _DOUBLE_QUOTED.sub("'?'", text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= length else text[: max(0, length - 1)] + "…"


def blocking_families(locks: list[DdlLock], statement_length: int,
                      double_quoted_literals: bool = False) -> list[MetricFamily]:
    """The queue per relation, and the DDL of each (most queued first, so a reader taking one takes it)."""
    queued = gauge("dbwatch_migration_blocking_queries",
                   "Sessions queued behind DDL that holds or waits for a strong lock on the relation (the longest "
                   "queue when several DDL statements share it)", ("relation",))
    seconds = gauge("dbwatch_migration_ddl_seconds",
                    "How long the oldest DDL statement with a lock queue (or waiting for its lock) on the relation "
                    "has run, in seconds", ("relation",))
    info = gauge("dbwatch_migration_ddl_info",
                 "A DDL statement with a lock queue behind it or waiting for its lock (1): its session, state and "
                 "statement (literals as '?')", ("relation", "pid", "state", "statement"))
    by_relation: dict[str, list[DdlLock]] = {}
    for lock in locks:
        by_relation.setdefault(lock.relation, []).append(lock)
    for relation, ddl in sorted(by_relation.items()):
        queued.add((relation,), float(max(lock.queued for lock in ddl)))  # one queue: each DDL sees it
        seconds.add((relation,), max(lock.seconds for lock in ddl))
        for lock in sorted(ddl, key=lambda lock: (-lock.queued, not lock.waiting, lock.pid)):
            info.add((relation, str(lock.pid), "waiting" if lock.waiting else "holding",
                      statement_label(lock.statement, statement_length, double_quoted_literals)), 1.0)
    return [queued, seconds, info]
