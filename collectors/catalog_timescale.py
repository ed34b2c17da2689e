"""The metric families the TimescaleDB collector (a PostgreSQL target's ``timescaledb`` collector) can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import C, G, I, MetricSpec

TITLE = 'TimescaleDB'
ENGINES: tuple[str, ...] = ('postgres',)
INTRO = """\
The `timescaledb` collector of a PostgreSQL target, found automatically: it emits these for every watched
database where the `timescaledb` extension is installed, and nothing where it is not
([TimescaleDB](timescaledb.md)). No community exporter has a de-facto set of TimescaleDB metrics
(postgres_exporter has none), so the names are dbwatch's own. `hypertable` and `view` are `schema.name`.
"""
NOTES = """\
Job series carry `application_name` (TimescaleDB's, e.g. `Columnstore Policy [1002]`) and `scheduled`
(`false` for a paused job). A continuous aggregate never refreshed lags since its hypertable's oldest data.
Chunk intervals and lags are exported for time-typed (`timestamptz`, `timestamp`, `date`) dimensions only.
"""

_HT = ('datname', 'hypertable')
_JOB = ('datname', 'job_id', 'application_name', 'scheduled')
_CAGG = ('datname', 'view')

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_timescaledb_info', I,
               "The timescaledb extension's version in a database (always 1).",
               ('datname', 'version'), 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_chunks', G,
               'Chunks of the hypertable.', _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_compressed_chunks', G,
               'Chunks of the hypertable that are compressed (in the columnstore).', _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_size_bytes', G,
               'Total size of the hypertable: chunks, indexes, TOAST and compressed data (`hypertable_size`).',
               _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_chunk_interval_seconds', G,
               "The time dimension's chunk interval (for new chunks).", _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_recent_chunk_size_bytes', G,
               'Total size (table, indexes, TOAST) of the larger of the two newest uncompressed chunks: what '
               'one interval of data costs in memory while it is written and read.', _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_compression_enabled', G,
               'Whether compression (the columnstore) is enabled on the hypertable (1 = yes).', _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_compression_before_bytes', G,
               'Size of the compressed chunks before compression (`hypertable_compression_stats`).',
               _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_compression_after_bytes', G,
               'Size of the compressed chunks after compression.', _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_compression_ratio', G,
               'Before / after compression, of the compressed chunks (absent while none is compressed).',
               _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_old_uncompressed_chunks', G,
               'Uncompressed chunks whose range ended longer ago than `compress_min_age` (or the compression '
               "policy's `compress_after`, when shorter).", _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_hypertable_old_uncompressed_bytes', G,
               'Total size of those old uncompressed chunks.', _HT, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_job_info', G,
               'A background job (a policy or a user-defined action) and what it runs (always 1).',
               ('datname', 'job_id', 'application_name', 'proc', 'hypertable'), 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_job_runs_total', C,
               "The job's runs (`job_stats.total_runs`).", _JOB, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_job_failures_total', C,
               "The job's failed runs (`job_stats.total_failures`).", _JOB, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_job_consecutive_failures', G,
               'Failed runs since its last success (0 after a success).', _JOB, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_job_last_run_success', G,
               'Whether its last run succeeded (1) or failed (0); absent before the first run.', _JOB, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_job_last_success_timestamp_seconds', G,
               'When its last successful run finished (Unix time); absent before one.', _JOB, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_job_next_start_timestamp_seconds', G,
               'When the scheduler starts it next (Unix time); absent for a paused job.', _JOB, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_job_schedule_interval_seconds', G,
               'How often it runs.', _JOB, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_continuous_aggregate_watermark_timestamp_seconds', G,
               'Up to when the continuous aggregate is materialized (Unix time; absent while never refreshed).',
               _CAGG, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_continuous_aggregate_lag_seconds', G,
               "The server's now() minus the watermark; while never refreshed, minus the start of its hypertable's "
               'oldest chunk (0 without data).', _CAGG, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_continuous_aggregate_expected_lag_seconds', G,
               'The lag its refresh policy leaves at worst while healthy: end_offset + schedule_interval + '
               'one bucket (absent without a refresh policy).', _CAGG, 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_policy_info', G,
               'A policy on a hypertable or continuous aggregate (always 1); `policy` is `compression`, '
               '`retention`, `refresh` or `reorder`.',
               ('datname', 'hypertable', 'policy', 'job_id'), 'timescaledb'),
    MetricSpec('dbwatch_timescaledb_policy_after_seconds', G,
               "The policy's age threshold: compress_after, drop_after, or the refresh window's end_offset.",
               ('datname', 'hypertable', 'policy'), 'timescaledb'),
)
