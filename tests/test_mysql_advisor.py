"""The MySQL/MariaDB index advisor (collectors/mysql_advisor.py) and its rule (rules/mysql_indexes.py).

Starts one throwaway MariaDB 10.11 of its own (tests/mariadbserver.py) with performance_schema ON and the
statement-history consumers (events_statements_current, events_statements_history_long) ON, holding a
200,000-row table filled from the SEQUENCE engine (seq_1_to_200000). The collector runs directly against it;
the rule judges its snapshot. One test creates the recommended index for real and measures the query with
ANALYZE FORMAT=JSON before and after (then drops it again).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import pytest

from dbwatch.model import CollectorSettings, Finding, Snapshot, Target
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.engines import engine
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_advisor import CONSUMERS_NOTE, MySQLAdvisorCollector, MySQLAdvisorOptions
from tests.auditutil import collect_once, evaluate
from tests.mariadbserver import MariaDBServer

SCHEMA = """
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, region INT NOT NULL, status VARCHAR(10) NOT NULL,
                     created_at DATETIME NOT NULL, amount INT NOT NULL, KEY orders_status (status)) ENGINE=InnoDB;
INSERT INTO orders SELECT seq, (seq * 7919) % 20000, seq % 100, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'done'),
                          '2026-01-01' - INTERVAL (seq % 100000) MINUTE, seq % 1000
FROM seq_1_to_200000;
ANALYZE TABLE orders;
"""
# Index hygiene: a duplicate, a prefix of a wider index, a never-read index, and the only index of a foreign key
# (never read either), a column-prefix index led by a wider one; near miss: the same pair in the other order.
HYGIENE = """
CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(100), name VARCHAR(50), city VARCHAR(50), score INT,
                        KEY customers_email (email), KEY customers_email_again (email),
                        KEY customers_name (name), KEY customers_name_city (name, city),
                        KEY customers_city10 (city(10)), KEY customers_city_name (city, name),
                        KEY customers_score (score)) ENGINE=InnoDB;
INSERT INTO customers SELECT seq, CONCAT('c', seq, '@example.com'), CONCAT('n', seq % 500), CONCAT('city', seq % 50),
                             seq % 100 FROM seq_1_to_2000;
CREATE TABLE addresses (id INT PRIMARY KEY, customer_id INT NOT NULL, line VARCHAR(100),
                        KEY addresses_customer (customer_id),
                        CONSTRAINT addresses_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id))
                        ENGINE=InnoDB;
INSERT INTO addresses SELECT seq, seq, 'x' FROM seq_1_to_2000;
SELECT count(*) FROM customers WHERE email = 'c7@example.com';
SELECT count(*) FROM customers WHERE name = 'n7' AND city = 'city7';
SELECT count(*) FROM customers WHERE city = 'city3' AND name = 'n3';
SELECT count(*) FROM customers FORCE INDEX (customers_city10) WHERE city = 'city3';
"""
Q_CUSTOMER = "SELECT * FROM orders WHERE customer_id = {}"
Q_REGION = "SELECT count(*) FROM orders WHERE created_at > '2025-12-31 12:00:00' AND region = {}"
Q_SERVED = "SELECT * FROM orders WHERE id = {} AND amount > 3"
Q_STATUS = "SELECT count(*) FROM orders WHERE status = 'paid' AND id < {}"
Q_NO_SCHEMA = "SELECT id FROM shop.orders WHERE amount = {}"
Q_WIDE = "SELECT amount FROM orders WHERE status = '{}'"  # a quarter of the rows: read whole despite orders_status


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDBServer]:
    db = MariaDBServer(server_id=21, settings={
        "innodb-buffer-pool-size": "64M",
        "performance-schema-consumer-events-statements-current": "ON",
        "performance-schema-consumer-events-statements-history-long": "ON",
    })
    try:
        db.start()
        db.sql("CREATE DATABASE shop")
        db.sql(SCHEMA, database="shop")
        db.sql(HYGIENE, database="shop")
        db.sql("TRUNCATE TABLE performance_schema.events_statements_summary_by_digest")
        workload = [Q_CUSTOMER.format(c) for c in (4242, 77, 13001)] + [Q_REGION.format(r) for r in (7, 8, 9)]
        workload += [Q_SERVED.format(i) for i in range(1, 40)] + [Q_STATUS.format(i) for i in (10, 20)]
        workload += [Q_WIDE.format(v) for v in ("paid", "new")]
        db.sql(";\n".join(workload) + ";", database="shop")
        db.sql(f"{Q_NO_SCHEMA.format(5)}; {Q_NO_SCHEMA.format(6)};")  # no default schema: the table is qualified
        yield db
    finally:
        db.destroy()


def advise(db: MariaDBServer, **options: Any) -> tuple[Snapshot, list[Finding]]:
    target = Target(name="shop", engine="mysql", dsn=db.dsn(), labels={},
                    collectors={"advisor": CollectorSettings(3600, 60, MySQLAdvisorOptions(**options))})

    store = SnapshotStore()
    snapshot = asyncio.run(collect_once(store, MySQLAdvisorCollector, MySQLSession, target))
    findings = evaluate(store, "mysql", "mysql_indexes", target=target.name)
    return snapshot, [f for f in findings if f.rule == "MySQLIndexCandidate"]


@pytest.fixture(scope="module")
def advice(server: MariaDBServer) -> tuple[Snapshot, list[Finding]]:
    return advise(server)


def candidate(findings: list[Finding], columns: list[str]) -> Finding | None:
    return next((f for f in findings if f.evidence["columns"] == columns), None)


def execution_ms(db: MariaDBServer, query: str) -> float:
    """The fastest of five ANALYZE FORMAT=JSON runs: the query's own measured execution time."""
    times = []
    for _ in range(5):
        plan = json.loads(db.sql(f"ANALYZE FORMAT=JSON {query}", database="shop").replace("\\n", "\n"))
        times.append(float(plan["query_block"]["r_total_time_ms"]))
    return min(times)


def hygiene(db: MariaDBServer, **options: Any) -> list[Finding]:
    target = Target(name="shop", engine="mysql", dsn=db.dsn(), labels={},
                    collectors={"advisor": CollectorSettings(3600, 60, MySQLAdvisorOptions(**options))})
    store = SnapshotStore()
    asyncio.run(collect_once(store, MySQLAdvisorCollector, MySQLSession, target))
    return [f for f in evaluate(store, "mysql", "mysql_indexes", target=target.name)
            if f.rule in ("MySQLRedundantIndex", "MySQLUnusedIndex")]


def test_duplicate_and_prefix_redundant_indexes_are_found_as_the_sys_schema_finds_them(server):
    findings = hygiene(server)
    redundant = {f.evidence["index"]: f for f in findings if f.rule == "MySQLRedundantIndex"}
    assert set(redundant) == {"shop.customers_email_again", "shop.customers_name", "shop.customers_city10"}
    assert redundant["shop.customers_city10"].evidence["covered_by"] == "shop.customers_city_name"
    assert redundant["shop.customers_email_again"].evidence["kind"] == "duplicate"
    assert redundant["shop.customers_email_again"].evidence["covered_by"] == "shop.customers_email"
    assert redundant["shop.customers_name"].evidence["kind"] == "prefix"
    assert redundant["shop.customers_name"].evidence["covered_by"] == "shop.customers_name_city"
    # The server's own sys schema agrees (MariaDB ships it).
    sys_view = server.sql("SELECT redundant_index_name FROM sys.schema_redundant_indexes "
                          "WHERE table_schema = 'shop' ORDER BY 1").split()
    assert sys_view == ["customers_city10", "customers_email_again", "customers_name"]  # not name_city, city_name
    dup = redundant["shop.customers_email_again"]
    assert dup.evidence["sql"] == ("ALTER TABLE `shop`.`customers` DROP INDEX `customers_email_again`, "
                                   "ALGORITHM=INPLACE, LOCK=NONE;")
    assert dup.evidence["risk"] == "medium" and "online DDL" in dup.evidence["lock"]
    # With the default minimum uptime (7 days) a fresh server proves nothing unused.
    assert [f for f in findings if f.rule == "MySQLUnusedIndex"] == []


def test_never_read_indexes_are_unused_but_the_only_index_of_a_foreign_key_is_kept(server):
    unused = {f.evidence["index"]: f for f in hygiene(server, unused_index_min_age=0) if f.rule == "MySQLUnusedIndex"}
    assert "shop.customers_score" in unused and "shop.customers_email" not in unused  # read once
    assert "shop.customers_email_again" not in unused  # said once, as a duplicate
    assert "shop.orders_status" not in unused  # read by the workload
    keep = unused["shop.addresses_customer"]
    assert keep.evidence["sql"] is None and keep.evidence["foreign_key"] == "addresses_customer_fk"
    assert "keep it" in keep.summary
    sql = unused["shop.customers_score"].evidence["sql"]
    assert sql == "ALTER TABLE `shop`.`customers` DROP INDEX `customers_score`, ALGORITHM=INPLACE, LOCK=NONE;"
    # The drop it offers runs online (and is put back for the other tests).
    server.sql(sql, database="shop")
    server.sql("ALTER TABLE customers ADD INDEX customers_score (score)", database="shop")


def test_the_advisor_is_a_mysql_collector_off_by_default_hourly():
    spec = engine("mysql")
    assert spec.collectors["advisor"] is MySQLAdvisorCollector
    assert spec.defaults["advisor"].enabled is False and spec.defaults["advisor"].interval == 3600.0


def test_a_full_scan_by_an_unindexed_column_gets_that_index_and_it_makes_the_query_at_least_10x_faster(
        server, advice):
    snapshot, findings = advice
    assert snapshot.ok and snapshot.notes == [], snapshot.notes
    found = candidate(findings, ["customer_id"])
    assert found is not None, [f.summary for f in findings]
    evidence = found.evidence
    assert evidence["method"] == "explain-before" and evidence["table"] == "shop.orders"
    assert evidence["access_type"] == "ALL" and evidence["rows_examined_per_scan"] >= 150_000
    assert evidence["cost_after"] is None and "Not measured after" in found.description
    [statement] = evidence["statements"]
    assert statement["calls"] == 3 and statement["no_index_used"] == 3 and statement["rows_examined"] >= 600_000
    assert statement["sample_source"] == "history_long"
    assert statement["sample"] == "SELECT * FROM `shop`.`orders` WHERE `customer_id` = 13001"  # the newest, literal
    assert statement["query"] == "SELECT * FROM `orders` WHERE `customer_id` = ?"
    assert evidence["sql"] == ("ALTER TABLE `shop`.`orders` ADD INDEX `orders_customer_id_idx` (`customer_id`), "
                               "ALGORITHM=INPLACE, LOCK=NONE;")
    assert server.sql("SELECT count(*) FROM information_schema.STATISTICS WHERE TABLE_NAME = 'orders'") == "2"

    query = Q_CUSTOMER.format(4242)
    before = execution_ms(server, query)
    server.sql(evidence["sql"], database="shop")
    try:
        after = execution_ms(server, query)
        plan = json.loads(server.sql(f"EXPLAIN FORMAT=JSON {query}", database="shop").replace("\\n", "\n"))
        assert plan["query_block"]["nested_loop"][0]["table"]["key"] == "orders_customer_id_idx"
    finally:
        server.sql("ALTER TABLE orders DROP INDEX orders_customer_id_idx", database="shop")
    print(f"ANALYZE {query}: {before:.2f} ms without the index, {after:.3f} ms with it")
    assert before >= 10 * after, (before, after)


def test_equality_and_range_put_the_equality_column_first(advice):
    _, findings = advice
    found = candidate(findings, ["region", "created_at"])
    assert found is not None, [f.summary for f in findings]
    assert candidate(findings, ["created_at", "region"]) is None and candidate(findings, ["created_at"]) is None
    assert found.evidence["reason"] == "equality on region, range on created_at"
    assert "(`region`, `created_at`)" in found.evidence["sql"]


def test_queries_an_existing_index_serves_get_nothing(server, advice):
    snapshot, findings = advice
    # The wide status query is a full scan with no index used, yet its column already leads orders_status.
    plan = json.loads(server.sql(f"EXPLAIN FORMAT=JSON {Q_WIDE.format('paid')}", database="shop").replace("\\n", "\n"))
    assert plan["query_block"]["nested_loop"][0]["table"]["access_type"] == "ALL"
    assert snapshot.family("dbwatch_mysql_advisor_statements").value() == 4  # customer, region, amount, the wide one
    helped = [s["query"] for f in findings for s in f.evidence["statements"]]
    assert not any("`id` = ?" in q or "`status` = ?" in q for q in helped), helped
    assert {tuple(f.evidence["columns"]) for f in findings} == {("customer_id",), ("region", "created_at"), ("amount",)}
    assert snapshot.family("dbwatch_mysql_advisor_index_candidates").value() == 3


def test_a_statement_run_without_a_default_schema_is_advised_from_its_qualified_table(advice):
    _, findings = advice
    found = candidate(findings, ["amount"])
    assert found is not None, [f.summary for f in findings]
    [statement] = found.evidence["statements"]
    assert statement["calls"] == 2 and statement["sample"] == "SELECT `id` FROM `shop`.`orders` WHERE `amount` = 6"


def test_without_statement_history_the_digest_is_planned_with_representative_values_and_a_note_says_what_to_enable(
        server):
    server.sql("UPDATE performance_schema.setup_consumers SET ENABLED = 'NO' "
               "WHERE NAME IN ('events_statements_current', 'events_statements_history_long')")
    try:
        snapshot, findings = advise(server)
    finally:
        server.sql("UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' "
                   "WHERE NAME IN ('events_statements_current', 'events_statements_history_long')")
    assert CONSUMERS_NOTE in snapshot.notes and "events_statements_history_long" in CONSUMERS_NOTE
    found = candidate(findings, ["region", "created_at"])
    assert found is not None, [f.summary for f in findings]
    [statement] = found.evidence["statements"]
    assert statement["sample_source"] == "digest"
    assert statement["sample"] == ("SELECT COUNT(*) FROM `shop`.`orders` WHERE `created_at` > '2000-01-01 00:00:00' "
                                   "AND `region` = 1")
