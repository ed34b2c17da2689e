"""Every collector's metric catalog (one ``catalog_<engine>`` module per engine), and the check that a
collection emitted only declared families.

The catalogs are separate modules, not attributes of the collector classes, so that the docs generator and
the tests read them without importing any driver.
"""

from __future__ import annotations

from types import ModuleType
from typing import Iterable

from dbwatch.collectors import (catalog_backup, catalog_cassandra, catalog_host, catalog_migrations, catalog_mongodb,
                                catalog_mysql,
                                catalog_pgbouncer, catalog_postgres, catalog_postgres_parity, catalog_redis,
                                catalog_slowlog, catalog_sqlshape, catalog_timescale)
from dbwatch.collectors import catalog_custom, catalog_neo4j
from dbwatch.model import MetricFamily
from dbwatch.model.catalog import MetricSpec, find

#: in the order docs/metrics.md shows them
SECTIONS: tuple[ModuleType, ...] = (catalog_postgres, catalog_postgres_parity, catalog_timescale, catalog_mysql,
                                    catalog_custom,
                                    catalog_migrations, catalog_slowlog, catalog_sqlshape, catalog_redis,
                                    catalog_pgbouncer, catalog_mongodb, catalog_neo4j, catalog_cassandra, catalog_host,
                                    catalog_backup)


def families(engine: str, collector: str) -> list[MetricSpec]:
    """What the collector ``collector`` of an ``engine`` target may emit."""
    return [spec for module in SECTIONS if engine in module.ENGINES or "*" in module.ENGINES
            for spec in module.FAMILIES if spec.collector == collector]


def all_families() -> list[MetricSpec]:
    return [spec for module in SECTIONS for spec in module.FAMILIES]


def undeclared(engine: str, collector: str, emitted: Iterable[MetricFamily]) -> list[str]:
    """One line per emitted family the catalog does not declare as emitted (name, type and labels)."""
    declared = families(engine, collector)
    problems = []
    for family in emitted:
        spec = find(declared, family.name)
        where = f"{engine}/{collector}: {family.name}"
        if spec is None:
            problems.append(f"{where} is not declared in the catalog (collectors/catalog_*.py)")
        elif spec.type is not None and spec.type != family.type:
            problems.append(f"{where} is a {family.type}, the catalog says {spec.type}")
        elif tuple(spec.labels) != tuple(family.labelnames):
            problems.append(f"{where} has labels {family.labelnames}, the catalog says {spec.labels}")
    return problems
