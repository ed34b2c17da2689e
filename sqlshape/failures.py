"""Statements a parser could not read, counted per dialect, so that a gap in the advice is visible.

The owner of an analyser holds one :class:`ParseFailures`: an advisor collector exports it on its snapshots as
``dbwatch_sql_parse_failures_total{dialect}``, the rules engine a query rule's as
``dbwatch_rule_sql_parse_failures_total{rule,dialect}``. The statement's text is never logged nor put in the reason:
a slow-log sample keeps its literals, which may be anything.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

from dbwatch.model import MetricFamily, counter
from dbwatch.sqlshape.statement import Skipped

__all__ = ["METRIC", "ParseFailures"]

METRIC = "dbwatch_sql_parse_failures_total"
T = TypeVar("T")
logger = logging.getLogger("dbwatch.sqlshape")


class ParseFailures:
    """A counter of parse failures by dialect (a dialect being watched shows 0 before its first failure)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def watch(self, dialect: str) -> None:
        self._counts.setdefault(dialect, 0)

    def count(self, dialect: str) -> int:
        return self._counts.get(dialect, 0)

    def counts(self) -> dict[str, int]:
        """Failures by dialect, every watched dialect included."""
        return dict(sorted(self._counts.items()))

    def attempt(self, dialect: str, analysis: Callable[[], T | Skipped]) -> T | Skipped:
        """``analysis()``, or a counted, failed :class:`Skipped` when it raises (the parser's error, or a
        tree the analysis did not expect: either way the statement was not understood, and no advice is
        better than a wrong one)."""
        try:
            return analysis()
        except Exception as exc:
            return self.failed(dialect, _reason(exc))

    def failed(self, dialect: str, reason: str) -> Skipped:
        self._counts[dialect] = self._counts.get(dialect, 0) + 1
        logger.debug("%s statement skipped, not parsed: %s", dialect, reason)
        return Skipped(reason, failed=True)

    def family(self) -> MetricFamily:
        fam = counter(METRIC, "Statements the SQL analysis could not parse (skipped: no advice or hint from them).",
                      ("dialect",))
        for dialect, count in self.counts().items():
            fam.add((dialect,), count)
        return fam


def _reason(exc: Exception) -> str:
    """The error's kind and where in the text, never the text: parsers quote the tokens around an error."""
    errors = getattr(exc, "errors", None)  # sqlglot: [{"description": ..., "line": ..., "col": ...}, ...]
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return f"{type(exc).__name__}: {first.get('description')} at line {first.get('line')}, column {first.get('col')}"
    if len(exc.args) == 2 and isinstance(exc.args[1], int):  # pglast: (message quoting the text, offset)
        return f"{type(exc).__name__} at offset {exc.args[1]}"
    return type(exc).__name__
