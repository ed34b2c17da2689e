"""sqlshape: statement analysis for the advisors and the query rules, on text alone (no server)."""

from __future__ import annotations

import pytest

from dbwatch.rules.engine import RuleEngine
from dbwatch.rules.queries import QueryRules
from dbwatch.rules.query_index_hints import QueryIndexHints
from dbwatch.sqlshape import (
    ANALYSERS, METRIC, MySQLAnalyser, ParseFailures, PostgresAnalyser, Shape, Skipped, StatementUses, analyser,
)


def test_each_dialect_has_its_analyser_by_name():
    assert set(ANALYSERS) == {"postgres", "mysql"}
    assert isinstance(analyser("postgres"), PostgresAnalyser)
    assert isinstance(analyser("mysql"), MySQLAnalyser)
    with pytest.raises(ValueError, match="no SQL analyser for dialect 'oracle'"):
        analyser("oracle")


def test_a_postgres_statement_reads_as_the_columns_an_index_could_serve():
    found = PostgresAnalyser().uses(
        "SELECT * FROM app.orders o JOIN customers c ON o.customer_id = c.id "
        "WHERE o.status = $1 AND o.created_at > $2 AND c.deleted_at IS NULL AND (o.a = 1 OR o.b = 2) "
        "ORDER BY o.created_at")
    assert isinstance(found, StatementUses)
    assert found.kind == "select" and found.params == 2
    orders, customers = found.tables[("app", "orders")], found.tables[(None, "customers")]
    assert orders.equality == ["status"] and orders.range == ["created_at"] and orders.order == ["created_at"]
    assert orders.join == ["customer_id"] and customers.join == ["id"]
    assert customers.equality == ["deleted_at"]  # IS NULL is an equality; the OR branch is left out
    assert found.names == {"o": ("app", "orders"), "c": (None, "customers")}


def test_a_postgres_unqualified_column_of_several_tables_is_left_to_the_catalog():
    found = PostgresAnalyser().uses("SELECT 1 FROM a, b WHERE x = $1")
    assert isinstance(found, StatementUses)
    assert found.unqualified == [(((None, "a"), (None, "b")), "equality", "x")]


def test_a_normalized_typed_literal_is_made_preparable():
    assert PostgresAnalyser.preparable("SELECT 1 FROM t WHERE d > now() - interval $1") == \
        "SELECT 1 FROM t WHERE d > now() - $1::interval"
    assert isinstance(PostgresAnalyser().uses("SELECT 1 FROM t WHERE d > now() - interval $1"), StatementUses)


def test_a_mysql_digest_reads_with_its_tables_resolved_to_the_default_schema():
    found = MySQLAnalyser().uses("SELECT * FROM orders WHERE customer = ? AND total BETWEEN ? AND ? "
                                 "AND name LIKE 'ab%' AND id IN (...) ORDER BY placed", "shop")
    assert not isinstance(found, Skipped)
    assert found.names == {"orders": ("shop", "orders")} and found.params == 4  # IN (...) is one
    use = found.tables[("shop", "orders")]
    assert use.equality == ["customer", "id"] and use.range == ["total", "name"] and use.order == ["placed"]


def test_a_mysql_update_is_explained_as_the_select_of_its_rows_with_typed_values():
    my = MySQLAnalyser()
    found = my.uses("UPDATE orders SET total = ? WHERE placed > ? AND customer = ?", "shop")
    assert not isinstance(found, Skipped) and found.kind == "update"
    types = {("shop", "orders"): {"placed": "date", "customer": "int"}}
    assert my.explainable(found, types) == \
        "SELECT * FROM `shop`.`orders` WHERE `placed` > '2000-01-01' AND `customer` = 1"


@pytest.mark.parametrize("text, reason", [
    ("SELECT * FROM t WHERE a = ? AND b = ...", "cut off at the server's length limit"),
    ("SELECT * FROM mysql.user WHERE user = ?", "the server's own catalogs"),
    ("INSERT INTO t VALUES (?)", "not a SELECT, UPDATE or DELETE"),
    ("SELECT * FROM t", "no default schema to resolve a table"),
])
def test_a_mysql_statement_the_advisor_does_not_cover_is_skipped_with_its_reason_not_counted(text, reason):
    my = MySQLAnalyser()
    assert my.uses(text) == Skipped(reason)
    assert my.failures.count("mysql") == 0


def test_a_shape_tells_the_query_hints_what_they_look_for():
    pg = PostgresAnalyser().shape("SELECT * FROM users WHERE name LIKE '%son' OFFSET 5000")
    my = MySQLAnalyser().shape("SELECT * FROM users WHERE name LIKE '%son' LIMIT 10 OFFSET 5000")
    for shape in (pg, my):
        assert isinstance(shape, Shape)
        assert shape.select_star and shape.offset == 5000 and shape.leading_wildcard == ["name"]
        assert shape.single_table and shape.application
    catalog = PostgresAnalyser().shape("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = $1")
    assert isinstance(catalog, Shape) and catalog.key_lookup and catalog.aggregate and not catalog.application


def test_functions_and_casts_on_a_column_are_found_with_what_they_compute():
    pg = PostgresAnalyser()
    found = pg.expression_uses("SELECT 1 FROM users u WHERE lower(u.email) = $1 AND created_at::date = $2")
    assert not isinstance(found, Skipped)
    assert [(u.table, u.expression, u.signature) for u in found] == [
        ((None, "users"), "lower(email)", ("function", "lower", "email")),
        ((None, "users"), "CAST(created_at AS date)", ("cast", "date", "created_at"))]
    assert pg.index_signatures("lower(email)") == {("function", "lower", "email")}
    assert pg.expression_uses("SELECT 1 FROM t WHERE lower(a) = lower(b)") == []


def test_a_statement_that_does_not_parse_is_counted_and_skipped_with_a_reason_that_hides_its_text():
    failures = ParseFailures()
    pg, my = analyser("postgres", failures), analyser("mysql", failures)
    assert failures.family().samples == [(("mysql",), 0.0), (("postgres",), 0.0)]  # watched from the start
    secret = "SELEC * FROM t WHERE password = 'hunter2'"
    skipped = pg.uses(secret)
    assert isinstance(skipped, Skipped) and skipped.failed and "hunter2" not in skipped.reason
    assert skipped.reason.startswith("ParseError")
    assert isinstance(pg.shape(secret), Skipped)
    assert isinstance(my.shape("SELECT (1 FROM t WHERE password = 'hunter2'"), Skipped)
    assert failures.count("postgres") == 2 and failures.count("mysql") == 1
    family = failures.family()
    assert family.name == METRIC == "dbwatch_sql_parse_failures_total" and family.type == "counter"
    assert family.value(dialect="postgres") == 2 and family.value(dialect="mysql") == 1


def test_a_fingerprint_ignores_constants_and_parameters():
    pg = PostgresAnalyser()
    assert pg.fingerprint("SELECT 1 FROM t WHERE a = 4242") == pg.fingerprint("SELECT 1 FROM t WHERE a = $1")
    assert isinstance(pg.fingerprint("SELEC"), Skipped) and pg.failures.count("postgres") == 1


def test_the_rules_engine_exports_the_parse_failures_of_the_rules_that_read_statements():
    queries, hints = QueryRules(), QueryIndexHints()
    engine = RuleEngine([], [queries, hints])
    analyser("mysql", queries.failures).shape("SELECT (1 FROM t")
    family = {f.name: f for f in engine.metrics()}["dbwatch_rule_sql_parse_failures_total"]
    assert family.samples == [(("QueryRules", "mysql"), 1.0), (("QueryIndexHints", "postgres"), 0.0)]
