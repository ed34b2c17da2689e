"""A realistic scenario for ``dbwatch advise`` on MariaDB: the Sakila sample schema (dev.mysql.com/doc/sakila;
its tables, keys and foreign keys, the columns the workload reads), scaled up from the SEQUENCE engine, with an
application-like workload and an expert rubric.

Planted: the costliest statement joins category → film_category → film → inventory → rental and filters on
rental.rental_date, which has neither an index nor statistics, so MariaDB drives the join from the 16
categories and reads every rental to discard them last (the issue's 10 s → 0.4 s join); login by e-mail and
payments by customer without an index (payment's customer index "dropped by mistake"); an N+1 loop (one film
lookup per inventory row of a store's list) beside a decoy returning as many rows. Expected: the join-order
finding with its driving table and the statistics that fix it (applied here for real: EXPLAIN then starts
from rental), the two indexes in one plan, the N+1 found by one ``advise`` run with its real parent.

One throwaway MariaDB 10.11 with performance_schema; about 20 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.mariadbserver import MariaDBServer

SCHEMA = """
CREATE DATABASE sakila;
USE sakila;
CREATE TABLE category (category_id TINYINT UNSIGNED PRIMARY KEY AUTO_INCREMENT, name VARCHAR(25) NOT NULL) ENGINE=InnoDB;
CREATE TABLE film (film_id SMALLINT UNSIGNED PRIMARY KEY AUTO_INCREMENT, title VARCHAR(128) NOT NULL,
                   rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99, KEY idx_title (title)) ENGINE=InnoDB;
CREATE TABLE film_category (film_id SMALLINT UNSIGNED NOT NULL, category_id TINYINT UNSIGNED NOT NULL,
                            PRIMARY KEY (film_id, category_id), KEY fk_film_category_category (category_id),
                            CONSTRAINT fk_film_category_film FOREIGN KEY (film_id) REFERENCES film (film_id),
                            CONSTRAINT fk_film_category_category FOREIGN KEY (category_id) REFERENCES category (category_id)
                            ) ENGINE=InnoDB;
CREATE TABLE customer (customer_id SMALLINT UNSIGNED PRIMARY KEY AUTO_INCREMENT, store_id TINYINT UNSIGNED NOT NULL,
                       first_name VARCHAR(45) NOT NULL, last_name VARCHAR(45) NOT NULL, email VARCHAR(50),
                       KEY idx_fk_store_id (store_id), KEY idx_last_name (last_name)) ENGINE=InnoDB;
CREATE TABLE inventory (inventory_id MEDIUMINT UNSIGNED PRIMARY KEY AUTO_INCREMENT, film_id SMALLINT UNSIGNED NOT NULL,
                        store_id TINYINT UNSIGNED NOT NULL, KEY idx_fk_film_id (film_id),
                        KEY idx_store_id_film_id (store_id, film_id),
                        CONSTRAINT fk_inventory_film FOREIGN KEY (film_id) REFERENCES film (film_id)) ENGINE=InnoDB;
CREATE TABLE rental (rental_id INT PRIMARY KEY AUTO_INCREMENT, rental_date DATETIME NOT NULL,
                     inventory_id MEDIUMINT UNSIGNED NOT NULL, customer_id SMALLINT UNSIGNED NOT NULL, return_date DATETIME,
                     KEY idx_fk_inventory_id (inventory_id), KEY idx_fk_customer_id (customer_id),
                     CONSTRAINT fk_rental_inventory FOREIGN KEY (inventory_id) REFERENCES inventory (inventory_id),
                     CONSTRAINT fk_rental_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id)) ENGINE=InnoDB;
CREATE TABLE payment (payment_id SMALLINT UNSIGNED PRIMARY KEY AUTO_INCREMENT, customer_id SMALLINT UNSIGNED NOT NULL,
                      rental_id INT, amount DECIMAL(5,2) NOT NULL, payment_date DATETIME NOT NULL) ENGINE=InnoDB;
INSERT INTO category (name) SELECT CONCAT('category ', seq) FROM seq_1_to_16;
INSERT INTO film (title) SELECT CONCAT('FILM ', seq) FROM seq_1_to_4000;
INSERT INTO film_category SELECT seq, 1 + seq % 16 FROM seq_1_to_4000;
INSERT INTO customer (store_id, first_name, last_name, email)
  SELECT 1 + seq % 2, CONCAT('first', seq), CONCAT('last', seq % 5000), CONCAT('customer', seq, '@sakilacustomer.org')
  FROM seq_1_to_20000;
INSERT INTO inventory (film_id, store_id) SELECT 1 + seq % 4000, 1 + seq % 2 FROM seq_1_to_16000;
INSERT INTO rental (rental_date, inventory_id, customer_id, return_date)
  SELECT '2026-01-01' - INTERVAL seq MINUTE, 1 + (seq * 7919) % 16000, 1 + seq % 20000, '2026-01-02' FROM seq_1_to_30000;
INSERT INTO payment (customer_id, rental_id, amount, payment_date)
  SELECT customer_id, rental_id, 2.99, rental_date FROM rental;
ANALYZE TABLE category, film, film_category, customer, inventory, rental, payment;
TRUNCATE performance_schema.events_statements_summary_by_digest;
"""
SALES = ("SELECT c.name, count(*) FROM category c JOIN film_category fc ON fc.category_id = c.category_id "
         "JOIN film f ON f.film_id = fc.film_id JOIN inventory i ON i.film_id = f.film_id "
         "JOIN rental r ON r.inventory_id = i.inventory_id WHERE r.rental_date >= '2025-12-31 12:00:00' GROUP BY c.name")
LOGIN = "SELECT customer_id, first_name FROM customer WHERE email = 'customer{n}@sakilacustomer.org';"
PAYMENTS = "SELECT amount, payment_date FROM payment WHERE customer_id = {n};"
STORE_LIST = "SELECT inventory_id, film_id FROM inventory WHERE store_id = 1 AND film_id <= 700 LIMIT 300;"
FILM = "SELECT title, rental_rate FROM film WHERE film_id = {n};"
DECOY = "SELECT customer_id, last_name FROM customer WHERE store_id = 2 AND last_name LIKE 'last1%' LIMIT 300;"


def _workload() -> str:
    out = [SALES + ";"] * 5  # the report, the costliest statement by far
    for n in range(1, 41):
        out += [LOGIN.format(n=n * 397)] + ([PAYMENTS.format(n=n * 397)] if n % 4 == 0 else [])
    for _ in range(5):  # a store's list, then one film per inventory row (the N+1), and a decoy as large
        out += [STORE_LIST] + [FILM.format(n=1 + (k * 2) % 300) for k in range(300)] + [DECOY]
    return "\n".join(out)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MariaDBServer, list[dict[str, Any]]]]:
    server = MariaDBServer().start()
    try:
        server.sql(SCHEMA)
        server.sql(_workload(), database="sakila")
        config = tmp_path_factory.mktemp("sakila") / "dbwatch.yaml"
        config.write_text(f"targets:\n  - name: sakila\n    engine: mysql\n    dsn: {server.dsn(database='sakila')}\n")
        dbwatch = Path(sys.executable).parent / "dbwatch"
        result = subprocess.run([str(dbwatch), "advise", "-c", str(config), "--format", "json"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        yield server, json.loads(result.stdout)
    finally:
        server.destroy()


def _rule(rows: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["rule"] == rule]


def test_the_bad_join_order_is_found_with_its_driving_table_and_the_statistics_fix_it(scenario):
    server, advice = scenario
    [join] = _rule(advice, "MySQLJoinOrder")
    e = join["evidence"]
    assert e["driving_table"] == "sakila.category" and e["driving_rows"] == 16
    assert e["filtered_table"] == "sakila.rental" and e["filter_columns"] == ["rental_date"]
    assert e["examined_per_call"] >= 30000 and e["calls"] == 5 and e["mean_ms"] > 0
    assert join["sql"] == "ANALYZE TABLE `sakila`.`rental` PERSISTENT FOR COLUMNS (`rental_date`) INDEXES ();"
    assert e["risk"] == "medium" and e["lock"]
    # the costliest statement's finding ranks above every index finding, and the report is ranked by impact
    # (the N+1 loop's place beside it follows the measured time shares, which a loaded machine moves: half the
    # join's share against the whole of the loop's, ~0.22 vs ~0.19 on a quiet one)
    workload = [r for r in advice if r["rule"] in ("MySQLJoinOrder", "MySQLIndexCandidate")]
    assert workload[0] is join, [(r["rule"], r["evidence"]["impact"]) for r in advice]
    impacts = [r["evidence"]["impact"] for r in advice]
    assert impacts == sorted(impacts, reverse=True)
    # the advice works: with the statistics, MariaDB starts the join from rental
    before = server.sql(f"EXPLAIN {SALES}", database="sakila").splitlines()[0].split("\t")[2]
    server.sql(join["sql"])
    after = server.sql(f"EXPLAIN {SALES}", database="sakila").splitlines()[0].split("\t")[2]
    assert (before, after) == ("c", "r")


def test_the_missing_indexes_are_one_plan(scenario):
    _, advice = scenario
    indexes = {(r["evidence"]["table"], tuple(r["evidence"]["columns"])) for r in _rule(advice, "MySQLIndexCandidate")}
    assert indexes == {("sakila.customer", ("email",)), ("sakila.payment", ("customer_id",))}, indexes
    [plan] = _rule(advice, "MySQLIndexPlan")
    assert len(plan["evidence"]["indexes"]) == 2 and plan["evidence"]["total_size_bytes"] > 0
    assert all(i["size_source"] == "estimate" for i in plan["evidence"]["indexes"])


def test_the_n_plus_one_is_found_by_one_advise_run_with_its_real_parent(scenario):
    _, advice = scenario
    [loop] = _rule(advice, "QueryNPlusOne")
    e = loop["evidence"]
    assert e["table"].strip("`").endswith("film") and e["calls"] == 1500
    assert e["parent"] is not None and "inventory" in e["parent"]["query"].lower(), loop["description"]
    assert e["parent"]["rows"] == 1500 and e["parent"]["evidence"] == "foreign key from inventory to film"


def test_no_harmful_statement_and_no_noise(scenario):
    _, advice = scenario
    for r in advice:
        sql = r["sql"] or ""
        assert "require_secure_transport" not in sql, r["summary"]
        if sql:
            assert r["evidence"]["risk"] in ("low", "medium", "high"), r["summary"]
        assert not (sql.startswith("ALTER TABLE") and "ADD INDEX" in sql and "LOCK=NONE" not in sql), r["summary"]
    # the small tables' join columns and the indexed lookups get no index advice
    tables = {r["evidence"].get("table") for r in _rule(advice, "MySQLIndexCandidate")}
    assert not tables & {"sakila.category", "sakila.film", "sakila.film_category", "sakila.inventory"}
