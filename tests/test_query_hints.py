"""rules/queries.py on statement statistics collected from real servers: N+1 patterns, rewrite hints and
batch hints, each with a workload where it must fire and one where it must not.

Servers started here: one throwaway PostgreSQL 15 with pg_stat_statements (each test in a database of its
own: the rules compare a statement with its neighbours in the same database), and one throwaway MariaDB
with performance_schema for the same N+1 on MySQL digests.
"""

from __future__ import annotations

import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_statements import MySQLStatementsCollector
from dbwatch.collectors.pg_statements import StatementsCollector
from dbwatch.collectors.postgres import PostgresSession
from tests.auditutil import by_rule, evaluate, target
from tests.helpers import collect
from tests.mariadbserver import MariaDBServer
from tests.pgcluster import PostgresServer

SCHEMA = """
CREATE TABLE users (id int PRIMARY KEY, name text, email text);
CREATE TABLE orders (id int PRIMARY KEY, user_id int, status text, total numeric);
CREATE INDEX ON orders (user_id);
INSERT INTO users SELECT g, 'user' || g, 'u' || g || '@example.com' FROM generate_series(1, 1000) g;
INSERT INTO orders SELECT g, 1 + g % 1000, CASE WHEN g <= 500 THEN 'open' ELSE 'done' END, g
FROM generate_series(1, 3000) g;
CREATE TABLE big (id int PRIMARY KEY, v int);
INSERT INTO big SELECT g, g FROM generate_series(1, 200000) g;
CREATE TABLE events (id serial PRIMARY KEY, kind text, at timestamptz DEFAULT now());
ANALYZE;
"""


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer(settings={"pg_stat_statements.max": "5000"}).start()
    try:
        yield server
    finally:
        server.destroy()


class Statements:
    """The statements collector on one database of the module's server, and the store it fills."""

    def __init__(self, server: PostgresServer, database: str) -> None:
        server.psql(f"CREATE DATABASE {database}")
        server.psql(SCHEMA, database=database)
        server.psql("CREATE EXTENSION pg_stat_statements", database=database)
        self.server, self.database = server, database
        self.target = target("postgres", server.dsn(database=database), {"statements": {"top_n": 500}})
        self.session = PostgresSession(self.target)
        self.collector = StatementsCollector(self.target, self.session)
        self.store = SnapshotStore()

    async def run(self, workload: str) -> list:
        await collect(self.collector, self.store)  # baseline
        self.server.psql(workload, database=self.database)
        await collect(self.collector, self.store)
        await self.session.close()
        # pg_stat_statements is server-wide: keep what concerns this test's database
        return [f for f in evaluate(self.store, "postgres", "queries") if f.evidence.get("datname") == self.database]


def _n_plus_one_loop() -> str:
    parent = "SELECT id, user_id FROM orders WHERE status = 'open';\n"
    children = "".join(f"SELECT name, email FROM users WHERE id = {1 + i % 1000};\n" for i in range(1, 501))
    return parent + children


async def test_n_plus_one_loop_names_the_lookup_and_its_parent(pg):
    """One parent query returning 500 orders, then one lookup by key per order (500): the N+1 of an ORM."""
    findings = await Statements(pg, "nplus1").run(_n_plus_one_loop())
    [finding] = by_rule(findings, "QueryNPlusOne")
    assert finding.evidence["query"] == "SELECT name, email FROM users WHERE id = $1"
    assert finding.evidence["calls"] == 500 and finding.evidence["rows_per_call"] == 1.0
    assert finding.evidence["table"] == "users"
    assert finding.evidence["parent"]["query"] == "SELECT id, user_id FROM orders WHERE status = $1"
    assert finding.evidence["parent"]["rows"] == 500 and finding.evidence["parent"]["calls"] == 1
    assert finding.kind == "recommendation"


async def test_request_shaped_workload_with_as_many_lookups_as_requests_gets_no_query_finding(pg):
    """300 'requests', each: one user by key, that user's orders, an update of the user: no statement runs
    far more often than its neighbours, nothing is SELECT *, nothing is unbounded."""
    workload = "".join(
        f"SELECT name FROM users WHERE id = {i};\n"
        f"SELECT id, total FROM orders WHERE user_id = {i} ORDER BY id LIMIT 20;\n"
        f"UPDATE users SET email = 'x{i}@example.com' WHERE id = {i};\n" for i in range(1, 301))
    findings = await Statements(pg, "normal").run(workload)
    assert findings == []


HINTS = {
    "select_star": "SELECT * FROM users WHERE id = {i};",
    "count_instead_of_exists": "SELECT u.name FROM users u WHERE (SELECT count(*) FROM orders o "
                               "WHERE o.user_id = {i}) > 0 AND u.id = {i};",
    "correlated_subquery": "SELECT u.id, (SELECT max(o.total) FROM orders o WHERE o.user_id = u.id) "
                           "FROM users u WHERE u.id < {i} + 5;",
    "not_in_subquery": "SELECT id FROM users WHERE id NOT IN (SELECT user_id FROM orders WHERE total > {i});",
    "deep_offset": "SELECT id, v FROM big ORDER BY id LIMIT 10 OFFSET {offset};",
    "missing_limit": "SELECT id, v FROM big WHERE v > {i} + 195000;",
}
REWRITTEN = [
    "SELECT id, name, email FROM users WHERE id = {i};",
    "SELECT u.name FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = {i}) AND u.id = {i};",
    "SELECT u.id, max(o.total) FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.id < {i} + 5 "
    "GROUP BY u.id;",
    "SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.total > {i});",
    "SELECT id, v FROM big WHERE id > {offset} ORDER BY id LIMIT 10;",
    "SELECT id, v FROM big WHERE v > {i} + 195000 ORDER BY id LIMIT 100;",
]


async def test_each_rewrite_hint_fires_on_its_antipattern(pg):
    """Each antipattern run 12 times (deep OFFSET at 150000 of 200000 rows; the unbounded SELECT returns ~5000
    rows a call), and 3000 single-row INSERTs."""
    workload = "".join(text.format(i=i, offset=150000 + i) + "\n" for text in HINTS.values() for i in range(12))
    workload += "".join(f"INSERT INTO events (kind) VALUES ('click{i}');\n" for i in range(3000))
    findings = await Statements(pg, "antipatterns").run(workload)
    hints = {}
    for f in by_rule(findings, "QueryRewriteHint"):
        hints.setdefault(f.evidence["hint"], []).append(f.evidence["query"])
    for hint, text in HINTS.items():
        assert hint in hints, f"{hint} did not fire"
        keyword = text.split()[1] if hint != "select_star" else "*"
        assert any(keyword in q for q in hints[hint]), (hint, hints[hint])
    assert "leading_wildcard_like" not in hints  # no literal survives normalisation in pg_stat_statements
    deep = [f for f in by_rule(findings, "QueryRewriteHint") if f.evidence["hint"] == "deep_offset"]
    assert deep[0].evidence["blocks_per_row"] >= 50
    [batch] = by_rule(findings, "QueryBatchHint")
    assert batch.evidence["table"] == "events" and batch.evidence["calls"] == 3000
    assert batch.evidence["calls_per_minute"] >= 1000


async def test_rewritten_statements_and_a_multi_row_insert_get_no_hint(pg):
    """The same questions written well, 12 times each, and 3000 events inserted by 3 multi-row INSERTs."""
    workload = "".join(text.format(i=i, offset=150000 + i) + "\n" for text in REWRITTEN for i in range(12))
    values = ", ".join(f"('click{i}')" for i in range(1000))
    workload += f"INSERT INTO events (kind) VALUES {values};\n" * 3
    findings = await Statements(pg, "rewritten").run(workload)
    assert findings == []


async def test_n_plus_one_on_mariadb_digests_names_the_lookup_and_its_parent():
    """A throwaway MariaDB with performance_schema: the same N+1 loop over events_statements_summary_by_digest."""
    server = MariaDBServer().start()
    try:
        server.sql("CREATE DATABASE shop; CREATE TABLE shop.users (id int PRIMARY KEY, name text);"
                   "CREATE TABLE shop.orders (id int PRIMARY KEY, user_id int, status varchar(10));"
                   "INSERT INTO shop.users SELECT seq, CONCAT('user', seq) FROM shop.seq_1_to_1000;"
                   "INSERT INTO shop.orders SELECT seq, 1 + seq % 1000, IF(seq <= 400, 'open', 'done') "
                   "FROM shop.seq_1_to_2000;")
        t = target("mysql", server.dsn(), {"statements": {"top_n": 500}})
        session = MySQLSession(t)
        collector = MySQLStatementsCollector(t, session)
        store = SnapshotStore()
        await collect(collector, store)
        server.sql("SELECT id, user_id FROM orders WHERE status = 'open';\n"
                   + "".join(f"SELECT name FROM users WHERE id = {i};\n" for i in range(1, 401)), database="shop")
        # dbwatch's own audit statement (and an admin's catalog reads), run as often as a hint needs.
        server.sql("SELECT * FROM mysql.user;\n" * 12 + "SELECT * FROM information_schema.TABLES LIMIT 1;\n" * 12)
        await collect(collector, store)
        await session.close()
        findings = evaluate(store, "mysql", "queries")
    finally:
        server.destroy()
    [finding] = by_rule(findings, "QueryNPlusOne")
    assert "from `users` where id = ?" in finding.evidence["query"].lower()  # MariaDB's digest text
    assert finding.evidence["calls"] == 400 and finding.evidence["datname"] == "shop"
    assert "orders" in finding.evidence["parent"]["query"] and finding.evidence["parent"]["rows"] == 400
    # Statements on the server's catalogs only (dbwatch's own audit, an admin's reads) get no advice.
    assert by_rule(findings, "QueryRewriteHint") == []


async def test_literal_hints_come_from_slow_log_samples_and_spare_the_harmless_forms(tmp_path):
    """A throwaway MariaDB logging every statement to its slow log (long_query_time 0): LIKE '%son' and
    OFFSET 5000 get hints; LIKE 'son%' and OFFSET 20 do not."""
    from dbwatch.collectors.slowlog import SlowLogCollector

    log = tmp_path / "slow.log"
    server = MariaDBServer(settings={"slow-query-log": "ON", "slow-query-log-file": str(log),
                                     "long-query-time": "0"}).start()
    try:
        # The two LIKEs are one slow-log class (literals normalised away) whose sample is the slower: with an
        # index on name, 'son%' is a range read and '%son' the full scan, so the sample is '%son' every time.
        server.sql("CREATE DATABASE crm; CREATE TABLE crm.people (id int PRIMARY KEY, name varchar(40), KEY (name));"
                   "INSERT INTO crm.people SELECT seq, CONCAT('p', seq) FROM crm.seq_1_to_60000;")
        server.sql("SELECT id FROM people WHERE name LIKE '%son';\nSELECT id FROM people WHERE name LIKE 'son%';\n"
                   "SELECT id, name FROM people ORDER BY id LIMIT 10 OFFSET 5000;\n"
                   "SELECT id, name FROM people ORDER BY id LIMIT 10 OFFSET 20;\n", database="crm")
    finally:
        server.destroy()
    t = target("mysql", "", {"slowlog": {"path": str(log), "format": "mysql", "state_dir": str(tmp_path),
                                         "from_beginning": True, "top_n": 50, "sample_length": 1000,
                                         "max_bytes_per_collection": 1 << 20}})
    store = SnapshotStore()
    await collect(SlowLogCollector(t, None), store)  # type: ignore[arg-type]
    hints = [f.evidence for f in by_rule(evaluate(store, "mysql", "queries"), "QueryRewriteHint")]
    assert {(h["hint"], h["sample"].strip().rstrip(";")) for h in hints} == {
        ("leading_wildcard_like", "SELECT id FROM people WHERE name LIKE '%son'"),
        ("deep_offset", "SELECT id, name FROM people ORDER BY id LIMIT 10 OFFSET 5000")}
    assert all(h["source"] == "slowlog" for h in hints)
