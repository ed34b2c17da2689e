"""The PostgreSQL audit: roles, pg_hba, SSL, password encryption, the tuning settings against the host,
and schema facts from the catalog, for rules/security.py, rules/tuning.py and rules/schema.py.

A low-frequency collector (hourly by default): what it reads changes with deployments, not minutes. It
only reads catalogs. pg_hba_file_rules is readable by superusers only (PostgreSQL 10-16 revoke it and its
function from PUBLIC; pg_read_all_settings does not include it): without it the hba facts are ``None`` and a
note says what to grant. Facts: :class:`PgAudit`, :class:`SchemaFacts`.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections import defaultdict
from typing import Any

from dbwatch.model import Snapshot
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.audit import (
    HbaRule, JsonColumn, PgAudit, PgRole, RepeatedColumns, SchemaFacts, TypedColumn, WideTable,
)
from dbwatch.collectors.audit_host import host_facts, is_local
from dbwatch.collectors.base import Collector
from dbwatch.collectors.options import AuditHostOptions
from dbwatch.collectors.pg_scope import USER_SCHEMA, not_extension_member
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model.options import Count, Texts

__all__ = ["PgAuditOptions", "PgAuditCollector", "DURABILITY_SETTINGS", "TUNING_SETTINGS"]


class PgAuditOptions(AuditHostOptions):
    expected_superusers: Texts = ()  # besides the bootstrap superuser (the role that ran initdb)
    expected_replication: Texts = ()
    wide_table_columns: Count = 50

TUNING_SETTINGS = ("shared_buffers", "effective_cache_size", "work_mem", "max_connections", "maintenance_work_mem",
                   "random_page_cost", "effective_io_concurrency", "checkpoint_timeout", "max_wal_size")
# Settings that trade crash safety for speed (rules/tuning.py, PgDurabilityOff), kept as the server spells them.
DURABILITY_SETTINGS = ("fsync", "full_page_writes", "synchronous_commit")

ROLES = """
SELECT oid = 10 AS bootstrap, rolname, rolsuper, rolreplication, rolcanlogin, rolcreaterole, rolbypassrls
FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname"""

AGENT = """
SELECT current_user AS role, current_database() AS database,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       ARRAY(SELECT b.rolname FROM pg_roles b
             WHERE b.rolname <> current_user AND pg_has_role(current_user, b.oid, 'MEMBER')
             ORDER BY b.rolname)::text[] AS memberships,
       has_table_privilege('pg_catalog.pg_hba_file_rules', 'SELECT')
         AND has_function_privilege('pg_catalog.pg_hba_file_rules()', 'EXECUTE') AS hba_readable,
       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public')
         AND has_schema_privilege('public', 'public', 'CREATE') AS public_create,
       current_setting('server_version_num')::int AS version_num"""

HBA = """
SELECT line_number, type, database, user_name, address, auth_method, error
FROM pg_hba_file_rules ORDER BY line_number"""

SETTINGS = """
SELECT name, setting, unit FROM pg_settings
WHERE name = ANY($1::text[]) OR name IN ('ssl', 'password_encryption', 'data_directory', 'listen_addresses')
   OR name = ANY($2::text[])"""

CHECKPOINTS = "SELECT checkpoints_timed AS timed, checkpoints_req AS requested FROM pg_stat_bgwriter"
CHECKPOINTS_17 = "SELECT num_timed AS timed, num_requested AS requested FROM pg_stat_checkpointer"

_USER_TABLES = f"""
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND {USER_SCHEMA} AND {not_extension_member("c")}"""

WIDE = f"""
SELECT n.nspname AS schema, c.relname AS table, count(*) AS columns {_USER_TABLES}
GROUP BY 1, 2 HAVING count(*) >= $1 ORDER BY 3 DESC LIMIT 100"""

COLUMNS = f"""
SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type,
       greatest(c.reltuples, 0)::bigint AS rows,
       EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
               WHERE i.indrelid = c.oid
                 AND (a.attnum = ANY(i.indkey::int2[]) OR i.indexprs IS NOT NULL)
                 AND (am.amname = 'gin' OR i.indexprs IS NOT NULL)
                 AND pg_get_indexdef(i.indexrelid) ~ ('\\m' || a.attname || '\\M')) AS gin_indexed
{_USER_TABLES}
ORDER BY 1, 2, a.attnum LIMIT 20000"""

JSON_STATEMENTS = """
SELECT query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query ~ '(->>|->|@>|\\?)' LIMIT 1000"""

_TIMESTAMP_NAME = re.compile(r"(_at|_on|_date|_time|_timestamp|^date|^timestamp|^created|^updated)$")
_AMOUNT_NAME = re.compile(r"(amount|price|cost|balance|total|fee|salary|revenue)")
_TEXT_TYPES = re.compile(r"^(text|character varying|character|varchar|char)\b")
_FLOAT_TYPES = ("real", "double precision")
_NUMBERED = re.compile(r"^(.*?[a-z])_?(\d+)$")
_UNIT = {"8kB": 8192, "kB": 1024, "MB": 1024**2, "B": 1, "s": 1, "ms": 0.001, "min": 60}


class PgAuditCollector(Collector[PostgresSession, PgAuditOptions]):
    name = "audit"
    options_model = PgAuditOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            snapshot.version = (await session.connected_server()).version
            [agent] = await session.run(AGENT)
            roles = await session.run(ROLES)
            hba = await session.run(HBA) if agent["hba_readable"] else None
            settings = {r["name"]: r for r in await session.run(SETTINGS, list(TUNING_SETTINGS),
                                                                   list(DURABILITY_SETTINGS))}
            [checkpoints] = await session.run(CHECKPOINTS_17 if agent["version_num"] >= 170000 else CHECKPOINTS)
            wide = await session.run(WIDE, self.options.wide_table_columns)
            columns = await session.run(COLUMNS)
            statements = await self._json_statements(session) if any("json" in c["type"] for c in columns) else []
        if hba is None:
            snapshot.notes.append(
                f"role {agent['role']} may not read pg_hba_file_rules, so trust/password entries are not audited; "
                f"run GRANT SELECT ON pg_hba_file_rules TO {agent['role']}; GRANT EXECUTE ON FUNCTION "
                f"pg_hba_file_rules() TO {agent['role']};")
        data_dir = settings.get("data_directory")
        host = urllib.parse.urlsplit(self.target.dsn).hostname
        query_host = urllib.parse.parse_qs(urllib.parse.urlsplit(self.target.dsn).query).get("host", [None])[0]
        local = is_local(query_host or host)
        facts_host = await asyncio.to_thread(host_facts, self.options, local,
                                             data_dir["setting"] if data_dir else None)
        bootstrap = [r["rolname"] for r in roles if r["bootstrap"]]
        snapshot.put(PgAudit(
            database=agent["database"], agent_role=agent["role"], agent_superuser=bool(agent["superuser"]),
            agent_memberships=tuple(agent["memberships"] or ()),
            roles=[PgRole(name=r["rolname"], superuser=r["rolsuper"], replication=r["rolreplication"],
                          can_login=r["rolcanlogin"], create_role=r["rolcreaterole"], bypass_rls=r["rolbypassrls"])
                   for r in roles],
            hba=None if hba is None else [
                HbaRule(line_number=r["line_number"], type=r["type"] or "", databases=tuple(r["database"] or ()),
                        users=tuple(r["user_name"] or ()), address=r["address"], auth_method=r["auth_method"] or "",
                        error=r["error"]) for r in hba],
            ssl=settings["ssl"]["setting"] == "on",
            password_encryption=settings["password_encryption"]["setting"],
            public_schema_create=bool(agent["public_create"]),
            settings={name: _base_units(settings[name]) for name in TUNING_SETTINGS if name in settings},
            checkpoints_timed=int(checkpoints["timed"]), checkpoints_requested=int(checkpoints["requested"]),
            host=facts_host,
            expected_superusers=tuple(bootstrap) + self.options.expected_superusers,
            expected_replication=tuple(bootstrap) + self.options.expected_replication,
            bootstrap_superuser=bootstrap[0] if bootstrap else "",
            durability={name: settings[name]["setting"] for name in DURABILITY_SETTINGS if name in settings},
            listen_addresses=settings["listen_addresses"]["setting"] if "listen_addresses" in settings else None,
        ))
        snapshot.put(_schema(agent["database"], wide, columns, statements),
                     Summary({"roles": len(roles), "superusers": sum(r["rolsuper"] for r in roles)}))

    async def _json_statements(self, session: PostgresSession) -> list[str]:
        [row] = await session.run("SELECT to_regclass('pg_stat_statements') IS NOT NULL AS present")
        if not row["present"]:
            return []
        return [r["query"] for r in await session.run(JSON_STATEMENTS)]


def _base_units(row: Any) -> float:
    value = float(row["setting"])
    return value * _UNIT.get(row["unit"] or "", 1)


def _schema(database: str, wide: list[Any], columns: list[Any], statements: list[str]) -> SchemaFacts:
    typed, json_columns = [], []
    numbered: dict[tuple[str, str, str], list[tuple[int, str]]] = defaultdict(list)
    for c in columns:
        name, data_type = c["column"].lower(), c["type"]
        if _TIMESTAMP_NAME.search(name) and _TEXT_TYPES.match(data_type):
            typed.append(TypedColumn(c["schema"], c["table"], c["column"], data_type, "timestamp"))
        elif _AMOUNT_NAME.search(name) and (_TEXT_TYPES.match(data_type) or data_type in _FLOAT_TYPES):
            typed.append(TypedColumn(c["schema"], c["table"], c["column"], data_type, "amount"))
        if data_type in ("json", "jsonb"):
            by_key = re.compile(rf"\b{re.escape(c['column'])}\"?\s*(->>|->|@>|\?)")
            json_columns.append(JsonColumn(
                schema=c["schema"], table=c["table"], column=c["column"], data_type=data_type,
                gin_indexed=bool(c["gin_indexed"]), filtering_statements=sum(1 for q in statements if by_key.search(q)),
                table_rows=int(c["rows"])))
        if match := _NUMBERED.match(name):
            numbered[(c["schema"], c["table"], match.group(1))].append((int(match.group(2)), c["column"]))
    repeated = [RepeatedColumns(schema, table, stem, tuple(col for _, col in sorted(cols)))
                for (schema, table, stem), cols in numbered.items() if len(cols) >= 3]
    return SchemaFacts(database=database,
                       wide_tables=[WideTable(r["schema"], r["table"], int(r["columns"])) for r in wide],
                       typed_columns=typed, repeated_columns=repeated, json_columns=json_columns)
