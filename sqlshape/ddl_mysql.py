"""MySQL/MariaDB migration statements read with sqlglot: the algorithm InnoDB's online DDL picks for each.

InnoDB's online DDL (MySQL 8.0 / MariaDB 10.3+): adding a column is INSTANT; adding a secondary index is
INPLACE with concurrent DML; changing a column's type, converting the character set and adding a foreign
key with ``foreign_key_checks`` on fall back to COPY (the table is copied with writes blocked). Statements
are split here (sqlglot keeps no positions) so that each keeps its file line; the ``ALGORITHM=``/``LOCK=``
clauses are read from the text, as sqlglot leaves some forms (``CREATE INDEX ... LOCK=NONE``) unparsed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

import sqlglot
from sqlglot import exp

from dbwatch.sqlshape.ddl import MDL_EXCLUSIVE, MDL_SHARED, Change, DdlError, line_of

__all__ = ["read_mysql", "split_statements"]

_ALGORITHM = re.compile(r"\bALGORITHM\s*=\s*(\w+)", re.I)
_LOCK = re.compile(r"\bLOCK\s*=\s*(\w+)", re.I)
_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX\s+\S+\s+ON\s+([`\w.]+)", re.I)
_RENAME_TABLE = re.compile(r"^\s*RENAME\s+TABLES?\s+([`\w.]+)\s+TO\s+", re.I)
_ALTER_TABLE = re.compile(r"^\s*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+([`\w.]+)\s+(.*)$", re.I | re.S)
_DELIMITER = re.compile(r"DELIMITER[ \t]+(\S+)[^\n]*(?:\n|$)", re.I)
_COPY_FORMS = re.compile(r"\bCONVERT\s+TO\s+CHARACTER\s+SET\b|\bENGINE\s*=|\bFORCE\b|\bPARTITION\s+BY\b", re.I)
INT_KEY_TYPES = frozenset({"INT", "MEDIUMINT", "SMALLINT", "TINYINT", "UINT", "UMEDIUMINT", "USMALLINT"})

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to a Command" warnings are ours to handle


def read_mysql(text: str) -> list[Change]:
    changes: list[Change] = []
    in_transaction = False
    for start, body in split_statements(text):
        line = line_of(text, start)
        word = body.split(None, 1)[0].upper() if body.split() else ""
        if word in ("BEGIN", "COMMIT", "ROLLBACK") or body.upper().startswith("START TRANSACTION"):
            in_transaction = word not in ("COMMIT", "ROLLBACK")
            continue
        try:
            tree = sqlglot.parse_one(body, read="mysql")
        except sqlglot.errors.ParseError as exc:
            raise DdlError(f"line {line}: {str(exc).splitlines()[0]}") from None
        algorithm = (m.group(1).upper() if (m := _ALGORITHM.search(body)) else "")
        lock = (m.group(1).upper() if (m := _LOCK.search(body)) else "")
        base = Change(kind="other", line=line, text=body, in_transaction=in_transaction, algorithm=algorithm,
                      lock_clause=lock)
        changes.extend(_mark_copy(c) for c in _changes(tree, body, base))
    return changes


def split_statements(text: str) -> list[tuple[int, str]]:
    """(offset, text) of each ``;``-terminated statement, quotes and comments respected, and the mysql
    client's ``DELIMITER //`` (triggers and procedures in a migration) obeyed."""
    out: list[tuple[int, str]] = []
    start, i, n = 0, 0, len(text)
    delimiter = ";"
    head = _skip(text, start, n)  # where the current statement's first word is
    while i < n:
        ch = text[i]
        if i == head and (m := _DELIMITER.match(text, i)) is not None:
            delimiter = m.group(1)
            start = i = m.end()
            head = _skip(text, start, n)
        elif ch in "'\"`":
            end = i + 1
            while end < n and text[end] != ch:
                end += 2 if text[end] == "\\" else 1
            i = end + 1
        elif text.startswith("--", i) or ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif text.startswith(delimiter, i):
            _keep(out, text, start, i)
            start = i = i + len(delimiter)
            head = _skip(text, start, n)
        else:
            i += 1
    _keep(out, text, start, n)
    return out


def _keep(out: list[tuple[int, str]], text: str, start: int, end: int) -> None:
    offset = _skip(text, start, end)
    body = text[offset:end].strip()
    if body:
        out.append((offset, body))


def _skip(text: str, i: int, end: int) -> int:
    while i < end:
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i) or text[i] == "#":
            nl = text.find("\n", i)
            i = end if nl < 0 else nl + 1
        elif text.startswith("/*", i) and not text.startswith("/*!", i):
            close = text.find("*/", i + 2)
            i = end if close < 0 else close + 2
        else:
            break
    return i


def _changes(tree: Any, body: str, base: Change) -> list[Change]:
    if (m := _CREATE_INDEX.match(body)) is not None:
        unique = bool(m.group(1)) and m.group(1).strip().upper() == "UNIQUE"
        return [replace(base, kind="create_unique_index" if unique else "create_index", table=_strip(m.group(2)),
                        scans=True, lock=MDL_EXCLUSIVE)]
    if (m := _RENAME_TABLE.match(body)) is not None:
        return [replace(base, kind="rename_table", table=_strip(m.group(1)), lock=MDL_EXCLUSIVE)]
    if isinstance(tree, exp.Alter):
        table = _table(tree.this)
        actions = list(tree.args.get("actions") or [])
        out = [replace(base, table=table, lock=MDL_EXCLUSIVE, **_action(a)) for a in actions]
        out += [replace(base, kind="rename_column", table=table, column=a.args["rename_from"].name, lock=MDL_EXCLUSIVE)
                for a in actions if isinstance(a, exp.ModifyColumn) and a.args.get("rename_from") is not None
                and a.args["rename_from"].name.lower() != a.this.name.lower()]
        return out or [replace(base, kind="rebuild", table=table, lock=MDL_EXCLUSIVE, rewrites=True)]
    if isinstance(tree, exp.Command) and (m := _ALTER_TABLE.match(body)) is not None:
        copy = bool(_COPY_FORMS.search(m.group(2)))
        return [replace(base, kind="rebuild" if copy else "alter_other", table=_strip(m.group(1)),
                        lock=MDL_EXCLUSIVE, rewrites=copy)]
    if isinstance(tree, exp.Drop) and str(tree.args.get("kind", "")).upper() == "TABLE":
        tables = tree.args.get("tables") or [tree.this]
        return [replace(base, kind="drop_table", table=_table(t), lock=MDL_EXCLUSIVE) for t in tables]
    if isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "TABLE":
        schema = tree.this
        table = _table(schema.this if isinstance(schema, exp.Schema) else schema)
        key = _int_key(schema) if isinstance(schema, exp.Schema) else None
        return [replace(base, kind="create_table", table=table, int_key=key[1] if key else "",
                        column=key[0] if key else "")]
    if isinstance(tree, exp.Set):
        out = []
        for item in tree.expressions:
            eq = item.this
            if isinstance(eq, exp.EQ):
                out.append(replace(base, kind="set", setting=eq.this.name.lower(), value=eq.expression.name))
        return out
    return [base]


def _action(action: Any) -> dict[str, Any]:
    if isinstance(action, exp.ColumnDef):
        return {"kind": "add_column", "column": action.name}
    if isinstance(action, exp.ModifyColumn):
        col = action.this
        return {"kind": "alter_type", "column": col.name, "new_type": col.args["kind"].sql("mysql"), "rewrites": True}
    if isinstance(action, exp.RenameColumn):
        return {"kind": "rename_column", "column": action.this.name}
    if isinstance(action, exp.Drop):
        kind = str(action.args.get("kind", "")).upper()
        if kind == "COLUMN":
            columns = action.args.get("tables") or action.expressions
            return {"kind": "drop_column", "column": columns[0].name if columns else "", "rewrites": True}
        return {"kind": "metadata"}
    if isinstance(action, exp.AddConstraint):
        return _constraint(action.expressions[0] if action.expressions else None)
    if isinstance(action, exp.AlterColumn):
        return {"kind": "metadata", "column": action.name}
    if isinstance(action, exp.AlterRename):
        return {"kind": "rename_table"}
    return {"kind": "alter_other"}


def _constraint(con: Any) -> dict[str, Any]:
    inner = con.expressions[0] if isinstance(con, exp.Constraint) and con.expressions else con
    if isinstance(inner, exp.ForeignKey):
        ref = inner.args.get("reference")
        return {"kind": "add_foreign_key", "rewrites": True, "scans": True,
                "references": _table(ref.this.this if ref is not None and isinstance(ref.this, exp.Schema)
                                     else ref.this if ref is not None else None)}
    if isinstance(inner, exp.UniqueColumnConstraint):
        return {"kind": "create_unique_index", "scans": True}
    if isinstance(inner, exp.PrimaryKey) or isinstance(inner, exp.PrimaryKeyColumnConstraint):
        return {"kind": "add_primary_key", "rewrites": True, "scans": True}
    if isinstance(inner, exp.IndexColumnConstraint):
        return {"kind": "create_index", "scans": True}
    if isinstance(inner, exp.CheckColumnConstraint):
        return {"kind": "add_check", "scans": True, "rewrites": True}
    return {"kind": "alter_other"}


def _mark_copy(change: Change) -> Change:
    """An explicit ALGORITHM=COPY copies whatever the change; a COPY change blocks writes."""
    rewrites = change.rewrites or change.algorithm == "COPY"
    copies = rewrites and change.algorithm not in ("INPLACE", "INSTANT") and change.kind != "drop_column"
    return replace(change, rewrites=rewrites, lock=MDL_SHARED if copies else change.lock)


def _int_key(schema: exp.Schema) -> tuple[str, str] | None:
    primary: list[str] = []
    for e in schema.expressions:
        if isinstance(e, exp.PrimaryKey):
            primary = [c.name for c in e.expressions]
    for col in schema.expressions:
        if isinstance(col, exp.ColumnDef):
            key_type = _key_type(col)
            is_pk = any(isinstance(c.kind, exp.PrimaryKeyColumnConstraint) for c in col.constraints)
            if key_type and (is_pk or primary == [col.name]):
                return col.name, key_type
    return None


def _key_type(col: exp.ColumnDef) -> str | None:
    kind = col.args.get("kind")
    name = kind.this.name if isinstance(kind, exp.DataType) else ""
    return name if name in INT_KEY_TYPES else None


def _table(node: Any) -> str:
    if not isinstance(node, exp.Table):
        return ""
    return f"{node.db}.{node.name}" if node.db else node.name


def _strip(name: str) -> str:
    return name.replace("`", "")
