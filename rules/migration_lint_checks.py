"""The checks of ``dbwatch migrate lint`` as data: which change each matches, what it costs, the safe way.

Each :class:`Check` names the change kinds it looks at (see :class:`dbwatch.sqlshape.ddl.Change`), a
predicate over the change and the lint's running state, its severity without live facts, whether that
severity follows the table's size (``scaled``), and the message and safe way as templates. The engine
that applies them is :mod:`dbwatch.rules.migration_lint`. squawk's and strong_migrations' checks, by name:
``index-not-concurrent`` (require-concurrent-index-creation), ``volatile-default``
(adding-field-with-default), ``set-not-null`` (adding-not-nullable-field), ``type-change-rewrite``
(changing-column-type), ``foreign-key-not-valid`` / ``check-not-valid`` (adding-foreign-key-constraint,
constraint-missing-not-valid), ``unique-without-index`` (disallowed-unique-constraint), ``rename-*``,
``drop-*`` (renaming-column, ban-drop-column), ``concurrently-in-transaction``
(ban-concurrent-index-creation-in-transaction), ``missing-lock-timeout`` (require-timeout-settings),
``int-primary-key`` (prefer-bigint-over-int), ``drop-index-not-concurrent`` (require-concurrent-index-deletion),
``not-null-without-default`` (adding-required-field),
``mysql-copy-algorithm`` and ``mysql-index-not-online``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from dbwatch.sqlshape.ddl import MDL_SHARED, Change

__all__ = ["CHECKS", "Check", "ERROR", "INFO", "LintState", "WARNING"]

INFO, WARNING, ERROR = "info", "warning", "error"
PG, MY = "postgres", "mysql"
BOTH = frozenset({PG, MY})


class LintState(Protocol):
    """What a check may ask about the migration so far (see :class:`dbwatch.rules.migration_lint.Run`)."""

    def proven_not_null(self, table: str, column: str) -> bool: ...

    def pg_version(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    kinds: frozenset[str]
    dialects: frozenset[str]
    severity: str  # without live facts
    message: str  # format fields: the Change's (table, column, lock, new_type, constraint, references...)
    safe: str
    scaled: bool = True  # with a target, severity follows the estimated time under the lock
    cap: str = ERROR  # the highest severity live facts may give it
    when: Callable[[Change, LintState], bool] = lambda change, state: True


def _k(*kinds: str) -> frozenset[str]:
    return frozenset(kinds)


CHECKS: tuple[Check, ...] = (
    Check("concurrently-in-transaction", _k("create_index", "create_unique_index", "drop_index"), frozenset({PG}),
          ERROR, "CONCURRENTLY inside a transaction block fails (\"cannot run inside a transaction block\")",
          "run the CONCURRENTLY statement on its own, outside BEGIN ... COMMIT (most migration tools have a "
          "per-migration switch to disable the transaction)", scaled=False,
          when=lambda c, s: c.concurrent and c.in_transaction),
    Check("index-not-concurrent", _k("create_index", "create_unique_index"), frozenset({PG}), ERROR,
          "CREATE INDEX on {table} without CONCURRENTLY takes a {lock} lock: writes wait for the whole build",
          "CREATE INDEX CONCURRENTLY (outside a transaction); if it fails, DROP INDEX CONCURRENTLY the invalid "
          "index and retry", when=lambda c, s: not c.concurrent),
    Check("drop-index-not-concurrent", _k("drop_index"), frozenset({PG}), WARNING,
          "DROP INDEX without CONCURRENTLY takes {lock} on the index's table: reads and writes wait, and they "
          "queue behind it while it waits for running transactions",
          "DROP INDEX CONCURRENTLY (outside a transaction)", scaled=False, when=lambda c, s: not c.concurrent),
    Check("volatile-default", _k("add_column"), frozenset({PG}), ERROR,
          "ADD COLUMN {column} with a volatile default (or serial, identity, stored generated) rewrites {table} "
          "under {lock}",
          "add the column without a default (or with a constant one), set the default for new rows with "
          "ALTER COLUMN ... SET DEFAULT, backfill old rows in batches",
          when=lambda c, s: c.rewrites or (c.default in ("constant", "now") and s.pg_version() < 11)),
    Check("not-null-without-default", _k("add_column"), frozenset({PG}), ERROR,
          "ADD COLUMN {column} NOT NULL without a default fails on {table} as soon as it has a row",
          "add the column nullable (or with a constant default), backfill, then the NOT NULL path: CHECK NOT "
          "VALID, VALIDATE, SET NOT NULL", scaled=False, when=lambda c, s: c.not_null),
    Check("set-not-null", _k("set_not_null"), frozenset({PG}), ERROR,
          "SET NOT NULL on {table}.{column} scans the whole table under {lock}",
          "ADD CONSTRAINT {column}_not_null CHECK ({column} IS NOT NULL) NOT VALID; then VALIDATE CONSTRAINT "
          "(no write lock); then SET NOT NULL (PostgreSQL 12+ uses the valid check and skips the scan); then "
          "DROP CONSTRAINT {column}_not_null",
          when=lambda c, s: not s.proven_not_null(c.table, c.column)),
    Check("type-change-rewrite", _k("alter_type"), frozenset({PG}), ERROR,
          "changing {table}.{column} to {new_type} rewrites the table and its indexes under {lock}",
          "expand/contract: add a new column of the new type, write both, backfill in batches, switch reads, "
          "drop the old column", when=lambda c, s: c.rewrites),
    Check("foreign-key-not-valid", _k("add_foreign_key"), frozenset({PG}), ERROR,
          "a foreign key on {table} without NOT VALID scans it under {lock} on {table} and {references}",
          "ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID; then, in another transaction, VALIDATE CONSTRAINT "
          "(SHARE UPDATE EXCLUSIVE: reads and writes go on)", when=lambda c, s: not c.not_valid),
    Check("check-not-valid", _k("add_check"), frozenset({PG}), ERROR,
          "a CHECK constraint on {table} without NOT VALID scans it under {lock}",
          "ADD CONSTRAINT ... CHECK (...) NOT VALID; then VALIDATE CONSTRAINT in another transaction",
          when=lambda c, s: not c.not_valid),
    Check("unique-without-index", _k("add_unique", "add_primary_key"), frozenset({PG}), ERROR,
          "adding a unique or primary key constraint to {table} builds its index under {lock}",
          "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... UNIQUE (or PRIMARY KEY) USING INDEX",
          when=lambda c, s: not c.using_index),
    Check("table-rewrite", _k("vacuum_full", "cluster", "table_rewrite"), frozenset({PG}), ERROR,
          "this statement ({kind}) rewrites {table} under {lock}",
          "pg_repack or pg_squeeze rebuild online; SET TABLESPACE / SET LOGGED: a new table filled in batches"),
    Check("rename-column", _k("rename_column"), BOTH, ERROR,
          "renaming {table}.{column} breaks the application still running against the old name",
          "expand/contract: add the new column, write both, backfill, read the new one, then drop the old",
          scaled=False),
    Check("rename-table", _k("rename_table"), BOTH, ERROR,
          "renaming {table} breaks the application still running against the old name",
          "expand/contract: create the new table (or a view under the old name), move reads and writes, "
          "then drop the old", scaled=False),
    Check("drop-column", _k("drop_column"), BOTH, ERROR,
          "dropping {table}.{column} breaks code that still reads or writes it, and cannot be undone",
          "stop using the column in the application first (ignore it in the ORM), deploy, then drop it in a "
          "later migration", scaled=False),
    Check("drop-table", _k("drop_table"), BOTH, WARNING,
          "dropping {table} is destructive and cannot be undone",
          "drop only after a release that no longer reads or writes it, with a backup you have restored",
          scaled=False),
    Check("int-primary-key", _k("create_table"), BOTH, WARNING,
          "{table}.{column} is a 32-bit key ({int_key}): it runs out at 2,147,483,647 rows on a growing table, and "
          "widening it later rewrites the table",
          "bigint (bigserial / GENERATED ALWAYS AS IDENTITY on PostgreSQL, BIGINT AUTO_INCREMENT on MySQL)",
          scaled=False, when=lambda c, s: bool(c.int_key)),
    Check("mysql-copy-algorithm", _k("alter_type", "add_foreign_key", "rebuild", "add_column", "add_check",
                                     "add_primary_key"), frozenset({MY}), ERROR,
          "this ALTER on {table} runs with ALGORITHM=COPY: the table is copied with writes blocked",
          "an online schema change tool copies in chunks while writes go on:\n{online}",
          when=lambda c, s: c.lock == MDL_SHARED),
    Check("mysql-index-not-online", _k("create_index", "create_unique_index"), frozenset({MY}), WARNING,
          "index on {table} without ALGORITHM=INPLACE, LOCK=NONE: if the server cannot build it online it "
          "silently falls back to blocking writes",
          "add ALGORITHM=INPLACE, LOCK=NONE so the statement fails instead of blocking", cap=WARNING,
          when=lambda c, s: not (c.algorithm == "INPLACE" and c.lock_clause == "NONE")),
)
