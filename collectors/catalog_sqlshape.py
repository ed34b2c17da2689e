"""The metric families of the SQL analysis (dbwatch.sqlshape) that the index advisors (`advisor` on mysql and
postgres targets) emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import C, MetricSpec

TITLE = 'SQL analysis'
ENGINES: tuple[str, ...] = ('mysql', 'postgres')
INTRO = """\
The index advisors read each statement with PostgreSQL's parser (pglast) or sqlglot (MySQL dialect). A statement
that does not parse is skipped (no index candidate from it) and counted here, per target.
"""
NOTES = ""

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_sql_parse_failures_total', C,
               'Statements the SQL analysis could not parse (skipped: no advice or hint from them).',
               ('dialect',), 'advisor'),
)
