"""Statement analysis shared by the advisors (collectors) and the query rules: pure, no connection.

One analyser per SQL dialect, chosen by the dialect's name (``analyser("postgres")``): PostgreSQL text is
read with pglast (PostgreSQL's own parser), MySQL/MariaDB text with sqlglot. Each reads a statement into
the same vocabulary: :class:`StatementUses` (the columns an index could serve) and :class:`Shape` (what the
query hints look for). A statement it does not analyse comes back as a :class:`Skipped` with its reason;
one its parser cannot read is also counted in the analyser's :class:`ParseFailures`, which its owner
exports as ``dbwatch_sql_parse_failures_total{dialect}``.

Schema migrations are read by :func:`dbwatch.sqlshape.ddl_read.read_ddl` (per dialect in ``ddl_pg`` and
``ddl_mysql``): each DDL action with its line, table, lock, and whether it rewrites or scans the table.

Imports only ``dbwatch.model``: collectors and rules import this package, never the other way round.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from dbwatch.sqlshape.failures import METRIC, ParseFailures
from dbwatch.sqlshape.statement import (
    ColumnUse, ExpressionUse, Shape, Skipped, StatementUses, TableKey, TableRef, USE_KINDS,
)

__all__ = [
    "ANALYSERS", "Analyser", "ColumnUse", "ExpressionUse", "METRIC", "MySQLAnalyser", "ParseFailures",
    "PostgresAnalyser", "Shape", "Skipped", "StatementUses", "TableKey", "TableRef", "USE_KINDS", "analyser",
]

if TYPE_CHECKING:
    from dbwatch.sqlshape.mysql import MySQLAnalyser
    from dbwatch.sqlshape.postgres import PostgresAnalyser

#: the analysers' modules, imported with the first use (pglast and sqlglot are heavy: ``dbwatch validate``
#: and ``--version`` import neither)
_LAZY = {"PostgresAnalyser": "dbwatch.sqlshape.postgres", "MySQLAnalyser": "dbwatch.sqlshape.mysql"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Analyser(Protocol):
    """What every dialect reads from a statement's text."""

    dialect: str
    failures: ParseFailures

    def uses(self, text: str, schema: str = "") -> StatementUses[Any] | Skipped: ...

    def shape(self, text: str) -> Shape | Skipped: ...


#: dialect name -> its analyser; a new dialect is one module and one entry here
ANALYSERS: Mapping[str, Callable[[ParseFailures | None], Analyser]] = {
    "postgres": lambda failures: __getattr__("PostgresAnalyser")(failures),
    "mysql": lambda failures: __getattr__("MySQLAnalyser")(failures),
}


def analyser(dialect: str, failures: ParseFailures | None = None) -> Analyser:
    """A new analyser of ``dialect``, counting its parse failures in ``failures`` (a new counter if None)."""
    try:
        make = ANALYSERS[dialect]
    except KeyError:
        raise ValueError(f"no SQL analyser for dialect {dialect!r} (known: {', '.join(sorted(ANALYSERS))})") from None
    return make(failures)
