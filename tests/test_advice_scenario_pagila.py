"""A realistic scenario for ``dbwatch advise``: the pagila sample database (github.com/devrimgunduz/pagila; its
tables, columns, indexes and foreign keys, without the views and functions), scaled up with generated rows,
an application-like workload sent with bound parameters (so pg_stat_statements keeps ``$1``), and an expert
rubric: the indexes a DBA would create with their leading columns, the ones that must not be offered, the
findings that must not appear, and nothing harmful.

Planted, as the issue's scenario had them: login by e-mail (no index on customer.email); a customer's
rental page and open rentals (pagila has no index on rental.customer_id, which also backs the foreign key);
an ``IS NULL`` predicate whose column has many distinct values but few NULLs (the trap that put
``return_date`` first); an N+1 loop (one inventory lookup per overdue rental) with a decoy statement that
returns as many rows but has nothing to do with inventory; small tables with unindexed foreign keys (below
the noise floor); fsync off on the server (a durability finding).

One throwaway PostgreSQL 15 (fsync off also makes the load fast); about 30 s on this box.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.pgcluster import PostgresServer

psycopg = pytest.importorskip("psycopg")

# pagila's tables (columns, keys, indexes and foreign keys as pagila defines them; payment not partitioned).
SCHEMA = """
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION hypopg;
CREATE TABLE language (language_id serial PRIMARY KEY, name text NOT NULL, last_update timestamptz DEFAULT now());
CREATE TABLE category (category_id serial PRIMARY KEY, name text NOT NULL, last_update timestamptz DEFAULT now());
CREATE TABLE address (address_id serial PRIMARY KEY, address text NOT NULL, district text NOT NULL,
                      city_id int NOT NULL, phone text NOT NULL, last_update timestamptz DEFAULT now());
CREATE TABLE store (store_id serial PRIMARY KEY, manager_staff_id int NOT NULL,
                    address_id int NOT NULL REFERENCES address, last_update timestamptz DEFAULT now());
CREATE TABLE staff (staff_id serial PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
                    address_id int NOT NULL REFERENCES address, email text, store_id int NOT NULL REFERENCES store,
                    active boolean DEFAULT true NOT NULL, username text NOT NULL, last_update timestamptz DEFAULT now());
CREATE TABLE customer (customer_id serial PRIMARY KEY, store_id int NOT NULL REFERENCES store,
                       first_name text NOT NULL, last_name text NOT NULL, email text,
                       address_id int NOT NULL REFERENCES address, activebool boolean DEFAULT true NOT NULL,
                       create_date date DEFAULT CURRENT_DATE NOT NULL, last_update timestamptz DEFAULT now(),
                       active int);
CREATE INDEX idx_fk_address_id ON customer (address_id);
CREATE INDEX idx_fk_store_id ON customer (store_id);
CREATE INDEX idx_last_name ON customer (last_name);
CREATE TABLE film (film_id serial PRIMARY KEY, title text NOT NULL, description text, release_year int,
                   language_id int NOT NULL REFERENCES language, rental_duration smallint DEFAULT 3 NOT NULL,
                   rental_rate numeric(4,2) DEFAULT 4.99 NOT NULL, length smallint,
                   replacement_cost numeric(5,2) DEFAULT 19.99 NOT NULL, rating text DEFAULT 'G',
                   last_update timestamptz DEFAULT now() NOT NULL);
CREATE INDEX idx_title ON film (title);
CREATE INDEX idx_fk_language_id ON film (language_id);
CREATE TABLE film_category (film_id int NOT NULL REFERENCES film, category_id int NOT NULL REFERENCES category,
                            last_update timestamptz DEFAULT now() NOT NULL, PRIMARY KEY (film_id, category_id));
CREATE TABLE inventory (inventory_id serial PRIMARY KEY, film_id int NOT NULL REFERENCES film,
                        store_id int NOT NULL REFERENCES store, last_update timestamptz DEFAULT now() NOT NULL);
CREATE INDEX idx_store_id_film_id ON inventory (store_id, film_id);
CREATE TABLE rental (rental_id serial PRIMARY KEY, rental_date timestamptz NOT NULL,
                     inventory_id int NOT NULL REFERENCES inventory, customer_id int NOT NULL REFERENCES customer,
                     return_date timestamptz, staff_id int NOT NULL REFERENCES staff,
                     last_update timestamptz DEFAULT now() NOT NULL);
CREATE INDEX idx_fk_inventory_id ON rental (inventory_id);
CREATE UNIQUE INDEX idx_unq_rental_rental_date_inventory_id_customer_id ON rental (rental_date, inventory_id, customer_id);
CREATE TABLE payment (payment_id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customer,
                      staff_id int NOT NULL REFERENCES staff, rental_id int NOT NULL REFERENCES rental,
                      amount numeric(5,2) NOT NULL, payment_date timestamptz NOT NULL);
CREATE INDEX idx_fk_payment_customer_id ON payment (customer_id);
CREATE INDEX idx_fk_payment_staff_id ON payment (staff_id);
"""
CUSTOMERS, FILMS, INVENTORY, RENTALS = 30_000, 4_000, 16_000, 300_000
DATA = f"""
INSERT INTO language (name) SELECT unnest(ARRAY['English', 'Italian', 'Japanese', 'Mandarin', 'French', 'German']);
INSERT INTO category (name) SELECT 'category ' || g FROM generate_series(1, 16) g;
INSERT INTO address (address, district, city_id, phone)
  SELECT g || ' Main Street', 'district ' || g % 300, 1 + g % 600, lpad(g::text, 10, '0') FROM generate_series(1, 2000) g;
INSERT INTO store (manager_staff_id, address_id) VALUES (1, 1), (2, 2);
INSERT INTO staff (first_name, last_name, address_id, email, store_id, username)
  VALUES ('Mike', 'Hillyer', 3, 'mike@sakilastaff.com', 1, 'Mike'), ('Jon', 'Stephens', 4, 'jon@sakilastaff.com', 2, 'Jon');
INSERT INTO customer (store_id, first_name, last_name, email, address_id, active)
  SELECT 1 + g % 2, 'first' || g, 'last' || g % 5000, 'customer' || g || '@sakilacustomer.org', 1 + g % 2000, 1
  FROM generate_series(1, {CUSTOMERS}) g;
INSERT INTO film (title, description, release_year, language_id, length, rating)
  SELECT 'FILM TITLE ' || g, 'a film', 2006, 1 + g % 6, 46 + g % 140, (ARRAY['G','PG','PG-13','R','NC-17'])[1 + g % 5]
  FROM generate_series(1, {FILMS}) g;
INSERT INTO film_category (film_id, category_id) SELECT g, 1 + g % 16 FROM generate_series(1, {FILMS}) g;
INSERT INTO inventory (film_id, store_id) SELECT 1 + g % {FILMS}, 1 + g % 2 FROM generate_series(1, {INVENTORY}) g;
-- 1 % of the rentals are still out (return_date IS NULL): many distinct values, few NULLs.
INSERT INTO rental (rental_date, inventory_id, customer_id, return_date, staff_id)
  SELECT timestamptz '2026-01-01' - g * interval '1 minute', 1 + (g::bigint * 7919) % {INVENTORY}, 1 + (g::bigint * 104729) % {CUSTOMERS},
         CASE WHEN g % 100 = 0 THEN NULL ELSE timestamptz '2026-01-01' - g * interval '1 minute' + interval '3 days' END,
         1 + g % 2
  FROM generate_series(1, {RENTALS}) g;
INSERT INTO payment (customer_id, staff_id, rental_id, amount, payment_date)
  SELECT customer_id, staff_id, rental_id, 0.99 + rental_id % 10, rental_date FROM rental;
VACUUM ANALYZE;
SELECT pg_stat_statements_reset();
"""

# The application's statements, as an ORM sends them (bound parameters).
LOGIN = "SELECT customer_id, first_name, last_name FROM customer WHERE email = %s"
RENTAL_PAGE = "SELECT rental_id, rental_date, inventory_id FROM rental WHERE customer_id = %s ORDER BY rental_date DESC LIMIT 20"
OPEN_RENTALS = "SELECT rental_id, inventory_id FROM rental WHERE customer_id = %s AND return_date IS NULL"
OVERDUE = ("SELECT rental_id, inventory_id, customer_id FROM rental WHERE return_date IS NULL AND rental_date < %s "
           "ORDER BY rental_date LIMIT 400")
INVENTORY_LOOKUP = "SELECT film_id, store_id FROM inventory WHERE inventory_id = %s"
DECOY = "SELECT address_id, phone FROM address WHERE district = %s OR city_id > %s LIMIT 400"
FILM_BY_ID = "SELECT title, rental_rate FROM film WHERE film_id = %s"
PAYMENTS = "SELECT amount, payment_date FROM payment WHERE customer_id = %s ORDER BY payment_date DESC LIMIT 10"
CATEGORIES = "SELECT c.name, count(*) FROM film_category fc JOIN category c USING (category_id) GROUP BY c.name"


def _workload(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(60):  # pages of the site: login, the customer's rentals, their open rentals, payments
            customer = 1 + (n * 4999) % CUSTOMERS
            for visitor in range(3):  # more sign-ins than rental pages
                conn.execute(LOGIN, (f"customer{customer + visitor}@sakilacustomer.org",)).fetchall()
            conn.execute(RENTAL_PAGE, (customer,)).fetchall()
            conn.execute(OPEN_RENTALS, (customer,)).fetchall()
            conn.execute(PAYMENTS, (customer,)).fetchall()
            conn.execute(FILM_BY_ID, (1 + n,)).fetchall()
        for _ in range(5):
            conn.execute(CATEGORIES).fetchall()
        for _ in range(4):  # the overdue report, then one inventory lookup per rental it lists (N+1)
            rows = conn.execute(OVERDUE, ("2025-12-31",)).fetchall()
            assert len(rows) == 400
            for _, inventory_id, _ in rows:
                conn.execute(INVENTORY_LOOKUP, (inventory_id,)).fetchall()
            # a decoy returning as many rows, unrelated to inventory: never named as the loop's parent
            assert len(conn.execute(DECOY, ("district 1", 200)).fetchall()) == 400


@pytest.fixture(scope="module")
def pagila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PostgresServer, Path]]:
    pg = PostgresServer(settings={"fsync": "off", "full_page_writes": "off", "shared_buffers": "128MB"})
    try:
        pg.start()
        pg.psql("CREATE DATABASE pagila")
        pg.psql(SCHEMA + DATA, database="pagila")
        _workload(pg.dsn(database="pagila"))
        config = tmp_path_factory.mktemp("pagila") / "dbwatch.yaml"
        config.write_text(f"targets:\n  - name: pagila\n    engine: postgres\n    dsn: {pg.dsn(database='pagila')}\n")
        yield pg, config
    finally:
        pg.destroy()


def _advise(config: Path) -> list[dict[str, Any]]:
    dbwatch = Path(sys.executable).parent / "dbwatch"
    result = subprocess.run([str(dbwatch), "advise", "-c", str(config), "--format", "json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


@pytest.fixture(scope="module")
def advice(pagila: tuple[PostgresServer, Path]) -> list[dict[str, Any]]:
    return _advise(pagila[1])


def _rule(rows: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["rule"] == rule]


def _indexes(rows: list[dict[str, Any]]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for r in _rule(rows, "PgIndexCandidate"):
        out.setdefault(r["evidence"]["table"], []).append(r["evidence"]["columns"])
    return out


def test_the_indexes_an_expert_asks_for_are_recommended_with_the_right_leading_columns(advice):
    indexes = _indexes(advice)
    assert [c[0] for c in indexes.get("public.customer", [])] == ["email"], indexes
    rental = indexes.get("public.rental", [])
    # one index for the rental page and the open rentals, the one that loses least of their saving: the page's
    # (customer_id, rental_date) also serves `customer_id = $1 AND return_date IS NULL` (about ten rows a
    # customer, filtered), while (customer_id, return_date) would sort every page
    assert rental == [["customer_id", "rental_date"]], indexes
    # the column order was chosen by HypoPG cost among the plausible orders, each order's cost shown
    [rental_finding] = [r for r in _rule(advice, "PgIndexCandidate") if r["evidence"]["table"] == "public.rental"]
    orders = rental_finding["evidence"]["column_orders"]
    assert [o["columns"] for o in orders] == [rental[0], rental[0][::-1]], orders
    assert orders[1]["cost"] is None or orders[0]["cost"] <= orders[1]["cost"], orders
    assert "Column orders costed with HypoPG" in rental_finding["description"]
    # forbidden: an index led by the IS NULL column (1 % NULL, but 99 % distinct values), or the FK alone twice
    assert not any(c[0] == "return_date" for cs in indexes.values() for c in cs), indexes
    # nothing for the statements an existing index already serves (payments by customer, films by id)
    assert set(indexes) <= {"public.customer", "public.rental"}, indexes


def test_the_index_plan_has_no_redundant_index_and_adds_up_its_size(advice):
    indexes = _indexes(advice)
    for table, candidates in indexes.items():
        for a in candidates:
            for b in candidates:
                assert a == b or b[:len(a)] != a, f"{table}: {a} is a left prefix of {b}"
    [plan] = _rule(advice, "PgIndexPlan")
    evidence = plan["evidence"]
    assert len(evidence["indexes"]) == sum(len(c) for c in indexes.values())
    assert evidence["total_size_bytes"] == sum(i["size_bytes"] for i in evidence["indexes"]) > 0
    assert evidence["unknown_sizes"] == 0
    # the rental index serves the unindexed foreign key too: one index, and no separate FK finding for it
    [rental] = [i for i in evidence["indexes"] if i["index"].startswith("public.rental ")]
    assert rental["serves_foreign_keys"] and "public.rental (customer_id" in " ".join(evidence["shared"])
    assert not [f for f in _rule(advice, "PgForeignKeyWithoutIndex")
                if f["evidence"]["table"] == "public.rental" and "customer_id" in f["evidence"]["columns"]]
    assert plan["sql"].count("CREATE INDEX CONCURRENTLY") == len(evidence["indexes"])


def test_each_index_finding_shows_its_evidence_and_the_largest_wins_come_first(advice):
    for r in _rule(advice, "PgIndexCandidate"):
        e = r["evidence"]
        assert e["calls"] >= 60 and e["mean_ms"] > 0 and 0 < e["time_share"] <= 1
        assert e["cost_after"] < e["cost_before"] and e["size_bytes"] > 0
        assert r["sql"].startswith("CREATE INDEX CONCURRENTLY") and e["risk"] == "low"
    # the largest win (the rental index: half of all statement time) is in "do these first"; the two index
    # wins rank above every finding that saves no time (foreign keys, pg_hba and SSL on a loopback server)
    first = [r for r in advice if r["do_first"]]
    assert any(r["rule"] == "PgIndexCandidate" and r["evidence"]["table"] == "public.rental" for r in first), \
        [r["summary"] for r in first]
    ranks = {n: r for n, r in enumerate(advice)}
    last_index = max(n for n, r in ranks.items() if r["rule"] == "PgIndexCandidate")
    assert all(n > last_index for n, r in ranks.items()
               if r["rule"] in ("PgForeignKeyWithoutIndex", "PgHbaWeakAuth", "PgSslOff", "QueryNPlusOne")), \
        [(r["rule"], r["evidence"]["impact"]) for r in advice]


def test_the_n_plus_one_loop_is_found_by_one_advise_run_with_its_real_parent(advice):
    [loop] = _rule(advice, "QueryNPlusOne")
    e = loop["evidence"]
    assert e["table"] == "inventory" and e["calls"] == 1600 and e["rows_per_call"] == 1.0
    assert e["parent"] is not None, loop["description"]
    assert "return_date IS NULL" in e["parent"]["query"] and e["parent"]["rows"] == 1600
    assert "address" not in e["parent"]["query"]  # the decoy returned as many rows


def test_no_noise_and_nothing_harmful(advice):
    rules = {r["rule"] for r in advice}
    # the small tables' unindexed foreign keys (film_category 4,000 rows; store, staff) stay below the floor
    small = [r["evidence"]["table"] for r in _rule(advice, "PgForeignKeyWithoutIndex")
             if r["evidence"]["table"] in ("public.film_category", "public.store", "public.staff")]
    assert small == []
    assert "PgTableWithoutPrimaryKey" not in rules and "PgUnusedIndex" not in rules
    for r in advice:
        sql = r["sql"] or ""
        if sql:
            assert r["evidence"]["risk"] in ("low", "medium", "high") and r["evidence"]["lock"], r["summary"]
        assert "NOSUPERUSER" not in sql and "require_secure_transport" not in sql, r["summary"]
        assert not (sql.startswith("CREATE INDEX") and "CONCURRENTLY" not in sql), r["summary"]
    # and the planted durability problem is found, first of all
    durability = _rule(advice, "PgDurabilityOff")
    assert {r["evidence"]["setting"] for r in durability} >= {"fsync", "full_page_writes"}, [r["summary"] for r in durability]
    assert advice[0]["rule"] == "PgDurabilityOff"


def test_after_applying_the_plan_the_next_run_neither_asks_again_nor_flags_the_new_indexes(pagila, advice):
    """Run last: it changes the database. The plan's statements, run as offered, then the same workload."""
    pg, config = pagila
    [plan] = _rule(advice, "PgIndexPlan")
    for statement in plan["sql"].splitlines():  # CREATE INDEX CONCURRENTLY: one statement per psql call
        pg.psql(statement, database="pagila")
    pg.psql("ANALYZE; SELECT pg_stat_statements_reset();", database="pagila")
    _workload(pg.dsn(database="pagila"))
    names = [i["sql"].split()[3] for i in plan["evidence"]["indexes"]]
    for name, query in zip(sorted(names), ("EXPLAIN " + LOGIN.replace("%s", "'customer7@sakilacustomer.org'"),
                                           "EXPLAIN " + OPEN_RENTALS.replace("%s", "42"))):
        assert name in pg.psql(query, database="pagila"), (name, query)
    again = _advise(config)
    # the statements the plan served are not asked about again (the next busiest may be: the overdue report)
    asked = [(r["evidence"]["table"], r["evidence"]["columns"][0]) for r in _rule(again, "PgIndexCandidate")]
    assert not set(asked) & {("public.customer", "email"), ("public.rental", "customer_id")}, asked
    assert all(r["evidence"]["estimated_saving_share"] >= 0.02 for r in _rule(again, "PgIndexCandidate"))
    flagged = " ".join(r["summary"] for r in again if r["rule"] in ("PgRedundantIndex", "PgUnusedIndex"))
    assert not any(name in flagged for name in names), flagged
    assert not [f for f in _rule(again, "PgForeignKeyWithoutIndex") if f["evidence"]["table"] == "public.rental"
                and "customer_id" in f["evidence"]["columns"]]
