"""PostgreSQL statements, read with pglast (PostgreSQL's own parser): the ``postgres`` dialect."""

from __future__ import annotations

import pglast

from dbwatch.sqlshape import pg_expressions, pg_shape, pg_uses
from dbwatch.sqlshape.failures import ParseFailures
from dbwatch.sqlshape.statement import ExpressionUse, Shape, Skipped, StatementUses, TableRef

__all__ = ["PostgresAnalyser"]


class PostgresAnalyser:
    """Reads PostgreSQL text: normalized (``$1``, from pg_stat_statements) or with its literals (slow log).
    A text pglast cannot read is a failed :class:`Skipped`, counted in ``failures``."""

    dialect = "postgres"

    def __init__(self, failures: ParseFailures | None = None) -> None:
        self.failures = failures if failures is not None else ParseFailures()
        self.failures.watch(self.dialect)

    def uses(self, text: str, schema: str = "") -> StatementUses[TableRef] | Skipped:
        """The column uses of one SELECT, UPDATE or DELETE. Tables stay as written (``schema`` is not
        used: the server's search_path resolves unqualified names)."""
        return self.failures.attempt(self.dialect, lambda: pg_uses.uses(text))

    def shape(self, text: str) -> Shape | Skipped:
        return self.failures.attempt(self.dialect, lambda: pg_shape.shape(text))

    def expression_uses(self, text: str) -> list[ExpressionUse] | Skipped:
        """Functions and casts on a column in the WHERE of one SELECT, UPDATE or DELETE."""
        return self.failures.attempt(self.dialect, lambda: pg_expressions.expression_uses(text))

    def index_signatures(self, expressions: str) -> set[tuple[str, str, str]] | Skipped:
        """(kind, name, column) of the function or cast keys of an index, from pg_get_expr's text."""
        return self.failures.attempt(self.dialect, lambda: pg_expressions.index_signatures(expressions))

    def fingerprint(self, text: str) -> str | Skipped:
        """pglast's fingerprint of a statement: constants and parameters ignored, so ``customer_id = 4242``
        and ``customer_id = $1`` agree."""
        return self.failures.attempt(self.dialect, lambda: str(pglast.parser.fingerprint(text)))

    @staticmethod
    def preparable(text: str) -> str:
        """The normalized statement as text that ``PREPARE`` accepts."""
        return pg_uses.preparable(text)
