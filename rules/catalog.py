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

__all__ = ["FAMILIES", "SECTIONS", "python_rules"]

#: ``"package.module:factory"``; each factory is ``(RulesConfig) -> Iterable[PythonRule]``
FAMILIES: tuple[str, ...] = ("dbwatch.rules.replication:replication_rules", "dbwatch.rules.backups:backup_rules",
                               "dbwatch.rules.indexes:make_rules", "dbwatch.rules.queries:make_rules",
                               "dbwatch.rules.query_index_hints:make_rules",
                               "dbwatch.rules.tuning:make_rules", "dbwatch.rules.security:make_rules",
                               "dbwatch.rules.schema:make_rules",
                               "dbwatch.rules.schema_drift:make_rules",
                               "dbwatch.rules.pg_storage:make_rules", "dbwatch.rules.timescale:make_rules",
                               "dbwatch.rules.mysql_indexes:make_rules", "dbwatch.rules.mongo_indexes:make_rules",
                               "dbwatch.rules.neo4j_indexes:make_rules",
                               "dbwatch.rules.cassandra:make_rules", "dbwatch.rules.capacity:make_rules")

#: ``dbwatch advise --section NAME``: the families one section of the advice is made of (a family may also
#: be in FAMILIES or not; a section's families run only when the section is asked for or no section is)
SECTIONS: dict[str, tuple[str, ...]] = {
    "strategy": ("dbwatch.rules.strategy:make_rules",),
    "schema": ("dbwatch.rules.schema:make_rules", "dbwatch.rules.schema_design:make_rules"),
    "ha": ("dbwatch.rules.ha_review:make_rules",),
}


def python_rules(config: RulesConfig | None = None, section: str | None = None) -> list[PythonRule]:
    """All families (FAMILIES and every section's), or only ``section``'s."""
    config = config or RulesConfig()
    rules: list[PythonRule] = []
    families = SECTIONS[section] if section is not None else (
        *FAMILIES, *(f for fs in SECTIONS.values() for f in fs if f not in FAMILIES))
    for family in families:
        module, _, factory = family.partition(":")
        make = getattr(importlib.import_module(module), factory)
        built: Iterable[PythonRule] = make(config)
        rules.extend(built)
    return rules
