"""The rules written in Python that ship with dbwatch (recommendations, failover triggers, backups).

Each family of rules lives in its own module and offers a factory that takes the ``rules:`` section of the
config and returns its rule objects (see :class:`~dbwatch.rules.engine.PythonRule`). A family is added
here, in :data:`FAMILIES`, as ``"dbwatch.rules.module:factory"``; modules are imported when the rules are built, so a
family's dependencies (a SQL parser, say) load only when it is used.
"""

from __future__ import annotations

import importlib
from typing import Iterable

from dbwatch.rules.engine import PythonRule
from dbwatch.rules.spec import RulesConfig

__all__ = ["FAMILIES", "python_rules"]

#: ``"package.module:factory"``; each factory is ``(RulesConfig) -> Iterable[PythonRule]``
FAMILIES: tuple[str, ...] = ("dbwatch.rules.replication:replication_rules", "dbwatch.rules.backups:backup_rules",
                               "dbwatch.rules.indexes:make_rules", "dbwatch.rules.queries:make_rules",
                               "dbwatch.rules.query_index_hints:make_rules",
                               "dbwatch.rules.tuning:make_rules", "dbwatch.rules.security:make_rules",
                               "dbwatch.rules.schema:make_rules",
                               "dbwatch.rules.schema_drift:make_rules",
                               "dbwatch.rules.pg_storage:make_rules", "dbwatch.rules.timescale:make_rules",
                               "dbwatch.rules.mysql_indexes:make_rules", "dbwatch.rules.mongo_indexes:make_rules",
                               "dbwatch.rules.neo4j_indexes:make_rules")


def python_rules(config: RulesConfig | None = None) -> list[PythonRule]:
    config = config or RulesConfig()
    rules: list[PythonRule] = []
    for family in FAMILIES:
        module, _, factory = family.partition(":")
        make = getattr(importlib.import_module(module), factory)
        built: Iterable[PythonRule] = make(config)
        rules.extend(built)
    return rules
