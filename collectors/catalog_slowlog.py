"""The metric families the slow query log collector (`slowlog` on mysql and postgres targets) can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import C, G, I, MetricSpec

TITLE = 'Slow query logs'
ENGINES: tuple[str, ...] = ('mysql', 'postgres', 'neo4j')
INTRO = """\
The `slowlog` collector of `mysql`, `postgres` and `neo4j` targets, which follows a slow query log file (Neo4j's
`query.log`; [Slow query logs](slowlog.md)). On `redis` targets, `slowlog` is a different collector, which reads
`SLOWLOG` (above).
"""
NOTES = ""

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_slowlog_queries_total', C,
               'Events per class (top `top_n` by total time, plus `other`).',
               ('class_id',), 'slowlog'),
    MetricSpec('dbwatch_slowlog_query_seconds_total', C,
               'Total query time per class, in seconds.',
               ('class_id',), 'slowlog'),
    MetricSpec('dbwatch_slowlog_query_max_seconds', G,
               'Longest query of a top class in the last interval.',
               ('class_id',), 'slowlog'),
    MetricSpec('dbwatch_slowlog_query_class_info', I,
               "The class's fingerprint (no literals; cut at 200 characters).",
               ('class_id', 'fingerprint'), 'slowlog'),
    MetricSpec('dbwatch_slowlog_events_total', C,
               'The reading itself.',
               (), 'slowlog'),
    MetricSpec('dbwatch_slowlog_read_bytes_total', C,
               'The reading itself.',
               (), 'slowlog'),
    MetricSpec('dbwatch_slowlog_rotations_total', C,
               'The reading itself.',
               (), 'slowlog'),
    MetricSpec('dbwatch_slowlog_lines_skipped_total', C,
               'Lines that belong to no event (not a server header, not a query).',
               (), 'slowlog'),
    MetricSpec('dbwatch_slowlog_parse_errors_total', C,
               'Events skipped: malformed, not UTF-8, or larger than 1 MiB.',
               (), 'slowlog'),
    MetricSpec('dbwatch_slowlog_classes', G,
               'Classes with their own cumulative counters (at most 10,000; the cheapest fold into `other`).',
               (), 'slowlog'),
)
