"""What the workload profile reads from a normalised statement (collectors/workload_common.py): PostgreSQL's
pg_stat_statements text ($n) and MySQL/MariaDB's digest text (?, backquotes)."""

from __future__ import annotations

import pytest

from dbwatch.collectors.workload_common import classify, shape


@pytest.mark.parametrize("text, calls, rows, kind, key", [
    ("SELECT name FROM plans WHERE id = $1", 100, 100, "point", "id"),
    ("SELECT `name` , `price` FROM `plans` WHERE `id` = ?", 100, 90, "point", "id"),
    ("SELECT * FROM orders WHERE customer_id = $1", 100, 2000, "scan", "customer_id"),  # many rows a call
    ("SELECT count(*) FROM orders WHERE region = $1", 10, 10, "aggregate", "region"),
    ("SELECT region, sum(amount) FROM orders GROUP BY region", 1, 100, "aggregate", None),
    ("UPDATE counters SET hits = hits + $2 WHERE id = $1", 5, 5, "write", "id"),
    ("WITH moved AS (DELETE FROM a WHERE id = $1 RETURNING *) INSERT INTO b SELECT * FROM moved", 1, 1, "write", "id"),
    ("/* app */ SELECT o.id FROM orders o WHERE o.customer_id = $1", 3, 3, "point", "customer_id"),
    ("VACUUM ANALYZE events", 1, 0, "other", None),
])
def test_kinds_and_keys(text, calls, rows, kind, key):
    got_kind, _, got_key = classify(text, calls, rows)
    assert (got_kind, got_key) == (kind, key)


@pytest.mark.parametrize("text, features", [
    ("SELECT id FROM articles WHERE title ILIKE $1", {"ilike"}),
    ("SELECT id FROM articles WHERE title LIKE $1", {"like"}),
    ("SELECT id FROM articles WHERE title ~* $1", {"regex"}),
    ("SELECT id FROM docs WHERE data->>$1 = $2", {"json_key"}),
    ("SELECT id FROM docs WHERE data @> $1::jsonb", {"json_contains"}),
    ("SELECT id FROM docs WHERE to_tsvector($1, body) @@ plainto_tsquery($2)", {"fulltext"}),
    ("WITH RECURSIVE t(id) AS (SELECT id FROM c WHERE id = $1 UNION ALL SELECT c.id FROM c JOIN t ON c.p = t.id) "
     "SELECT count(*) FROM t", {"recursive"}),
    ("SELECT * FROM jobs WHERE id = $1 FOR UPDATE SKIP LOCKED", {"for_update"}),
    ("SET search_path = app", {"session_state"}),
    ("SELECT pg_advisory_lock($1)", {"session_state"}),
    ("SET LOCAL statement_timeout = $1", set()),  # ends with the transaction: poolable
    ("SELECT a - b FROM t WHERE x <> $1", set()),
])
def test_features(text, features):
    _, got, _ = classify(text, 1, 1)
    assert set(got) == features


def test_shape_names_only_the_applications_tables_and_folds_the_text():
    s = shape("SELECT o.id\n  FROM public.orders o JOIN \"Customers\" c ON c.id = o.cid WHERE o.cid = $1",
              10, 10, 0.5, 40, ["orders", "customers", "lines"])
    assert s.tables == ("orders", "customers") and s.query.startswith("SELECT o.id FROM public.orders o JOIN")
