"""What a statement's text says, in the terms the advisors and the query rules use, for every dialect.

Two readings of one statement: :class:`StatementUses` (which columns of which tables it filters, joins and
sorts on: what an index could serve) for the index advisors, and :class:`Shape` (SELECT *, a leading-wildcard
LIKE, a deep OFFSET, ...) for the query rules. A statement that is not analysed is a :class:`Skipped`, with
its reason; ``failed`` when the parser could not read it (those are counted, see ``failures.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["ColumnUse", "ExpressionUse", "Shape", "Skipped", "StatementUses", "TableKey", "TableRef", "USE_KINDS"]

TableRef = tuple[str | None, str]  # PostgreSQL: (schema or None, table) as written, case-folded by the parser
TableKey = tuple[str, str]  # MySQL: (schema, table), every table resolved to its schema
Ref = TypeVar("Ref", bound=TableRef)
USE_KINDS = ("equality", "range", "join", "order", "null", "not_null")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A statement left out, and why. ``failed``: the parser could not read it (counted as a parse failure),
    rather than a statement of a kind the analysis does not cover (an INSERT, text cut off, ...)."""

    reason: str
    failed: bool = False


@dataclass(slots=True)
class ColumnUse:
    """How one table's columns are used by a statement, each list in order of first appearance."""

    equality: list[str] = field(default_factory=list)
    range: list[str] = field(default_factory=list)
    join: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    # Equality columns tested with IS NULL / IS NOT NULL (in ``equality`` too): their selectivity is the
    # column's null fraction, not its number of distinct values.
    null: list[str] = field(default_factory=list)
    not_null: list[str] = field(default_factory=list)

    def add(self, kind: str, column: str) -> None:
        columns: list[str] = getattr(self, kind)
        if column not in columns:
            columns.append(column)

    def merge(self, other: ColumnUse) -> None:
        for kind in USE_KINDS:
            for column in getattr(other, kind):
                self.add(kind, column)


@dataclass(slots=True)
class StatementUses(Generic[Ref]):
    """The columns one SELECT, UPDATE or DELETE filters (``=``, ``IN``, ``IS NULL``: equality; ``<``,
    ``BETWEEN``, a ``LIKE`` prefix: range), joins on and sorts by, per table. Only conjunctions are followed:
    an ``OR`` branch cannot be served by one b-tree index."""

    kind: str  # "select", "update" or "delete"
    params: int  # PostgreSQL: the highest $n placeholder; MySQL: the number of ? placeholders
    tables: dict[Ref, ColumnUse]  # every table the statement names, with how it uses their columns
    names: dict[str, Ref]  # the name a plan shows for a table (its alias, else its name) -> the table
    #: columns written without a table in a scope of several tables: (candidate tables, kind, column)
    unqualified: list[tuple[tuple[Ref, ...], str, str]]

    def use(self, table: Ref, kind: str, column: str) -> None:
        self.tables.setdefault(table, ColumnUse()).add(kind, column)


@dataclass(slots=True)
class Shape:
    """What the query rules read from a statement's text (of any kind)."""

    kind: str  # select, insert, update, delete, other
    tables: list[str] = field(default_factory=list)  # every table named, outer query first
    single_table: bool = False  # one table, no join, no subquery
    key_lookup: bool = False  # WHERE is only ANDed equalities of a column with a parameter or literal
    aggregate: bool = False  # GROUP BY or an aggregate in the select list: rows per call say nothing of size
    select_star: bool = False
    count_compared: bool = False  # count(*) compared with a value, where EXISTS would stop at the first row
    correlated_subquery: bool = False  # a scalar subquery referring to the outer query's tables
    not_in_subquery: bool = False
    offset: int | None = None  # a literal OFFSET
    offset_param: bool = False  # OFFSET given as a parameter (value unknown)
    leading_wildcard: list[str] = field(default_factory=list)  # columns compared with LIKE '%…'
    has_limit: bool = False
    single_row_insert: bool = False

    @property
    def application(self) -> bool:
        """Whether it touches a table of the application's (not only the server's catalogs, as the agent's
        own statements and the admin's do)."""
        return any(not _catalog(t) for t in self.tables)


@dataclass(frozen=True, slots=True)
class ExpressionUse:
    """A function or a cast applied to one column in a WHERE comparison (``lower(email) = $1``)."""

    table: TableRef | None  # None when it cannot be told
    column: str
    kind: str  # "function" or "cast"
    name: str  # the function's name (last part) or the cast's type name
    expression: str  # as the dialect prints it: "lower(email)", "created_at::date"

    @property
    def signature(self) -> tuple[str, str, str]:
        """What it computes, comparable with an expression index's keys: (kind, name, column)."""
        return (self.kind, self.name, self.column)


_CATALOG_SCHEMAS = ("pg_catalog.", "information_schema.", "performance_schema.", "mysql.", "sys.")


def _catalog(table: str) -> bool:
    return table.lower().startswith(_CATALOG_SCHEMAS) or table.split(".")[-1].startswith("pg_")
