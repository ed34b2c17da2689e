"""MySQL/MariaDB schemas read from information_schema, against two real MariaDB 10.11 servers the tests start:
`dbwatch schema diff` prints the planted differences as MySQL DDL (and that DDL, applied, makes the schemas
equal), `dbwatch schema erd` draws the live catalog, SchemaDrift fires for targets of one schema_group whose
fingerprints differ, and an online schema change in progress is not drift."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import pytest

from dbwatch.agent.cli import main
from dbwatch.agent.config import parse_config
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_schema import MySQLSchemaCollector
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.schema_drift import SchemaDriftRule
from tests.auditutil import target
from tests.helpers import collect
from tests.mariadbserver import MariaDBServer

BASE = """
CREATE TABLE customers (
  id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email varchar(190) NOT NULL,
  name varchar(100) DEFAULT 'anon',
  UNIQUE KEY email_uq (email),
  CONSTRAINT name_ck CHECK (name <> ''));
CREATE TABLE orders (
  id int NOT NULL AUTO_INCREMENT,
  customer_id bigint unsigned NOT NULL,
  amount decimal(10,2) NOT NULL DEFAULT 0.00,
  created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  note text,
  total decimal(12,2) AS (amount * 1.2) STORED,
  PRIMARY KEY (id),
  KEY created (created_at DESC, note(10)),
  CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE);
CREATE TABLE `audit log` (id int PRIMARY KEY, what varchar(20));
"""
# production got what staging does not have yet, and lost what staging still has
DRIFT = """
ALTER TABLE orders MODIFY amount decimal(14,2) NOT NULL DEFAULT 0.00;
ALTER TABLE orders ADD COLUMN channel varchar(20) NOT NULL DEFAULT 'web' AFTER customer_id;
ALTER TABLE customers DROP CONSTRAINT name_ck, ADD CONSTRAINT name_ck CHECK (char_length(name) > 1);
ALTER TABLE customers MODIFY name varchar(100) NOT NULL DEFAULT 'anon';
ALTER TABLE orders DROP INDEX created, ADD INDEX customer_created (customer_id, created_at);
ALTER TABLE orders DROP FOREIGN KEY orders_customer;
ALTER TABLE orders ADD CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE RESTRICT;
CREATE TABLE refunds (id bigint PRIMARY KEY, order_id int NOT NULL,
                      CONSTRAINT refunds_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE);
DROP TABLE `audit log`;
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[MariaDBServer, MariaDBServer]]:
    one, two = MariaDBServer(server_id=31), MariaDBServer(server_id=32)
    try:
        one.start()
        two.start()
        for name in ("staging", "prod"):
            one.sql(f"CREATE DATABASE {name}")
            one.sql(BASE, database=name)
        one.sql(DRIFT, database="prod")
        two.sql("CREATE DATABASE shop")  # another name, the same tables
        two.sql(BASE, database="shop")
        yield one, two
    finally:
        one.destroy()
        two.destroy()


@pytest.fixture(scope="module")
def config(servers, tmp_path_factory) -> Path:
    one, two = servers
    path = tmp_path_factory.mktemp("myschema") / "dbwatch.yaml"
    path.write_text(f"""
targets:
  - name: staging
    engine: mysql
    dsn: {one.dsn(database="staging")}
  - name: prod
    engine: mysql
    dsn: {one.dsn(database="prod")}
  - name: other-server
    engine: mysql
    dsn: {two.dsn(database="shop")}
""")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_schema_diff_prints_mysql_ddl_that_turns_one_database_into_the_other_and_it_does(servers, config, capsys):
    code, out, err = run(capsys, "schema", "diff", "-c", str(config), "staging", "prod")
    assert code == 1, err
    ddl = "\n".join(line for line in out.splitlines() if not line.startswith("--"))
    for expected in (
            "ALTER TABLE `orders` DROP FOREIGN KEY `orders_customer`;",
            "CREATE TABLE `refunds` (\n  `id` bigint(20) NOT NULL,\n  `order_id` int(11) NOT NULL,\n"
            "  PRIMARY KEY (`id`),\n  KEY `refunds_order` (`order_id`)\n);",
            "ALTER TABLE `customers`\n  DROP CONSTRAINT `name_ck`,\n"
            "  MODIFY COLUMN `name` varchar(100) NOT NULL DEFAULT 'anon',\n"
            "  ADD CONSTRAINT `name_ck` CHECK (char_length(`name`) > 1);",
            "  DROP INDEX `created`,\n",
            "  ADD COLUMN `channel` varchar(20) NOT NULL DEFAULT 'web' AFTER `customer_id`,\n",
            "  MODIFY COLUMN `amount` decimal(14,2) NOT NULL DEFAULT 0.00,\n",
            "  ADD KEY `customer_created` (`customer_id`, `created_at`);",
            "DROP TABLE `audit log`;",
            "ALTER TABLE `orders` ADD CONSTRAINT `orders_customer` FOREIGN KEY (`customer_id`) REFERENCES "
            "`customers` (`id`) ON DELETE RESTRICT ON UPDATE RESTRICT;",
            "ALTER TABLE `refunds` ADD CONSTRAINT `refunds_order` FOREIGN KEY (`order_id`) REFERENCES `orders` "
            "(`id`) ON DELETE CASCADE ON UPDATE RESTRICT;"):
        assert expected in ddl, f"{expected!r} not in:\n{ddl}"
    one, _ = servers
    one.sql(ddl, database="staging")  # the printed DDL, applied, makes staging what prod is
    try:
        code, out, _ = run(capsys, "schema", "diff", "-c", str(config), "staging", "prod")
        assert code == 0 and "have the same schema" in out, out
    finally:
        one.sql("DROP DATABASE staging; CREATE DATABASE staging")
        one.sql(BASE, database="staging")


def test_schema_diff_between_databases_of_other_names_on_two_servers_with_the_same_tables_is_empty(config, capsys):
    code, out, _ = run(capsys, "schema", "diff", "-c", str(config), "staging", "other-server")
    assert code == 0 and out.startswith("-- staging and other-server have the same schema (fingerprint ")


def test_schema_erd_mermaid_and_dot_from_information_schema(config, capsys):
    code, out, _ = run(capsys, "schema", "erd", "-c", str(config), "--target", "prod")
    assert code == 0 and out.startswith("erDiagram\n")
    assert "    orders {\n        int(11) id PK\n        bigint(20)_unsigned customer_id FK\n    }" in out
    assert "        varchar(190) email UK" in out and "channel" not in out  # key columns only
    assert '    customers ||--o{ orders : "orders_customer"' in out
    assert '    orders ||--o{ refunds : "refunds_order"' in out
    code, out, _ = run(capsys, "schema", "erd", "-c", str(config), "--target", "staging", "--format", "dot")
    assert code == 0
    assert '"orders" -> "customers" [label="orders_customer"];' in out
    assert '"audit log" [label="{audit log|id : int(11) PK\\l}"];' in out


async def collect_schema(store: SnapshotStore, name: str, dsn: str, group: str | None) -> None:
    t = dataclasses.replace(target("mysql", dsn, {"schema": {}}), name=name, schema_group=group)
    session = MySQLSession(t)
    try:
        await collect(MySQLSchemaCollector(t, session), store)
    finally:
        await session.close()


async def test_mariadb_targets_of_one_schema_group_whose_schemas_differ_raise_schema_drift(servers):
    one, two = servers
    store = SnapshotStore()
    await collect_schema(store, "staging", one.dsn(database="staging"), "shop")
    await collect_schema(store, "prod", one.dsn(database="prod"), "shop")
    await collect_schema(store, "other-server", two.dsn(database="shop"), "shop")
    engine_ = RuleEngine([], [SchemaDriftRule()])
    [drift] = engine_.evaluate(TargetView(store, "prod", "mysql"))
    assert drift.labels == {"schema_group": "shop"} and drift.evidence["differs_from"] == ["other-server", "staging"]
    assert "DROP TABLE `audit log`;" in drift.evidence["statements"]
    [staging_drift] = engine_.evaluate(TargetView(store, "staging", "mysql"))
    assert staging_drift.evidence["differs_from"] == ["prod"]
    assert engine_.evaluate(TargetView(store, "other-server", "mysql"))[0].evidence["differs_from"] == ["prod"]


async def test_an_online_schema_change_in_progress_is_not_drift(servers):
    _, two = servers
    store = SnapshotStore()
    await collect_schema(store, "before", two.dsn(database="shop"), "g")
    two.sql("CREATE TABLE _orders_gho LIKE orders; CREATE TABLE _orders_ghc (id int PRIMARY KEY);"
            "CREATE TABLE _customers_new LIKE customers", database="shop")
    try:
        await collect_schema(store, "during", two.dsn(database="shop"), "g")
    finally:
        two.sql("DROP TABLE _orders_gho, _orders_ghc, _customers_new", database="shop")
    assert RuleEngine([], [SchemaDriftRule()]).evaluate(TargetView(store, "during", "mysql")) == []


def test_schema_group_switches_the_mysql_schema_collector_on():
    text = """
targets:
  - name: a
    engine: mysql
    dsn: mysql://u@127.0.0.1:3306/db
    schema_group: shop
"""
    [a] = parse_config(text, "cfg.yaml", {}).resolved_targets()
    assert "schema" in a.collectors
