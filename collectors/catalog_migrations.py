"""The metric families the `migrations` collector (PostgreSQL and MySQL/MariaDB) can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import G, MetricSpec

TITLE = 'Schema changes in progress'
ENGINES: tuple[str, ...] = ('postgres', 'mysql')
INTRO = """\
The `migrations` collector (on by default, PostgreSQL and MySQL/MariaDB) watches schema changes while they run
([Watching migrations](migrations.md#watching-migrations)): DDL with a lock queue behind it (the
`MigrationBlockingQueries` alert), the progress of index builds, VACUUM and CLUSTER (PostgreSQL), invalid
indexes left by failed concurrent builds (PostgreSQL), and gh-ost / pt-online-schema-change runs (MySQL/MariaDB).
"""
NOTES = """\
A lock queue is one series per relation; which DDL holds it up is `dbwatch_migration_ddl_info` (present only
while that DDL has a queue or waits, so its pid and statement never pile up as series). There `statement` is
the DDL statement with its string literals replaced by `'?'`, cut to `statement_length` characters (option,
default 200), and `state` is `waiting` (the DDL has not got its lock yet: everything after it queues too) or
`holding`. Online schema change row counts are exact below `exact_count_below` estimated rows
(option, default 100,000), the server's estimates above.
"""

_DDL_INFO = ('relation', 'pid', 'state', 'statement')
_PROGRESS = ('pid', 'command', 'relation', 'phase')

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_migration_blocking_queries', G,
               'Sessions queued behind a DDL statement that holds or waits for a strong lock (PostgreSQL) or the '
               'metadata lock (MySQL/MariaDB) on the relation (the longest queue when several DDL statements '
               'share it).',
               ('relation',), 'migrations'),
    MetricSpec('dbwatch_migration_ddl_seconds', G,
               'How long the oldest DDL statement with a lock queue (or waiting for its lock) on the relation has '
               'been running, in seconds.',
               ('relation',), 'migrations'),
    MetricSpec('dbwatch_migration_ddl_info', G,
               'A DDL statement with a lock queue behind it or waiting for its lock (1): its session (`pid`), '
               '`state` and `statement`; MigrationBlockingQueries joins it on `relation` for its annotations.',
               _DDL_INFO, 'migrations'),
    MetricSpec('dbwatch_migration_progress_ratio', G,
               'Fraction done of a running CREATE INDEX [CONCURRENTLY], REINDEX, VACUUM, CLUSTER or VACUUM FULL '
               '(PostgreSQL 12+; NaN in a phase with no measure, such as waiting for writers before the build).',
               _PROGRESS, 'migrations'),
    MetricSpec('dbwatch_pg_progress_cluster_<column>', G,
               'pg_stat_progress_cluster of a running CLUSTER or VACUUM FULL (PostgreSQL 12+).',
               _PROGRESS, 'migrations',
               values=('heap_tuples_scanned', 'heap_tuples_written', 'heap_blks_total', 'heap_blks_scanned',
                       'index_rebuild_count')),
    MetricSpec('dbwatch_migration_invalid_index', G,
               'An invalid index no build is running for, left by a failed or cancelled CREATE INDEX CONCURRENTLY '
               '(PostgreSQL): it slows every write and serves no read. Drop it and build it again.',
               ('relation', 'index'), 'migrations'),
    MetricSpec('dbwatch_migration_osc_rows', G,
               'Rows of a gh-ost or pt-online-schema-change run (MySQL/MariaDB): `kind="copied"` in its ghost/new '
               'table, `kind="total"` in the original table.',
               ('tool', 'relation', 'kind'), 'migrations'),
    MetricSpec('dbwatch_migration_osc_progress_ratio', G,
               'Rows copied by a gh-ost or pt-online-schema-change run over the rows of the original table.',
               ('tool', 'relation'), 'migrations'),
    MetricSpec('dbwatch_migration_osc_heartbeat_age_seconds', G,
               "Age of gh-ost's heartbeat in its `_<table>_ghc` changelog table: on a replica, the replication lag "
               'gh-ost throttles on; growing on the primary, a stalled or abandoned run.',
               ('tool', 'relation'), 'migrations'),
    MetricSpec('dbwatch_migration_osc_stalled_seconds', G,
               'Seconds since the rows copied by a gh-ost or pt-online-schema-change run last grew (0 while they '
               'grow): a pause, throttled (pt-osc --max-lag/--max-load pauses show only here) or stuck.',
               ('tool', 'relation'), 'migrations'),
    MetricSpec('dbwatch_migration_osc_throttled', G,
               "1 while gh-ost's changelog (`throttle` hint) says it throttles, `reason` the kind (`lag`, "
               '`replica-lag`, `max-load`, `critical-load`, `commanded by user`, ...); 0 with `reason=""` while it '
               'copies.',
               ('tool', 'relation', 'reason'), 'migrations'),
    MetricSpec('dbwatch_migration_osc_throttle_lag_seconds', G,
               "The replication lag gh-ost is throttled on, from the figure in its changelog's throttle reason "
               '(`lag=…s`, `replica-lag=…s`).',
               ('tool', 'relation'), 'migrations'),
    MetricSpec('dbwatch_schema_migration_info', G,
               "The migration a schema is at, from a migration tool's version table (1): Flyway's and "
               "Liquibase's last applied, every Alembic head, Django's newest per app (`app.name`), Rails' and "
               "golang-migrate's version, sqitch's newest change per project (`project:change`).",
               ('schema', 'tool', 'version'), 'migrations'),
    MetricSpec('dbwatch_schema_migration_dirty', G,
               "golang-migrate's dirty flag: 1 after a migration failed half-way (it refuses to run until forced).",
               ('schema', 'tool'), 'migrations'),
    MetricSpec('dbwatch_schema_fingerprint_info', G,
               "The fingerprint of the database's schema: tables, columns, types, defaults, indexes and constraints "
               "(`schema` collector, PostgreSQL and MySQL/MariaDB; on for targets with a `schema_group`). Targets of one group with "
               "different fingerprints raise `SchemaDrift`.",
               ('schema_group', 'fingerprint'), 'schema'),
    MetricSpec('dbwatch_schema_tables', G,
               'Tables in the database outside the system schemas (`schema` collector).', (), 'schema'),
)
