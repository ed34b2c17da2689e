"""The version tables of migration tools, read where present: which migration each schema is at.

Flyway (``flyway_schema_history``), Liquibase (``databasechangelog``), Alembic (``alembic_version``), Django
(``django_migrations``), Rails (``schema_migrations`` with a text ``version``), golang-migrate
(``schema_migrations`` with ``version`` and ``dirty``) and sqitch (``sqitch.changes``). Found by name in
``information_schema`` (a table the monitoring user may not read is not listed there), each read with one
small query; the engines' migrations collectors call :func:`read_versions` with their session's ``run``.

``dbwatch_schema_migration_info{schema, tool, version}`` is 1 per version: Flyway's and Liquibase's last
applied, every Alembic head, Django's newest migration per app (``app.name``), sqitch's newest change per
project (``project:change``). ``dbwatch_schema_migration_dirty{schema, tool}`` is golang-migrate's flag: 1
after a migration failed half-way (golang-migrate refuses to run until it is forced).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

from dbwatch.collectors.base import CollectorError
from dbwatch.model import MetricFamily, gauge

__all__ = ["MYSQL_DISCOVER", "PG_DISCOVER", "TOOL_QUERIES", "Version", "read_versions", "version_families"]

_NAMES = "('flyway_schema_history', 'databasechangelog', 'alembic_version', 'django_migrations', " \
         "'schema_migrations', 'changes')"

PG_DISCOVER = f"""
SELECT t.table_schema AS schema, t.table_name AS name,
       EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = t.table_schema
               AND c.table_name = t.table_name AND c.column_name = 'dirty') AS dirty
FROM information_schema.tables t
WHERE t.table_name IN {_NAMES} AND t.table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2
"""

MYSQL_DISCOVER = f"""
SELECT t.TABLE_SCHEMA AS `schema`, t.TABLE_NAME AS name,
       EXISTS (SELECT 1 FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA
               AND c.TABLE_NAME = t.TABLE_NAME AND LOWER(c.COLUMN_NAME) = 'dirty') AS dirty
FROM information_schema.TABLES t
WHERE LOWER(t.TABLE_NAME) IN {_NAMES}
  AND t.TABLE_SCHEMA NOT IN ('mysql', 'performance_schema', 'information_schema', 'sys')
ORDER BY 1, 2
"""

#: per tool, the query for its versions (``{t}`` is the table, quoted): rows of ``v`` and, where there are
#: several streams (Django apps, sqitch projects), ``a``
TOOL_QUERIES: Mapping[str, str] = {
    "flyway": "SELECT version AS v FROM {t} WHERE success AND version IS NOT NULL "
              "ORDER BY installed_rank DESC LIMIT 1",
    "liquibase": "SELECT id AS v FROM {t} ORDER BY orderexecuted DESC LIMIT 1",
    "alembic": "SELECT version_num AS v FROM {t} ORDER BY version_num",
    "django": "SELECT app AS a, max(name) AS v FROM {t} GROUP BY app ORDER BY app",
    "rails": "SELECT max(version) AS v FROM {t}",
    "golang-migrate": "SELECT version AS v, dirty AS d FROM {t}",
    "sqitch": "SELECT c.project AS a, c.change AS v FROM {t} c WHERE c.committed_at = "
              "(SELECT max(d.committed_at) FROM {t} d WHERE d.project = c.project) ORDER BY c.project",
}
_TOOL_BY_TABLE = {"flyway_schema_history": "flyway", "databasechangelog": "liquibase", "alembic_version": "alembic",
                  "django_migrations": "django", "changes": "sqitch"}
_SEPARATOR = {"django": ".", "sqitch": ":"}


@dataclass(frozen=True, slots=True)
class Version:
    schema: str
    tool: str
    version: str
    dirty: bool | None = None  # golang-migrate only


Run = Callable[[str], Awaitable[Sequence[Any]]]


async def read_versions(run: Run, discover: str | Sequence[Mapping[str, Any]], quote: Callable[[str], str]
                        ) -> tuple[list[Version], list[str]]:
    """Every version table's versions, and a note per table that could not be read (the others still are).
    ``discover`` is the query finding them, or its rows when the caller read them already (in a batch)."""
    versions: list[Version] = []
    notes: list[str] = []
    for table in await run(discover) if isinstance(discover, str) else discover:
        schema, name = str(table["schema"]), str(table["name"])
        tool = _tool(name.lower(), schema, bool(table["dirty"]))
        if tool is None:
            continue
        query = TOOL_QUERIES[tool].format(t=f"{quote(schema)}.{quote(name)}")
        try:
            rows = await run(query)
        except CollectorError as exc:
            notes.append(f"{tool} version table {schema}.{name} not read: {exc}")
            continue
        for row in rows:
            if row["v"] is None:
                continue
            stream = row["a"] if "a" in row.keys() else None
            version = str(row["v"]) if stream is None else f"{stream}{_SEPARATOR[tool]}{row['v']}"
            dirty = bool(row["d"]) if tool == "golang-migrate" else None
            versions.append(Version(schema, tool, version, dirty))
    return versions, notes


def version_families(versions: list[Version]) -> list[MetricFamily]:
    info = gauge("dbwatch_schema_migration_info", "The migration a schema is at, by the tool's version table (1)",
                 ("schema", "tool", "version"))
    dirty = gauge("dbwatch_schema_migration_dirty",
                  "golang-migrate's dirty flag: 1 after a migration failed half-way", ("schema", "tool"))
    for v in versions:
        info.add((v.schema, v.tool, v.version), 1.0)
        if v.dirty is not None:
            dirty.add((v.schema, v.tool), float(v.dirty))
    return [info, dirty]


def _tool(name: str, schema: str, has_dirty: bool) -> str | None:
    if name == "schema_migrations":
        return "golang-migrate" if has_dirty else "rails"
    if name == "changes" and schema.lower() != "sqitch":
        return None  # sqitch keeps its registry in a schema (database) of its own named sqitch
    return _TOOL_BY_TABLE.get(name)
