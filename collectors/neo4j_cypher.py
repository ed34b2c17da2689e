"""Neo4j: what the collector reads out of its queries' rows, and the metric families it makes of them.

No driver import here: rows are plain mappings (the driver's records as dicts), so this module and its
facts are what a test or the rules can read without the driver.

Query text from ``SHOW TRANSACTIONS`` is normalized before it is kept anywhere: comments dropped, string and
number literals replaced by ``?``, whitespace collapsed, cut to 500 characters. A password in the text
(``ALTER USER x SET PASSWORD 'secret'``) is a string literal, so it never reaches a fact, a finding or a log.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from dbwatch.model import MetricFamily, counter, gauge, info
from dbwatch.model.facts.neo4j import Neo4jDatabase, Neo4jIndex, Neo4jServer, Neo4jTransaction

MAX_QUERY = 500

_LITERALS = re.compile(r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<ident>`(?:[^`]|``)*`|\$?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>(?<![\w.])-?(?:0x[0-9A-Fa-f]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?))
""", re.VERBOSE | re.DOTALL)


def normalize_query(text: str) -> str:
    """The query's shape: no literal values, no comments, one space between words."""
    def replace(m: re.Match[str]) -> str:
        if m.group("comment"):
            return " "
        if m.group("string") or m.group("number"):
            return "?"
        return m.group(0)

    shaped = " ".join(_LITERALS.sub(replace, text).split())
    return shaped if len(shaped) <= MAX_QUERY else shaped[:MAX_QUERY - 1] + "…"


def seconds(value: Any) -> float:
    """A Duration (the driver's neo4j.time.Duration: months, days, seconds, nanoseconds) or a number of
    milliseconds (4.x's elapsedTimeMillis) as seconds."""
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value) / 1000.0
    months, days = getattr(value, "months", 0), getattr(value, "days", 0)
    secs, nanos = getattr(value, "seconds", 0), getattr(value, "nanoseconds", 0)
    return float(months * 30 * 86400 + days * 86400 + secs) + nanos / 1e9


def _text(row: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = row.get(name)
        if value is not None:
            return str(value)
    return ""


def databases(rows: Iterable[Mapping[str, Any]]) -> list[Neo4jDatabase]:
    return [Neo4jDatabase(
        name=_text(r, "name"), type=_text(r, "type"), role=_text(r, "role"), address=_text(r, "address"),
        requested_status=_text(r, "requestedStatus"), current_status=_text(r, "currentStatus", "status"),
        status_message=_text(r, "statusMessage", "error"),
    ) for r in rows]


def servers(rows: Iterable[Mapping[str, Any]]) -> list[Neo4jServer]:
    return [Neo4jServer(name=_text(r, "name"), address=_text(r, "address"), state=_text(r, "state"),
                        health=_text(r, "health")) for r in rows]


def transactions(rows: Iterable[Mapping[str, Any]], own_query: str) -> list[Neo4jTransaction]:
    """Every transaction but dbwatch's own SHOW TRANSACTIONS, its query normalized."""
    own = normalize_query(own_query)
    found = []
    for r in rows:
        query = normalize_query(_text(r, "currentQuery"))
        if query == own:
            continue
        found.append(Neo4jTransaction(
            database=_text(r, "database"), transaction_id=_text(r, "transactionId"),
            username=_text(r, "username"), client_address=_text(r, "clientAddress"),
            status=_text(r, "status"), elapsed_seconds=seconds(r.get("elapsedTime", r.get("elapsedTimeMillis"))),
            query=query,
        ))
    return sorted(found, key=lambda t: -t.elapsed_seconds)


def indexes(database: str, rows: Iterable[Mapping[str, Any]]) -> list[Neo4jIndex]:
    return [Neo4jIndex(
        database=database, name=_text(r, "name"), type=_text(r, "type"), entity_type=_text(r, "entityType"),
        labels=tuple(str(x) for x in r.get("labelsOrTypes") or ()),
        properties=tuple(str(x) for x in r.get("properties") or ()), state=_text(r, "state"),
    ) for r in rows]


# -- metric families ----------------------------------------------------------------------------------------


def instance_families(version: str, edition: str) -> list[MetricFamily]:
    up = gauge("neo4j_up", "Whether the last collection could reach the server (1 = yes).")
    up.add((), 1)
    instance = info("dbwatch_neo4j_instance_info", "The Neo4j server's version and edition (always 1).",
                    ("version", "edition"))
    instance.add((version, edition), 1)
    return [up, instance]


def database_families(dbs: list[Neo4jDatabase]) -> list[MetricFamily]:
    about = info("dbwatch_neo4j_database_info", "One per SHOW DATABASES row: type, role and statuses (always 1).",
                 ("database", "address", "type", "role", "requested_status", "current_status"))
    unavailable = gauge("dbwatch_neo4j_database_unavailable",
                        "1 when the database is requested online but its current status is not online.",
                        ("database", "address"))
    for d in dbs:
        about.add((d.name, d.address, d.type, d.role, d.requested_status, d.current_status), 1)
        unavailable.add((d.name, d.address), int(d.unavailable))
    return [about, unavailable]


def server_families(found: list[Neo4jServer]) -> list[MetricFamily]:
    available = gauge("dbwatch_neo4j_server_available",
                      "1 when SHOW SERVERS reports the server's health as Available (Neo4j 5).",
                      ("server", "address", "state"))
    for s in found:
        available.add((s.name, s.address, s.state), int(s.available))
    return [available]


def transaction_families(all_tx: list[Neo4jTransaction], dbs: list[Neo4jDatabase],
                         long_seconds: float) -> list[MetricFamily]:
    active = gauge("dbwatch_neo4j_transactions_active",
                   "Open transactions per database (SHOW TRANSACTIONS; dbwatch's own skipped).", ("database",))
    oldest = gauge("dbwatch_neo4j_oldest_transaction_seconds",
                   "elapsedTime of the longest-running transaction per database (0 when none is open).",
                   ("database",))
    long = gauge("dbwatch_neo4j_long_transactions",
                 "Transactions running at least long_tx_seconds (60 s by default) per database.", ("database",))
    names = dict.fromkeys([d.name for d in dbs] + [t.database for t in all_tx])
    for name in names:
        mine = [t for t in all_tx if t.database == name]
        active.add((name,), len(mine))
        oldest.add((name,), max((t.elapsed_seconds for t in mine), default=0.0))
        long.add((name,), sum(1 for t in mine if t.elapsed_seconds >= long_seconds))
    return [active, oldest, long]


# The metrics beans (metrics.jmx.enabled) of the page cache, under the names Neo4j's own Prometheus endpoint
# gives them; 5.x names them neo4j.dbms.page_cache.*, 4.x neo4j.page_cache.*.
_PAGE_CACHE = (
    ("hits", "neo4j_dbms_page_cache_hits_total", True, "Page cache hits since the server started."),
    ("page_faults", "neo4j_dbms_page_cache_page_faults_total", True,
     "Page cache faults (pages read from disk) since the server started."),
    ("evictions", "neo4j_dbms_page_cache_evictions_total", True, "Page cache evictions since the server started."),
    ("hit_ratio", "neo4j_dbms_page_cache_hit_ratio", False, "Ratio of hits to hits + faults (Neo4j's window)."),
    ("usage_ratio", "neo4j_dbms_page_cache_usage_ratio", False, "Ratio of used pages to the page cache's pages."),
)
# Names are <prefix>.dbms.<metric> and <prefix>.database.<db>.<metric> (5.x, metrics.namespaces), or
# <prefix>.<metric> and <prefix>.<db>.<metric> (4.x); the prefix (server.metrics.prefix) is "neo4j" by default.
_STORE = re.compile(r"^(?:database\.)?(?P<db>.+)\.store\.size\.(?P<kind>total|database)$")


def jmx_families(rows: Iterable[Mapping[str, Any]]) -> tuple[list[MetricFamily], dict[str, float]]:
    """Page cache and store size families from ``dbms.queryJmx('neo4j.metrics:*')`` rows, and the values read
    (for the summary). A bean that is not there is no family."""
    values: dict[str, float] = {}
    stores: dict[tuple[str, str], float] = {}
    for row in rows:
        name = _text(row, "name").partition("name=")[2].partition(".")[2]  # without the prefix
        attrs = row.get("attributes") or {}
        value = None
        for attr in ("Count", "Value", "Number"):
            entry = attrs.get(attr)
            raw = entry.get("value") if isinstance(entry, Mapping) else None
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                value = float(raw)
                break
        if value is None:
            continue
        store = _STORE.match(name)
        if store:
            stores[(store["db"], store["kind"])] = value
        else:
            values[name.removeprefix("dbms.")] = value
    families: list[MetricFamily] = []
    for key, metric, is_counter, help in _PAGE_CACHE:
        found = values.get(f"page_cache.{key}")
        if found is None:
            continue
        fam = counter(metric, help) if is_counter else gauge(metric, help)
        fam.add((), found)
        families.append(fam)
    if stores:
        total = gauge("dbwatch_neo4j_store_size_bytes",
                      "Disk space of the database's store files: kind total (everything, transaction logs "
                      "included) or database (store files only).", ("database", "kind"))
        for (db, kind), value in sorted(stores.items()):
            total.add((db, kind), value)
        families.append(total)
    return families, values
