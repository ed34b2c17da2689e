"""The metric families of the ``queries`` collector: dbwatch's own custom queries, on PostgreSQL and MySQL/MariaDB
targets alike.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check every family a
collection emits against it.
"""

from __future__ import annotations

from dbwatch.model.catalog import C, G, MetricSpec

TITLE = 'Custom queries (dbwatch format)'
ENGINES: tuple[str, ...] = ('postgres', 'mysql')
INTRO = """\
The `queries` collector of a PostgreSQL or MySQL/MariaDB target runs the queries written in dbwatch's own
format ([custom queries](custom-queries.md)) and exports the metrics they declare, under the names, types and
labels written there, beside these figures of each query.
"""
NOTES = """\
A query that fails counts in `dbwatch_custom_query_errors_total` and reads 0 in `dbwatch_custom_query_success`;
a row whose value is NULL or not a number, or whose labels repeat an earlier row's, counts in
`dbwatch_custom_query_skipped_rows_total` and is left out.
"""

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_custom_query_success', G, "Whether the custom query's last run succeeded (1) or failed (0).",
               ('query',), 'queries'),
    MetricSpec('dbwatch_custom_query_duration_seconds', G, "How long the custom query's last run took.",
               ('query',), 'queries'),
    MetricSpec('dbwatch_custom_query_errors_total', C, 'Runs of the custom query that failed.', ('query',),
               'queries'),
    MetricSpec('dbwatch_custom_query_skipped_rows_total', C,
               "Rows skipped by a custom query's metric: a NULL or non-numeric value, or repeated labels.",
               ('query', 'metric'), 'queries'),
    MetricSpec('<metric>', None, 'What the queries declare: each metric by its name, type (gauge or counter), '
               'help and label columns', (), 'queries', open=True),
)
