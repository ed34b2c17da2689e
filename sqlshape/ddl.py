"""What each statement of a schema migration does to the table it touches: pure, no connection.

A migration file is read into a list of :class:`Change` (one per action: ``ALTER TABLE t ADD COLUMN a,
DROP COLUMN b`` is two), each with its file line, the table, the lock the server takes, whether it rewrites
or scans the table, and the few details the lint's rules read (a volatile default, ``NOT VALID``,
``CONCURRENTLY``, MySQL's ``ALGORITHM``/``LOCK``...). :func:`dbwatch.sqlshape.ddl_read.read_ddl` picks the
dialect's reader: ``postgres`` (pglast, :mod:`.ddl_pg`) or ``mysql`` (sqlglot, :mod:`.ddl_mysql`). Text the
parser cannot read raises :class:`DdlError` naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ACCESS_EXCLUSIVE", "Change", "DdlError", "MDL_EXCLUSIVE", "MDL_SHARED", "NO_LOCK", "SHARE",
           "SHARE_ROW_EXCLUSIVE", "SHARE_UPDATE_EXCLUSIVE", "blocks_writes", "line_of"]

# PostgreSQL's table lock modes (the documentation's names), weakest that matters first.
NO_LOCK = "none"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"  # reads and writes go on (CONCURRENTLY, VALIDATE)
SHARE = "SHARE"  # blocks writes (CREATE INDEX)
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"  # blocks writes (ADD FOREIGN KEY, both tables)
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"  # blocks reads and writes (most ALTER TABLE)
# MySQL/MariaDB: every ALTER takes the exclusive metadata lock at least briefly; LOCK=NONE lets DML run between.
MDL_EXCLUSIVE = "exclusive metadata lock"
MDL_SHARED = "shared metadata lock, writes blocked"  # LOCK=SHARED, or ALGORITHM=COPY


@dataclass(frozen=True, slots=True)
class Change:
    """One action of one statement of a migration file."""

    kind: str  # create_index, add_column, alter_type, set_not_null, add_foreign_key, add_check, add_unique, ...
    line: int  # 1-based line of the statement in its file
    text: str  # the statement as written
    table: str = ""  # as written (schema.table when qualified); "" when none
    lock: str = NO_LOCK
    rewrites: bool = False  # the whole table is copied (and every index rebuilt)
    scans: bool = False  # the whole table is read while the lock is held
    column: str = ""
    constraint: str = ""
    concurrent: bool = False  # CONCURRENTLY (PostgreSQL)
    not_valid: bool = False  # NOT VALID (PostgreSQL)
    default: str = ""  # "", "constant", "now" (stable: now(), CURRENT_TIMESTAMP) or "volatile"
    not_null_column: str = ""  # a CHECK (col IS NOT NULL) constraint: the column it proves
    not_null: bool = False  # ADD COLUMN ... NOT NULL
    using_index: bool = False  # ADD CONSTRAINT ... USING INDEX (PostgreSQL)
    references: str = ""  # a foreign key's referenced table
    int_key: str = ""  # a 32-bit key column's type (serial, integer, INT AUTO_INCREMENT)
    new_type: str = ""  # ALTER COLUMN TYPE / MODIFY: the new type as written
    algorithm: str = ""  # MySQL ALGORITHM= as written (upper case), "" when not given
    lock_clause: str = ""  # MySQL LOCK= as written (upper case)
    setting: str = ""  # SET name (lower case) for kind "set"
    value: str = ""  # SET value
    in_transaction: bool = False  # inside an explicit BEGIN ... COMMIT of the file
    details: tuple[str, ...] = field(default_factory=tuple)  # what else the reader noticed, for the report


class DdlError(ValueError):
    """A migration file's text the dialect's parser cannot read; the message names the line."""


def blocks_writes(lock: str) -> bool:
    """Whether writers wait while this lock is held (readers too for ACCESS EXCLUSIVE)."""
    return lock in (SHARE, SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE, MDL_SHARED)


def line_of(text: str, offset: int) -> int:
    """The 1-based line of the first word at or after ``offset``, past blanks and comments."""
    n = len(text)
    i = offset
    while i < n:
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i) or text.startswith("#", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            break
    return text.count("\n", 0, min(i, n)) + 1
