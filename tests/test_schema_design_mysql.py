"""The schema designer on a real MariaDB with a planted schema: what information_schema allows (missing
foreign keys with their orphans counted, never-null nullable columns by a bounded scan, float money, integer
keys near overflow, EAV) and collation mixes between joined columns; near misses stay silent and offered
statements run as offered."""

from __future__ import annotations

import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_schema_design import MySQLSchemaDesignCollector
from tests.auditutil import by_rule, collect_once, evaluate, target
from tests.mariadbserver import MariaDBServer

PLANTED = """
CREATE DATABASE design;
USE design;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL) ENGINE=InnoDB;
INSERT INTO customers SELECT seq, CONCAT('c', seq) FROM seq_1_to_300;
CREATE TABLE products (id INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO products SELECT seq FROM seq_1_to_50;
CREATE TABLE warehouses (id INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO warehouses SELECT seq FROM seq_1_to_5;
CREATE TABLE countries (id VARCHAR(2) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO countries VALUES ('de'), ('fr');
CREATE TABLE orders (
  id INT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT,
  product_id INT, FOREIGN KEY (product_id) REFERENCES products (id),
  warehouse_id INT,
  partner_id INT,
  country_id VARCHAR(2) CHARACTER SET latin1 COLLATE latin1_swedish_ci,
  note VARCHAR(20),
  comment VARCHAR(20),
  total_amount DOUBLE,
  latitude DOUBLE,
  fee DOUBLE,
  ext_ref CHAR(36),
  code CHAR(36)
) ENGINE=InnoDB;
INSERT INTO orders (customer_id, product_id, warehouse_id, partner_id, country_id, note, comment, total_amount,
                    latitude, fee, ext_ref, code)
SELECT 1 + seq % 300, 1 + seq % 50, 1 + seq % 7, seq, 'de', CONCAT('n', seq), IF(seq % 3 = 0, NULL, 'x'),
       seq * 1.5, seq * 0.01, seq * 0.333, UUID(), CONCAT('code-', seq) FROM seq_1_to_2000;
CREATE TABLE tickets (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(10)) ENGINE=InnoDB AUTO_INCREMENT=1800000000;
INSERT INTO tickets (title) VALUES ('t');
CREATE TABLE item_attributes (entity_id INT, attribute VARCHAR(20), value VARCHAR(20)) ENGINE=InnoDB;
ANALYZE TABLE customers, products, warehouses, countries, orders, tickets;
"""


@pytest.fixture(scope="module")
def planted():
    server = MariaDBServer(server_id=31, performance_schema=False).start()
    try:
        server.sql(PLANTED)
        yield server
    finally:
        server.destroy()


async def _advise(server: MariaDBServer, **options):
    t = target("mysql", server.dsn(database="design"), {"schema_design": options})
    store = SnapshotStore()
    await collect_once(store, MySQLSchemaDesignCollector, MySQLSession, t)
    return evaluate(store, "mysql", "schema_design")


def _columns(findings, rule: str) -> set[str]:
    return {f.labels.get("column", f.labels["table"]) for f in by_rule(findings, rule)}


async def test_each_finding_fires_on_its_pattern_and_not_on_its_near_miss(planted):
    findings = await _advise(planted)
    assert _columns(findings, "MissingForeignKey") == {"customer_id", "warehouse_id"}
    fks = {f.labels["column"]: f for f in by_rule(findings, "MissingForeignKey")}
    assert fks["customer_id"].evidence["orphans"] == 0 and "FOREIGN KEY" in fks["customer_id"].evidence["sql"]
    assert fks["warehouse_id"].evidence["orphans"] == sum(1 for g in range(1, 2001) if 1 + g % 7 > 5)
    assert fks["warehouse_id"].evidence["sql"].startswith("SELECT")
    never = _columns(findings, "ColumnNeverNull")
    assert "note" in never and "comment" not in never
    assert _columns(findings, "FloatForMoney") == {"total_amount", "fee"}
    money = {f.labels["column"]: f for f in by_rule(findings, "FloatForMoney")}
    assert money["total_amount"].evidence["lossy_values"] == 0
    assert "DECIMAL(14,2)" in money["total_amount"].evidence["sql"]
    # fee has three decimals: DECIMAL(14,2) would round most of it, so nothing is offered.
    assert money["fee"].evidence["lossy_values"] > 0 and money["fee"].evidence["sql"] is None
    assert _columns(findings, "SchemaKeyOverflow") == {"id"}
    [overflow] = by_rule(findings, "SchemaKeyOverflow")
    assert overflow.labels["table"] == "`design`.`tickets`" and overflow.evidence["used"] > 0.8
    [mix] = by_rule(findings, "SchemaCollationMix")
    assert mix.labels["column"] == "country_id" and mix.evidence["ref_collation"] == "utf8mb4_bin"
    assert _columns(findings, "SchemaEntityAttributeValue") == {"`design`.`item_attributes`"}
    # ext_ref holds UUID() text; code is CHAR(36) too but not UUIDs (the near miss). MariaDB 10.7+ converts.
    [uuid] = by_rule(findings, "SchemaUuidAsText")
    assert uuid.labels["column"] == "ext_ref" and uuid.evidence["bad_values"] == 0
    assert uuid.evidence["sql"] == "ALTER TABLE `design`.`orders` MODIFY `ext_ref` UUID;"
    assert all(f.evidence["lock"] and f.evidence["risk"] in ("low", "medium", "high") for f in findings)


async def test_offered_statements_run_as_offered_and_then_the_finding_goes(planted):
    findings = await _advise(planted)
    for rule, column in (("MissingForeignKey", "customer_id"), ("ColumnNeverNull", "note"),
                         ("FloatForMoney", "total_amount"), ("SchemaCollationMix", "country_id"),
                         ("SchemaUuidAsText", "ext_ref")):
        [finding] = [f for f in by_rule(findings, rule) if f.labels["column"] == column]
        assert finding.evidence["sql"], finding
        planted.sql(finding.evidence["sql"], database="design")
    after = await _advise(planted)
    assert "customer_id" not in _columns(after, "MissingForeignKey")
    assert "note" not in _columns(after, "ColumnNeverNull")
    assert _columns(after, "FloatForMoney") == {"fee"} and not by_rule(after, "SchemaCollationMix")
    assert "country_id" in _columns(after, "MissingForeignKey")  # now that the collations agree
    assert not by_rule(after, "SchemaUuidAsText")
    assert planted.sql("SELECT COUNT(DISTINCT ext_ref) FROM orders", database="design") == "2000"
