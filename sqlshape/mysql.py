"""MySQL/MariaDB statements, read with sqlglot (MySQL dialect): the ``mysql`` dialect.

sqlglot is imported with the first MySQL statement, not with the package: an agent watching only
PostgreSQL never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from dbwatch.sqlshape.failures import ParseFailures
from dbwatch.sqlshape.statement import Shape, Skipped, TableKey

if TYPE_CHECKING:
    from dbwatch.sqlshape.mysql_uses import MySQLStatement

__all__ = ["MySQLAnalyser"]


class MySQLAnalyser:
    """Reads MySQL text: a digest (literals as ``?``, lists as ``IN (...)``) or a sample with its literals.
    A text sqlglot cannot read is a failed :class:`Skipped`, counted in ``failures``."""

    dialect = "mysql"

    def __init__(self, failures: ParseFailures | None = None) -> None:
        self.failures = failures if failures is not None else ParseFailures()
        self.failures.watch(self.dialect)

    def uses(self, text: str, schema: str = "") -> MySQLStatement | Skipped:
        """The column uses of one SELECT, UPDATE or DELETE (the latter two as the SELECT of their rows),
        tables without a schema resolved to ``schema``; the server's own catalogs are skipped."""
        from dbwatch.sqlshape import mysql_uses

        return self.failures.attempt(self.dialect, lambda: mysql_uses.uses(text, schema))

    def shape(self, text: str) -> Shape | Skipped:
        from dbwatch.sqlshape import mysql_shape

        return self.failures.attempt(self.dialect, lambda: mysql_shape.shape(text))

    @staticmethod
    def explainable(parsed: MySQLStatement, types: Mapping[TableKey, Mapping[str, str]]) -> str:
        """The statement as MySQL text to EXPLAIN, each placeholder replaced by a value of the compared
        column's type (``types``: table -> lower-case column -> data type; empty: 1)."""
        from dbwatch.sqlshape import mysql_uses

        return mysql_uses.explainable(parsed, types)
