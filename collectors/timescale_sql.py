"""The SQL of the TimescaleDB collector (:mod:`dbwatch.collectors.timescale`), for TimescaleDB 2.x.

Read only: the ``timescaledb_information`` views, ``hypertable_size`` and ``hypertable_compression_stats``,
``_timescaledb_internal.bgw_job_stat`` (consecutive failures, which ``job_stats`` does not show) and the
continuous aggregates' watermarks (``_timescaledb_functions.cagg_watermark``). Sizes of single chunks come
from ``pg_total_relation_size`` (AccessShareLock, bounded by the session's lock_timeout), only for
uncompressed chunks. Times are Unix seconds from the server's clock; NULL where there is none.
"""

from __future__ import annotations

__all__ = ["CAGGS", "CANDIDATES", "CHUNKS", "EXTENSION", "HYPERTABLES", "JOBS", "SHARED_BUFFERS"]

EXTENSION = """
SELECT e.extversion AS version, extract(epoch FROM now())::float8 AS now
FROM pg_extension e WHERE e.extname = 'timescaledb'
"""

SHARED_BUFFERS = """
SELECT (setting::bigint * pg_size_bytes(coalesce(unit, '8kB')))::float8 AS bytes
FROM pg_settings WHERE name = 'shared_buffers'
"""

# One row per hypertable (materialization hypertables of continuous aggregates left out: they are reported
# as their aggregates), its time dimension and compression totals.
HYPERTABLES = """
SELECT h.hypertable_schema AS schema, h.hypertable_name AS name, h.num_chunks::int AS chunks,
       h.compression_enabled AS compression_enabled,
       coalesce(d.column_name::text, '') AS time_column, coalesce(d.column_type::text, '') AS time_type,
       extract(epoch FROM d.time_interval)::float8 AS interval_seconds,
       coalesce(hypertable_size(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass), 0)::float8
           AS size_bytes,
       coalesce(cs.number_compressed_chunks, 0)::int AS compressed_chunks,
       coalesce(cs.before_compression_total_bytes, 0)::float8 AS before_bytes,
       coalesce(cs.after_compression_total_bytes, 0)::float8 AS after_bytes
FROM timescaledb_information.hypertables h
LEFT JOIN timescaledb_information.dimensions d
       ON d.hypertable_schema = h.hypertable_schema AND d.hypertable_name = h.hypertable_name
      AND d.dimension_number = 1
LEFT JOIN LATERAL (
    SELECT s.number_compressed_chunks, s.before_compression_total_bytes, s.after_compression_total_bytes
    FROM hypertable_compression_stats(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass) s
    WHERE h.compression_enabled
) cs ON true
WHERE h.hypertable_schema <> '_timescaledb_internal'
ORDER BY 1, 2
"""

# Every chunk of a time dimension: its range end and, uncompressed, its size. Capped (``$1``): a note says
# when a database has more.
CHUNKS = """
SELECT c.hypertable_schema AS schema, c.hypertable_name AS name,
       extract(epoch FROM c.range_end)::float8 AS range_end, c.is_compressed AS compressed,
       CASE WHEN c.is_compressed THEN 0
            ELSE pg_total_relation_size(format('%I.%I', c.chunk_schema, c.chunk_name)::regclass) END::float8
           AS bytes
FROM timescaledb_information.chunks c
WHERE c.hypertable_schema <> '_timescaledb_internal' AND c.range_end IS NOT NULL
ORDER BY c.range_end DESC
LIMIT $1
"""

JOBS = """
SELECT j.job_id, j.application_name::text AS application_name,
       format('%s.%s', j.proc_schema, j.proc_name) AS proc, j.proc_name::text AS proc_name,
       CASE WHEN j.hypertable_name IS NULL THEN '' ELSE format('%s.%s', j.hypertable_schema, j.hypertable_name) END
           AS relation,
       j.scheduled, extract(epoch FROM j.schedule_interval)::float8 AS schedule_interval,
       coalesce(j.config::text, '') AS config,
       CASE WHEN jsonb_typeof(j.config -> 'compress_after') = 'string'
            THEN extract(epoch FROM (j.config ->> 'compress_after')::interval)::float8 END AS compress_after,
       CASE WHEN jsonb_typeof(j.config -> 'drop_after') = 'string'
            THEN extract(epoch FROM (j.config ->> 'drop_after')::interval)::float8 END AS drop_after,
       CASE WHEN jsonb_typeof(j.config -> 'end_offset') = 'string'
            THEN extract(epoch FROM (j.config ->> 'end_offset')::interval)::float8 END AS end_offset,
       CASE WHEN s.job_id IS NULL OR s.total_runs = 0 THEN '' WHEN s.last_run_success THEN 'Success' ELSE 'Failed'
           END AS last_run_status,
       CASE WHEN s.last_start > '-infinity' THEN extract(epoch FROM s.last_start)::float8 END AS last_start,
       CASE WHEN s.last_successful_finish > '-infinity' THEN extract(epoch FROM s.last_successful_finish)::float8
           END AS last_success,
       CASE WHEN j.scheduled THEN extract(epoch FROM coalesce(s.next_start, j.next_start))::float8 END
           AS next_start,
       coalesce(s.total_runs, 0)::float8 AS total_runs, coalesce(s.total_failures, 0)::float8 AS total_failures,
       coalesce(s.consecutive_failures, 0)::int AS consecutive_failures
FROM timescaledb_information.jobs j
LEFT JOIN _timescaledb_internal.bgw_job_stat s ON s.job_id = j.job_id
ORDER BY j.job_id
"""

# The watermark is TimescaleDB's internal time (Unix microseconds for time types); never refreshed, it is the
# lowest value (4714 BC), reported as NULL, and ``unmaterialized_since`` is where its data begins instead (the
# oldest chunk's start of the raw hypertable; NULL without data). Integer dimensions have no lag against now().
# Reading the watermark needs SELECT on the aggregate's view (``readable``); without it the aggregate is skipped.
CAGGS = """
SELECT ca.user_view_schema::text AS schema, ca.user_view_name::text AS view,
       format('%s.%s', rh.schema_name, rh.table_name) AS hypertable, ca.materialized_only,
       coalesce(d.column_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype), false) AS is_time,
       has_table_privilege(format('%I.%I', ca.user_view_schema, ca.user_view_name), 'SELECT') AS readable,
       CASE WHEN d.column_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
             AND has_table_privilege(format('%I.%I', ca.user_view_schema, ca.user_view_name), 'SELECT')
             AND _timescaledb_functions.cagg_watermark(ca.mat_hypertable_id) > -210866803200000000
            THEN _timescaledb_functions.cagg_watermark(ca.mat_hypertable_id)::float8 / 1e6 END
           AS watermark,
       CASE WHEN d.column_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
            THEN extract(epoch FROM bf.bucket_width::interval)::float8 END AS bucket_seconds,
       (SELECT extract(epoch FROM min(c.range_start))::float8 FROM timescaledb_information.chunks c
        WHERE c.hypertable_schema = rh.schema_name AND c.hypertable_name = rh.table_name) AS unmaterialized_since
FROM _timescaledb_catalog.continuous_agg ca
JOIN _timescaledb_catalog.hypertable rh ON rh.id = ca.raw_hypertable_id
LEFT JOIN _timescaledb_catalog.continuous_aggs_bucket_function bf ON bf.mat_hypertable_id = ca.mat_hypertable_id
LEFT JOIN timescaledb_information.dimensions d
       ON d.hypertable_schema = rh.schema_name AND d.hypertable_name = rh.table_name AND d.dimension_number = 1
ORDER BY 1, 2
"""

# Plain tables that look like time series: ordinary, unpartitioned, not inherited, not TimescaleDB's, at
# least $1 bytes, with a date/time column whose physical order follows it (pg_stats correlation >= $2).
# The best correlated column per table; ``unique_without`` lists the unique indexes that do not include it
# (create_hypertable refuses those).
CANDIDATES = """
WITH tables AS (
    SELECT c.oid, n.nspname AS schema, c.relname AS table_name, pg_table_size(c.oid)::float8 AS size_bytes,
           c.reltuples::float8 AS rows
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE '\\_timescaledb%' AND n.nspname NOT LIKE 'timescaledb\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid)
      AND NOT EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable h
                      WHERE h.schema_name = n.nspname AND h.table_name = c.relname)
      AND pg_table_size(c.oid) >= $1
),
columns AS (
    SELECT DISTINCT ON (t.oid) t.oid, a.attname::text AS column_name, format_type(a.atttypid, NULL) AS column_type,
           a.attnotnull, s.correlation::float8 AS correlation,
           CASE a.atttypid
               WHEN 'timestamptz'::regtype THEN extract(epoch FROM (s.histogram_bounds::text::timestamptz[])[
                   array_upper(s.histogram_bounds::text::timestamptz[], 1)]
                   - (s.histogram_bounds::text::timestamptz[])[1])
               WHEN 'timestamp'::regtype THEN extract(epoch FROM (s.histogram_bounds::text::timestamp[])[
                   array_upper(s.histogram_bounds::text::timestamp[], 1)]
                   - (s.histogram_bounds::text::timestamp[])[1])
               WHEN 'date'::regtype THEN 86400.0 * ((s.histogram_bounds::text::date[])[
                   array_upper(s.histogram_bounds::text::date[], 1)] - (s.histogram_bounds::text::date[])[1])
           END::float8 AS span_seconds
    FROM tables t
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
     AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
    JOIN pg_stats s ON s.schemaname = t.schema AND s.tablename = t.table_name AND s.attname = a.attname
     AND NOT s.inherited
    WHERE s.correlation >= $2
    ORDER BY t.oid, s.correlation DESC
)
SELECT t.schema, t.table_name, t.size_bytes, t.rows, col.column_name, col.column_type, col.attnotnull,
       col.correlation, col.span_seconds,
       coalesce(st.n_tup_ins, 0)::float8 AS inserts,
       (coalesce(st.n_tup_upd, 0) + coalesce(st.n_tup_del, 0))::float8 AS updates_deletes,
       ARRAY(SELECT ic.relname::text FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
             WHERE x.indrelid = t.oid AND x.indisunique
               AND NOT EXISTS (SELECT 1 FROM pg_attribute ia
                               WHERE ia.attrelid = t.oid AND ia.attname = col.column_name
                                 AND ia.attnum = ANY (x.indkey))
             ORDER BY 1) AS unique_without
FROM tables t JOIN columns col ON col.oid = t.oid
LEFT JOIN pg_stat_user_tables st ON st.relid = t.oid
ORDER BY t.size_bytes DESC
LIMIT 100
"""
