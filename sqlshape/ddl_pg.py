"""PostgreSQL migration statements read with pglast: the lock each takes and whether it rewrites or scans.

Locks as the ALTER TABLE documentation lists them (PostgreSQL 11+): most subcommands take ACCESS EXCLUSIVE;
ADD FOREIGN KEY takes SHARE ROW EXCLUSIVE on both tables; VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE;
CREATE INDEX takes SHARE, CREATE INDEX CONCURRENTLY SHARE UPDATE EXCLUSIVE.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pglast
from pglast import ast, enums

from dbwatch.sqlshape.ddl import (
    ACCESS_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, Change, DdlError, line_of,
)

__all__ = ["read_pg"]

AT = enums.AlterTableType
CT = enums.ConstrType
#: defaults PostgreSQL 11+ stores in the catalog instead of writing into every row (evaluated once)
STABLE_DEFAULTS = frozenset({"now", "current_timestamp", "transaction_timestamp", "statement_timestamp",
                             "current_date", "localtimestamp", "current_user"})
#: new column types that need no rewrite when they only widen (varchar(n) -> varchar(m > n) or text)
WIDENING_TYPES = frozenset({"text", "varchar", "citext"})
INT_KEY_TYPES = frozenset({"serial", "serial4", "int4", "integer", "int", "smallserial", "int2", "smallint"})


def read_pg(text: str) -> list[Change]:
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        raise DdlError(f"line {line_of(text, max(0, location - 1))}: {exc.args[0]}") from None
    changes: list[Change] = []
    in_transaction = False
    for raw in statements:
        start = raw.stmt_location or 0
        body = text[start:start + raw.stmt_len] if raw.stmt_len else text[start:]
        line = line_of(text, start)
        stmt = raw.stmt
        if isinstance(stmt, ast.TransactionStmt):
            kind = stmt.kind
            if kind in (enums.TransactionStmtKind.TRANS_STMT_BEGIN, enums.TransactionStmtKind.TRANS_STMT_START):
                in_transaction = True
            elif kind in (enums.TransactionStmtKind.TRANS_STMT_COMMIT,
                          enums.TransactionStmtKind.TRANS_STMT_ROLLBACK):
                in_transaction = False
            continue
        base = Change(kind="other", line=line, text=body.strip(), in_transaction=in_transaction)
        changes.extend(_changes(stmt, base))
    return changes


def _changes(stmt: Any, base: Change) -> list[Change]:
    if isinstance(stmt, ast.IndexStmt):
        concurrent = bool(stmt.concurrent)
        return [replace(base, kind="create_unique_index" if stmt.unique else "create_index",
                        table=_name(stmt.relation), concurrent=concurrent, scans=True,
                        lock=SHARE_UPDATE_EXCLUSIVE if concurrent else SHARE)]
    if isinstance(stmt, ast.AlterTableStmt):
        table = _name(stmt.relation)
        return [replace(base, **{"table": table, "lock": ACCESS_EXCLUSIVE, **_alter(cmd)}) for cmd in stmt.cmds or ()]
    if isinstance(stmt, ast.RenameStmt):
        if stmt.renameType == enums.ObjectType.OBJECT_COLUMN:
            return [replace(base, kind="rename_column", table=_name(stmt.relation), column=stmt.subname or "",
                            lock=ACCESS_EXCLUSIVE)]
        if stmt.renameType == enums.ObjectType.OBJECT_TABLE:
            return [replace(base, kind="rename_table", table=_name(stmt.relation), lock=ACCESS_EXCLUSIVE)]
        return [replace(base, kind="rename", table=_name(stmt.relation) if stmt.relation else "",
                        lock=ACCESS_EXCLUSIVE)]
    if isinstance(stmt, ast.DropStmt):
        objects = stmt.objects or ()
        if stmt.removeType == enums.ObjectType.OBJECT_TABLE:
            return [replace(base, kind="drop_table", table=_dotted(o), lock=ACCESS_EXCLUSIVE) for o in objects]
        if stmt.removeType == enums.ObjectType.OBJECT_INDEX:
            concurrent = bool(stmt.concurrent)
            return [replace(base, kind="drop_index", table=_dotted(o), concurrent=concurrent,
                            lock=SHARE_UPDATE_EXCLUSIVE if concurrent else ACCESS_EXCLUSIVE) for o in objects]
        return [base]
    if isinstance(stmt, ast.CreateStmt):
        table = _name(stmt.relation)
        keys = [c for c in stmt.tableElts or () if isinstance(c, ast.ColumnDef) and _is_int_key(c, stmt)]
        return [replace(base, kind="create_table", table=table, int_key=_type(keys[0].typeName) if keys else "",
                        column=(keys[0].colname or "") if keys else "")]
    if isinstance(stmt, ast.VariableSetStmt):
        value = ",".join(_const(a) for a in stmt.args or ())
        return [replace(base, kind="set", setting=(stmt.name or "").lower(), value=value)]
    if isinstance(stmt, ast.VacuumStmt) and any(getattr(o, "defname", "") == "full" for o in stmt.options or ()):
        return [replace(base, kind="vacuum_full", table=_name(r.relation), lock=ACCESS_EXCLUSIVE, rewrites=True)
                for r in stmt.rels or ()]
    if isinstance(stmt, ast.ClusterStmt):
        return [replace(base, kind="cluster", table=_name(stmt.relation) if stmt.relation else "",
                        lock=ACCESS_EXCLUSIVE, rewrites=True)]
    return [base]


def _alter(cmd: Any) -> dict[str, Any]:
    sub = cmd.subtype
    if sub == AT.AT_AddColumn:
        col = cmd.def_
        default, not_null = "", bool(col.is_not_null)
        for c in col.constraints or ():
            if c.contype == CT.CONSTR_DEFAULT:
                default = _default_kind(c.raw_expr)
            not_null = not_null or c.contype in (CT.CONSTR_NOTNULL, CT.CONSTR_PRIMARY)
        int_key = _type(col.typeName) if _is_int_key(col, None) else ""
        serial = _type(col.typeName) in ("serial", "serial4", "bigserial", "serial8", "smallserial")
        # serial, identity and stored generated columns compute a value per row: the table is rewritten
        volatile = default == "volatile" or serial or col.identity not in ("", "\x00", None) \
            or col.generated not in ("", "\x00", None) or any(c.contype == CT.CONSTR_GENERATED
                                                               for c in col.constraints or ())
        return {"kind": "add_column", "column": col.colname or "", "default": "volatile" if serial else default,
                "rewrites": volatile, "int_key": int_key, "not_null": not_null and not default and not volatile}
    if sub == AT.AT_AlterColumnType:
        new = _type(cmd.def_.typeName)
        widening = new in WIDENING_TYPES
        return {"kind": "alter_type", "column": cmd.name or "", "new_type": new, "rewrites": not widening,
                "details": ("no rewrite only if it widens a varchar or turns it into text",) if widening else ()}
    if sub == AT.AT_SetNotNull:
        return {"kind": "set_not_null", "column": cmd.name or "", "scans": True}
    if sub in (AT.AT_DropColumn,):
        return {"kind": "drop_column", "column": cmd.name or ""}
    if sub == AT.AT_ValidateConstraint:
        return {"kind": "validate_constraint", "constraint": cmd.name or "", "lock": SHARE_UPDATE_EXCLUSIVE,
                "scans": True}
    if sub in (AT.AT_AddConstraint,):
        return _constraint(cmd.def_)
    if sub in (AT.AT_SetLogged, AT.AT_SetUnLogged, AT.AT_SetTableSpace):
        return {"kind": "table_rewrite", "rewrites": True}
    if sub in (AT.AT_ColumnDefault, AT.AT_DropNotNull, AT.AT_DropConstraint):
        return {"kind": "metadata", "column": cmd.name or ""}
    return {"kind": "alter_other"}


def _constraint(con: Any) -> dict[str, Any]:
    name = con.conname or ""
    not_valid = bool(con.skip_validation)
    if con.contype == CT.CONSTR_FOREIGN:
        return {"kind": "add_foreign_key", "constraint": name, "not_valid": not_valid, "scans": not not_valid,
                "lock": SHARE_ROW_EXCLUSIVE, "references": _name(con.pktable)}
    if con.contype == CT.CONSTR_CHECK:
        proves = ""
        expr = con.raw_expr
        if isinstance(expr, ast.NullTest) and expr.nulltesttype == enums.NullTestType.IS_NOT_NULL \
                and isinstance(expr.arg, ast.ColumnRef):
            proves = str(getattr((expr.arg.fields or ("",))[-1], "sval", ""))
        return {"kind": "add_check", "constraint": name, "not_valid": not_valid, "scans": not not_valid,
                "not_null_column": proves}
    if con.contype in (CT.CONSTR_UNIQUE, CT.CONSTR_PRIMARY, CT.CONSTR_EXCLUSION):
        using = bool(con.indexname)
        kind = "add_primary_key" if con.contype == CT.CONSTR_PRIMARY else "add_unique"
        return {"kind": kind, "constraint": name, "using_index": using, "scans": not using}
    return {"kind": "alter_other", "constraint": name}


def _default_kind(expr: Any) -> str:
    if isinstance(expr, (ast.A_Const, ast.TypeCast)) and _is_constant(expr):
        return "constant"
    if isinstance(expr, ast.SQLValueFunction):
        return "now"
    if isinstance(expr, ast.FuncCall):
        name = str(getattr((expr.funcname or ("",))[-1], "sval", "")).lower()
        if name in STABLE_DEFAULTS:
            return "now"
    return "volatile"


def _is_constant(expr: Any) -> bool:
    if isinstance(expr, ast.TypeCast):
        return _is_constant(expr.arg)
    return isinstance(expr, ast.A_Const)


def _is_int_key(col: Any, table: Any) -> bool:
    if _type(col.typeName) not in INT_KEY_TYPES:
        return False
    if any(c.contype == CT.CONSTR_PRIMARY for c in col.constraints or ()):
        return True
    for elt in (table.tableElts or ()) if table is not None else ():
        if isinstance(elt, ast.Constraint) and elt.contype == CT.CONSTR_PRIMARY:
            if [str(getattr(k, "sval", "")) for k in elt.keys or ()] == [col.colname]:
                return True
    return False


def _type(name: Any) -> str:
    if name is None:
        return ""
    return str(getattr(name.names[-1], "sval", "")).lower()


def _name(relation: ast.RangeVar | None) -> str:
    if relation is None:
        return ""
    return f"{relation.schemaname}.{relation.relname}" if relation.schemaname else str(relation.relname)


def _dotted(obj: Any) -> str:
    parts = obj if isinstance(obj, tuple) else getattr(obj, "names", (obj,))
    return ".".join(str(getattr(p, "sval", p)) for p in parts)


def _const(arg: Any) -> str:
    value = getattr(arg, "val", None)
    return str(getattr(value, "sval", getattr(value, "ival", getattr(value, "fval", ""))))
