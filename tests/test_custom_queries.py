"""dbwatch's own custom-query format (the ``queries`` collector) on PostgreSQL and MariaDB.

Real servers: the session's PostgreSQL 15 primary (``pg_primary``), and a throwaway MariaDB of this module's own
(``mariadb``), each given a small ``orders`` table. The validation tests need no server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbwatch.agent.config import ConfigError, load_config
from dbwatch.collectors.custom_parse import parse_query_list
from dbwatch.collectors.mysql_custom import MySQLQueriesCollector
from dbwatch.collectors.pg_queries import PgQueriesCollector
from dbwatch.model import CollectorSettings, Snapshot, Target
from tests.helpers import assert_declared
from tests.mariadbserver import MariaDBServer

ORDERS = [
    {"name": "orders", "interval": "0s",
     "query": "SELECT region, count(*) AS waiting, sum(amount) AS amount FROM orders GROUP BY region ORDER BY region",
     "metrics": [
         {"name": "app_orders_waiting", "value": "waiting", "help": "Orders not picked up yet", "labels": ["region"]},
         {"name": "app_orders_amount_total", "value": "amount", "type": "counter", "labels": ["region"]},
     ]},
]


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBServer]:
    server = MariaDBServer(server_id=41).start()
    try:
        server.sql("CREATE DATABASE app; CREATE TABLE app.orders (region varchar(10), amount int, note varchar(10)); "
                   "INSERT INTO app.orders VALUES ('eu', 5, 'x'), ('eu', 7, NULL), ('us', NULL, 'x')")
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def pg_orders(pg_primary) -> Any:
    """pg_primary with a database of this module's own, ``cq``."""
    pg_primary.psql("DROP DATABASE IF EXISTS cq")
    pg_primary.psql("CREATE DATABASE cq")
    pg_primary.psql("CREATE TABLE orders (region text, amount int, note text); "
                    "INSERT INTO orders VALUES ('eu', 5, 'x'), ('eu', 7, NULL), ('us', NULL, 'x')", database="cq")
    return pg_primary


def run_sql(engine: str, server: Any, query: str) -> str:
    return server.psql(query, database="cq") if engine == "postgres" else server.sql(query, database="app")


def target(engine: str, dsn: str, queries: list[dict[str, Any]], timeout: float = 10) -> Target:
    return Target(name="t", engine=engine, dsn=dsn, labels={},
                  collectors={"queries": CollectorSettings(60, timeout, {"queries": queries})})


async def collect(collector: Any) -> Snapshot:
    snapshot = Snapshot(target="t", engine=collector.target.engine, collector="queries", started_at=time.time())
    await collector.collect(snapshot)
    own = [f for f in snapshot.families if f.name.startswith("dbwatch_custom_query_")]
    assert_declared(Snapshot(target="t", engine=snapshot.engine, collector="queries", started_at=0, families=own))
    return snapshot


def samples(snapshot: Snapshot, name: str) -> dict[tuple[str, ...], float]:
    [family] = [f for f in snapshot.families if f.name == name]
    return dict(family.samples)


def collector_for(engine: str, server: Any, queries: list[dict[str, Any]], session_for: Any) -> Any:
    if engine == "postgres":
        session = session_for(target("postgres", server.dsn(database="cq"), queries))
        return PgQueriesCollector(session.target, session)
    session = session_for(target("mysql", server.dsn(database="app"), queries))
    return MySQLQueriesCollector(session.target, session)


@pytest.fixture(params=["postgres", "mysql"])
def engine_server(request) -> tuple[str, Any]:
    """The same queries on both engines: PostgreSQL (pg_primary) and MariaDB (mariadb)."""
    fixture = "pg_orders" if request.param == "postgres" else "mariadb"
    return request.param, request.getfixturevalue(fixture)


async def test_a_querys_rows_become_its_metrics_with_labels_type_and_help(engine_server, session_for):
    """orders: eu has 2 orders (amounts 5 and 7), us 1 with a NULL amount (skipped and counted)."""
    engine, server = engine_server
    snapshot = await collect(collector_for(engine, server, ORDERS, session_for))
    assert samples(snapshot, "app_orders_waiting") == {("eu",): 2, ("us",): 1}
    assert samples(snapshot, "app_orders_amount_total") == {("eu",): 12}
    families = {f.name: f for f in snapshot.families}
    assert families["app_orders_waiting"].type.value == "gauge"
    assert families["app_orders_waiting"].help == "Orders not picked up yet"
    assert families["app_orders_amount_total"].type.value == "counter"
    assert samples(snapshot, "dbwatch_custom_query_success") == {("orders",): 1}
    assert samples(snapshot, "dbwatch_custom_query_skipped_rows_total") == {("orders", "app_orders_amount_total"): 1}
    assert samples(snapshot, "dbwatch_custom_query_errors_total") == {("orders",): 0}


async def test_a_failing_query_is_counted_and_the_others_still_run(engine_server, session_for):
    """A query on a table that does not exist, one naming a column its result lacks, one that writes, and a
    good one: three errors counted (twice after two collections), the good one exported each time."""
    engine, server = engine_server
    queries = [
        {"name": "missing", "query": "SELECT count(*) AS n FROM no_such_table", "metrics": [{"name": "x_n", "value": "n"}]},
        {"name": "wrong_column", "query": "SELECT 1 AS a", "metrics": [{"name": "x_b", "value": "b"}]},
        {"name": "writes", "query": "INSERT INTO orders VALUES ('xx', 1, 'y')", "metrics": [{"name": "x_w", "value": "w"}]},
        {"name": "fine", "query": "SELECT 3 AS n", "metrics": [{"name": "x_fine", "value": "n"}]},
    ]
    collector = collector_for(engine, server, queries, session_for)
    await collect(collector)
    snapshot = await collect(collector)
    assert samples(snapshot, "x_fine") == {(): 3}
    assert samples(snapshot, "dbwatch_custom_query_errors_total") == {
        ("missing",): 2, ("wrong_column",): 2, ("writes",): 2, ("fine",): 0}
    assert samples(snapshot, "dbwatch_custom_query_success")[("writes",)] == 0
    assert any("wrong_column" in note and "no column b" in note for note in snapshot.notes)
    assert run_sql(engine, server, "SELECT count(*) FROM orders WHERE region = 'xx'").strip() == "0"  # read-only


async def test_a_query_past_its_timeout_is_cancelled_by_the_server_and_the_connection_kept(engine_server,
                                                                                           session_for):
    """A 5-second sleep with a 0.5 s timeout; the next query on the same connection still answers."""
    engine, server = engine_server
    sleep = "SELECT pg_sleep(5) IS NULL AS n" if engine == "postgres" else "SELECT SLEEP(5) AS n"
    queries = [{"name": "slow", "query": sleep, "timeout": "500ms", "metrics": [{"name": "x_slow", "value": "n"}]},
               {"name": "after", "query": "SELECT 1 AS n", "metrics": [{"name": "x_after", "value": "n"}]}]
    collector = collector_for(engine, server, queries, session_for)
    began = time.monotonic()
    snapshot = await collect(collector)
    assert time.monotonic() - began < 4.5
    assert samples(snapshot, "x_after") == {(): 1}
    if engine == "postgres":  # MariaDB's SLEEP interrupted returns 1 rather than failing
        assert samples(snapshot, "dbwatch_custom_query_errors_total")[("slow",)] == 1


async def test_a_query_runs_again_only_once_its_interval_has_passed(pg_orders, session_for):
    """interval 1h: a row inserted after the first collection is not seen by the second one."""
    queries = [{"name": "n", "interval": "1h", "query": "SELECT count(*) AS n FROM orders",
                "metrics": [{"name": "x_orders", "value": "n"}]}]
    collector = collector_for("postgres", pg_orders, queries, session_for)
    first = await collect(collector)
    run_sql("postgres", pg_orders, "INSERT INTO orders VALUES ('zz', 1, 'z')")
    try:
        second = await collect(collector)
    finally:
        run_sql("postgres", pg_orders, "DELETE FROM orders WHERE region = 'zz'")
    assert samples(first, "x_orders") == samples(second, "x_orders") == {(): 3}


def test_every_problem_of_the_queries_is_one_line_naming_the_query_and_field():
    _, problems = parse_query_list([
        {"name": "a", "query": "SELECT 1 AS x", "interval": "soon",
         "metrics": [{"name": "bad-name", "value": "x", "type": "histogram"}, {"value": "x", "labels": ["x"]}]},
        {"name": "b", "metrics": [], "colour": "red"},
        {"name": "a", "query": "SELECT 1 AS y", "metrics": [{"name": "ok_y", "value": "y", "labels": "y"}]},
        "SELECT 1",
    ])
    assert problems == [
        'a.interval: expected a duration like "15s", got "soon"',
        "a.metrics[0].name: required: a Prometheus metric name (letters, digits, _ and :), got 'bad-name'",
        "a.metrics[0].type: expected one of gauge, counter, got 'histogram'",
        "a.metrics[1].name: required: a Prometheus metric name (letters, digits, _ and :), got None",
        "a.metrics[1].labels: x is the value column; it cannot be a label too",
        "b.colour: unknown key (expected name, query, metrics, interval, timeout)",
        "b.query: required: the SQL to run, as a string",
        "b.metrics: required: a list of metrics, each with name and value",
        "a.metrics[0].labels: expected a list of column names (letters, digits and _), got 'y'",
        "queries[3]: expected a mapping with name, query and metrics",
    ]


def test_validate_reports_inline_and_file_problems_with_their_config_paths(tmp_path: Path):
    """No server: the configuration check reads the inline queries and the file, every problem at once."""
    shared = tmp_path / "queries.yaml"
    shared.write_text("queries:\n  - name: q\n    query: SELECT 1 AS v\n    metrics: [{name: x_v}]\n")
    config = tmp_path / "dbwatch.yaml"
    config.write_text(
        "targets:\n  - name: db\n    engine: mysql\n    dsn: mysql://u@127.0.0.1:3306/app\n"
        f"    collectors: {{queries: {{enabled: true, queries_file: {shared}, queries: [{{name: i, query: x}}]}}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert info.value.problems == [
        "targets[0].collectors.queries.queries.i.metrics: required: a list of metrics, each with name and value",
        f"targets[0].collectors.queries.queries_file: {shared}: q.metrics[0].value: required: the column holding "
        "the number, got None",
    ]


async def test_a_queries_file_is_read_again_when_it_changes(pg_orders, session_for, tmp_path: Path):
    """pg_orders: the file first declares x_one, then (rewritten, with a newer mtime) x_two instead."""
    path = tmp_path / "queries.yaml"
    path.write_text("- {name: q, query: SELECT 1 AS v, metrics: [{name: x_one, value: v}]}\n")
    session = session_for(Target(name="t", engine="postgres", dsn=pg_orders.dsn(database="cq"), labels={},
                                 collectors={"queries": CollectorSettings(60, 10, {"queries_file": str(path)})}))
    collector = PgQueriesCollector(session.target, session)
    first = await collect(collector)
    path.write_text("queries:\n  - {name: q, query: SELECT 2 AS v, metrics: [{name: x_two, value: v}]}\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    second = await collect(collector)
    assert samples(first, "x_one") == {(): 1} and samples(second, "x_two") == {(): 2}
    assert "x_one" not in {f.name for f in second.families}
