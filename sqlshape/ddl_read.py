"""Reading a migration file with its dialect's DDL reader, chosen by name.

The readers import their parser (pglast, sqlglot) when first used, so a lint of PostgreSQL files never pays
for sqlglot; they depend on :mod:`.ddl` for the shapes, and :mod:`.ddl` on neither of them.
"""

from __future__ import annotations

import importlib
from typing import Callable

from dbwatch.sqlshape.ddl import Change

__all__ = ["DIALECTS", "read_ddl"]

#: dialect -> (module, function) of its reader
_READERS = {"postgres": ("dbwatch.sqlshape.ddl_pg", "read_pg"), "mysql": ("dbwatch.sqlshape.ddl_mysql", "read_mysql")}
DIALECTS = tuple(sorted(_READERS))


def read_ddl(text: str, dialect: str) -> list[Change]:
    """Every change the statements of ``text`` make, in order; raises :class:`~.ddl.DdlError`."""
    try:
        module, function = _READERS[dialect]
    except KeyError:
        raise ValueError(f"no DDL reader for dialect {dialect!r} (known: {', '.join(DIALECTS)})") from None
    reader: Callable[[str], list[Change]] = getattr(importlib.import_module(module), function)
    return reader(text)
