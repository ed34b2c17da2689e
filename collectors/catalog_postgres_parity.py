"""The metric families of the PostgreSQL collectors that bring postgres_exporter's other collectors over:
tables (per-table and per-index statistics), settings (all of pg_settings), stats (the other pg_stat_* views)
and custom (a postgres_exporter queries.yaml).

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check every family a
collection emits against it.
"""

from __future__ import annotations

from dbwatch.model.catalog import C, G, U, MetricSpec

TITLE = 'PostgreSQL: tables, settings, more statistics, custom queries'
ENGINES: tuple[str, ...] = ('postgres',)
INTRO = """\
The collectors `tables`, `settings` and `stats` are on by default and export what postgres_exporter's
default collectors (and its commonly enabled ones) export, under its names and labels; `custom` runs a
postgres_exporter `queries.yaml` unchanged (`collectors: {custom: {enabled: true, queries_file: PATH}}`).

`tables` visits every database the role may connect to (`auto_discover_databases`, `include_databases`,
`exclude_databases`, `max_databases`). A database with up to `max_tables` tables (default 1,000) exports all
of them; beyond that, the `top_n` largest and the `top_n` most active tables (default 100 each) keep their own
series and the rest are summed into one series per family with `relname="other"` (counters and sizes summed,
`last_*` the oldest non-zero time), counted by `dbwatch_pg_tables_folded`. Indexes: the same with
`max_indexes`. `statio_names: blks` gives `pg_statio_user_tables_*` the names of postgres_exporter's older
`queries.yaml` (`heap_blks_read`) instead of its collector's (`heap_blocks_read`).
"""
NOTES = """\
`settings` leaves out the settings the `postgres` collector exports already and the ones dbwatch's own session
sets (`statement_timeout`, `lock_timeout`, `idle_in_transaction_session_timeout`,
`default_transaction_read_only`, `transaction_read_only`): pg_settings would show dbwatch's values.
"""

_TABLE = ('datname', 'schemaname', 'relname')
_INDEX = ('datname', 'schemaname', 'relname', 'indexrelname')
_DB = ('datid', 'datname')

FAMILIES: tuple[MetricSpec, ...] = (
    # -- tables ---------------------------------------------------------------------------------------
    MetricSpec('pg_stat_user_tables_<column>', C,
               'pg_stat_user_tables counters per table (scans, rows, vacuum and analyze runs)',
               _TABLE, 'tables',
               values=('seq_scan', 'seq_tup_read', 'idx_scan', 'idx_tup_fetch', 'n_tup_ins', 'n_tup_upd',
                       'n_tup_del', 'n_tup_hot_upd', 'vacuum_count', 'autovacuum_count', 'analyze_count',
                       'autoanalyze_count')),
    MetricSpec('pg_stat_user_tables_<column>', G,
               'Estimated live, dead and changed-since-analyze rows; table and index sizes in bytes',
               _TABLE, 'tables',
               values=('n_live_tup', 'n_dead_tup', 'n_mod_since_analyze', 'index_size_bytes', 'table_size_bytes')),
    MetricSpec('pg_stat_user_tables_<column>', G,
               'Last manual or automatic vacuum and analyze of the table (Unix time; 0 = never)',
               _TABLE, 'tables',
               values=('last_vacuum', 'last_autovacuum', 'last_analyze', 'last_autoanalyze')),
    MetricSpec('pg_statio_user_tables_<column>', C,
               'Blocks read from disk and found in shared buffers, for the table, its indexes, its TOAST table '
               'and TOAST indexes (`*_blks_*` with statio_names: blks)',
               _TABLE, 'tables',
               values=('heap_blocks_read', 'heap_blocks_hit', 'idx_blocks_read', 'idx_blocks_hit',
                       'toast_blocks_read', 'toast_blocks_hit', 'tidx_blocks_read', 'tidx_blocks_hit',
                       'heap_blks_read', 'heap_blks_hit', 'idx_blks_read', 'idx_blks_hit', 'toast_blks_read',
                       'toast_blks_hit', 'tidx_blks_read', 'tidx_blks_hit')),
    MetricSpec('pg_stat_user_indexes_<column>_total', C,
               'Index scans, index entries returned and table rows fetched, per index',
               _INDEX, 'tables', values=('idx_scans', 'idx_tup_reads', 'idx_tup_fetches')),
    MetricSpec('pg_statio_user_indexes_<column>_total', C,
               'Index blocks read from disk and found in shared buffers, per index',
               _INDEX, 'tables', values=('idx_blks_read', 'idx_blks_hit')),
    MetricSpec('dbwatch_pg_tables_folded', G,
               'Tables beyond max_tables whose statistics are summed into the relname="other" series.',
               ('datname',), 'tables'),
    MetricSpec('dbwatch_pg_indexes_folded', G,
               'Indexes beyond max_indexes summed into the indexrelname="other" series.',
               ('datname',), 'tables'),
    # -- settings -------------------------------------------------------------------------------------
    MetricSpec('pg_settings_<name>[_bytes|_seconds]', G,
               'Every numeric and boolean setting, in bytes or seconds where it has a unit, on as 1; dots and '
               'dashes as underscores (postgres_exporter\'s names), for example',
               (), 'settings',
               values=('autovacuum_vacuum_scale_factor', 'autovacuum_naptime_seconds', 'max_locks_per_transaction',
                       'wal_buffers_bytes', 'random_page_cost', 'pg_stat_statements_max'), open=True),
    # -- stats ----------------------------------------------------------------------------------------
    MetricSpec('pg_stat_database_<column>', C,
               'pg_stat_database columns of PostgreSQL 12+ (checksum_failures) and 14+ (sessions, times in ms); '
               'stats_reset as Unix time',
               _DB, 'stats',
               values=('checksum_failures', 'sessions', 'session_time', 'active_time', 'idle_in_transaction_time',
                       'sessions_abandoned', 'sessions_fatal', 'sessions_killed', 'stats_reset')),
    MetricSpec('pg_stat_database_checksum_last_failure', G,
               'Time of the last data page checksum failure in this database (Unix time; 0 = never).',
               _DB, 'stats'),
    MetricSpec('pg_stat_database_active_time_seconds_total', C,
               'Time spent executing SQL statements in this database, in seconds (PostgreSQL 14+).',
               _DB, 'stats'),
    MetricSpec('pg_stat_database_conflicts_confl_<kind>', C,
               'Queries canceled by recovery conflicts on a standby, by cause (active_logicalslot: 16+)',
               _DB, 'stats',
               values=('tablespace', 'lock', 'snapshot', 'bufferpin', 'deadlock', 'active_logicalslot')),
    MetricSpec('pg_stat_bgwriter_stats_reset_total', C,
               'Time at which the background writer statistics were last reset (Unix time).',
               (), 'stats'),
    MetricSpec('pg_stat_checkpointer_<column>_total', C,
               'pg_stat_checkpointer (PostgreSQL 17+; times in ms)',
               (), 'stats',
               values=('num_timed', 'num_requested', 'restartpoints_timed', 'restartpoints_req',
                       'restartpoints_done', 'write_time', 'sync_time', 'buffers_written', 'stats_reset')),
    MetricSpec('pg_stat_wal_<column>', C,
               'pg_stat_wal (PostgreSQL 14+; write and sync counters up to 17; times in ms)',
               (), 'stats',
               values=('wal_records_total', 'wal_fpi', 'wal_bytes', 'wal_buffers_full', 'wal_write', 'wal_sync',
                       'wal_write_time', 'wal_sync_time', 'stats_reset')),
    MetricSpec('dbwatch_pg_stat_io_<column>_total', C,
               'pg_stat_io (PostgreSQL 16+): operations, and read/write time in seconds',
               ('backend_type', 'object', 'context'), 'stats',
               values=('reads', 'writes', 'extends', 'hits', 'evictions', 'fsyncs', 'read_seconds',
                       'write_seconds')),
    MetricSpec('pg_stat_progress_vacuum_phase', G,
               'Current vacuum phase (1 = active, 0 = inactive), one series per phase.',
               ('datname', 'relname', 'phase'), 'stats'),
    MetricSpec('pg_stat_progress_vacuum_<column>', G,
               'Progress of a running VACUUM (relname: schema-qualified in the target\'s database, else the OID)',
               ('datname', 'relname'), 'stats',
               values=('heap_blks', 'heap_blks_scanned', 'heap_blks_vacuumed', 'index_vacuums', 'max_dead_tuples',
                       'num_dead_tuples')),
    MetricSpec('dbwatch_pg_progress_create_index_<column>', G,
               'Progress of a running CREATE INDEX or REINDEX (PostgreSQL 12+)',
               ('datname', 'relname', 'command', 'phase'), 'stats',
               values=('blocks_total', 'blocks_done', 'tuples_total', 'tuples_done')),
    MetricSpec('dbwatch_pg_progress_analyze_<column>', G,
               'Progress of a running ANALYZE (PostgreSQL 13+)',
               ('datname', 'relname', 'phase'), 'stats',
               values=('sample_blks_total', 'sample_blks_scanned')),
    MetricSpec('pg_replication_slot_<column>', G,
               'Replication slots: the current WAL position, the position confirmed flushed (active slots only), '
               'whether active, and the WAL that can still be written before the slot is lost (13+)',
               ('slot_name', 'slot_type'), 'stats',
               values=('slot_current_wal_lsn', 'slot_confirmed_flush_lsn', 'slot_is_active',
                       'safe_wal_size_bytes')),
    MetricSpec('pg_replication_slot_wal_status', G,
               'Availability of the WAL a slot claims (reserved, extended, unreserved, lost), as a label.',
               ('slot_name', 'slot_type', 'wal_status'), 'stats'),
    MetricSpec('dbwatch_pg_wal_position_bytes', G,
               'WAL position (written on a primary, replayed on a standby) in bytes since 0/0: rate() of it is '
               'the WAL write rate.',
               (), 'stats'),
    MetricSpec('pg_wal_<column>', G,
               'WAL segments in pg_wal and their total size (needs pg_monitor or superuser)',
               (), 'stats', values=('segments', 'size_bytes')),
    # -- the agent, in postgres_exporter's words (exporters/pg_exporter_compat.py) ------------------------
    MetricSpec('pg_exporter_last_scrape_error', G,
               "1 when the last collection by a PostgreSQL target's postgres collector failed (postgres_exporter's "
               'last scrape).',
               (), 'agent'),
    MetricSpec('pg_exporter_scrapes_total', C,
               "Collections by a PostgreSQL target's postgres collector (postgres_exporter's scrapes).",
               (), 'agent'),
    MetricSpec('pg_exporter_last_scrape_duration_seconds', G,
               "Duration of the last collection by a PostgreSQL target's postgres collector.",
               (), 'agent'),
    MetricSpec('pg_scrape_collector_<column>', G,
               'Whether the last collection by each PostgreSQL collector succeeded, and how long it took',
               ('collector',), 'agent', values=('success', 'duration_seconds')),
    # -- custom ---------------------------------------------------------------------------------------
    MetricSpec('dbwatch_pg_custom_query_success', G,
               'Whether a custom query ran (1) or failed (0), by query name and database.',
               ('query', 'datname'), 'custom'),
    MetricSpec('<namespace>_<column>', U,
               'What a queries.yaml declares: COUNTER, GAUGE, MAPPEDMETRIC, DURATION (_milliseconds), HISTOGRAM '
               '(_bucket, _sum, _count), with its LABEL columns (and datname when a query runs on several '
               'databases); unlisted numeric columns are untyped',
               (), 'custom', open=True),
)
