"""The SQL of the per-table and per-index statistics collector (:mod:`dbwatch.collectors.pg_tables`).

One query per database for tables (pg_stat_user_tables joined to pg_statio_user_tables) and one for
indexes. Every value is cast to float8 on the server: the collector appends the values as they come,
without a conversion per sample in Python (a database of 2,000 tables gives 60,000 samples). NULLs become
0, and timestamps Unix seconds with 0 for "never", as postgres_exporter reports them. The columns exist
unchanged from PostgreSQL 10 to 17, so no version gate is needed. ``pg_table_size``/``pg_indexes_size``
take AccessShareLock, like postgres_exporter's; the session's lock_timeout bounds the wait.
"""

from __future__ import annotations

__all__ = ["INDEXES", "INDEX_COLUMNS", "TABLES", "TABLE_COLUMNS"]

# (column, kind, help) in the order TABLES returns them after the three label columns. kind: c = counter,
# g = gauge; "statio" columns belong to pg_statio_user_tables. Help texts are postgres_exporter's.
TABLE_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("stat", "seq_scan", "c", "Number of sequential scans initiated on this table"),
    ("stat", "seq_tup_read", "c", "Number of live rows fetched by sequential scans"),
    ("stat", "idx_scan", "c", "Number of index scans initiated on this table"),
    ("stat", "idx_tup_fetch", "c", "Number of live rows fetched by index scans"),
    ("stat", "n_tup_ins", "c", "Number of rows inserted"),
    ("stat", "n_tup_upd", "c", "Number of rows updated"),
    ("stat", "n_tup_del", "c", "Number of rows deleted"),
    ("stat", "n_tup_hot_upd", "c", "Number of rows HOT updated (i.e., with no separate index update required)"),
    ("stat", "n_live_tup", "g", "Estimated number of live rows"),
    ("stat", "n_dead_tup", "g", "Estimated number of dead rows"),
    ("stat", "n_mod_since_analyze", "g", "Estimated number of rows changed since last analyze"),
    ("stat", "last_vacuum", "t", "Last time at which this table was manually vacuumed (not counting VACUUM FULL)"),
    ("stat", "last_autovacuum", "t", "Last time at which this table was vacuumed by the autovacuum daemon"),
    ("stat", "last_analyze", "t", "Last time at which this table was manually analyzed"),
    ("stat", "last_autoanalyze", "t", "Last time at which this table was analyzed by the autovacuum daemon"),
    ("stat", "vacuum_count", "c", "Number of times this table has been manually vacuumed (not counting VACUUM FULL)"),
    ("stat", "autovacuum_count", "c", "Number of times this table has been vacuumed by the autovacuum daemon"),
    ("stat", "analyze_count", "c", "Number of times this table has been manually analyzed"),
    ("stat", "autoanalyze_count", "c", "Number of times this table has been analyzed by the autovacuum daemon"),
    ("stat", "index_size_bytes", "g", "Total disk space used by this index, in bytes"),
    ("stat", "table_size_bytes", "g", "Total disk space used by this table, in bytes"),
    ("statio", "heap_blks_read", "c", "Number of disk blocks read from this table"),
    ("statio", "heap_blks_hit", "c", "Number of buffer hits in this table"),
    ("statio", "idx_blks_read", "c", "Number of disk blocks read from all indexes on this table"),
    ("statio", "idx_blks_hit", "c", "Number of buffer hits in all indexes on this table"),
    ("statio", "toast_blks_read", "c", "Number of disk blocks read from this table's TOAST table (if any)"),
    ("statio", "toast_blks_hit", "c", "Number of buffer hits in this table's TOAST table (if any)"),
    ("statio", "tidx_blks_read", "c", "Number of disk blocks read from this table's TOAST table indexes (if any)"),
    ("statio", "tidx_blks_hit", "c", "Number of buffer hits in this table's TOAST table indexes (if any)"),
)

TABLES = """
SELECT s.schemaname, s.relname,
       s.seq_scan::float8, s.seq_tup_read::float8, coalesce(s.idx_scan, 0)::float8,
       coalesce(s.idx_tup_fetch, 0)::float8, s.n_tup_ins::float8, s.n_tup_upd::float8, s.n_tup_del::float8,
       s.n_tup_hot_upd::float8, s.n_live_tup::float8, s.n_dead_tup::float8, s.n_mod_since_analyze::float8,
       coalesce(extract(epoch FROM s.last_vacuum), 0)::float8,
       coalesce(extract(epoch FROM s.last_autovacuum), 0)::float8,
       coalesce(extract(epoch FROM s.last_analyze), 0)::float8,
       coalesce(extract(epoch FROM s.last_autoanalyze), 0)::float8,
       s.vacuum_count::float8, s.autovacuum_count::float8, s.analyze_count::float8, s.autoanalyze_count::float8,
       coalesce(pg_indexes_size(s.relid), 0)::float8, coalesce(pg_table_size(s.relid), 0)::float8,
       coalesce(io.heap_blks_read, 0)::float8, coalesce(io.heap_blks_hit, 0)::float8,
       coalesce(io.idx_blks_read, 0)::float8, coalesce(io.idx_blks_hit, 0)::float8,
       coalesce(io.toast_blks_read, 0)::float8, coalesce(io.toast_blks_hit, 0)::float8,
       coalesce(io.tidx_blks_read, 0)::float8, coalesce(io.tidx_blks_hit, 0)::float8
FROM pg_stat_user_tables s LEFT JOIN pg_statio_user_tables io ON io.relid = s.relid
"""

# (family, column help) after the four label columns; the last column (size) ranks, it is not exported.
INDEX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pg_stat_user_indexes_idx_scans_total", "Number of index scans initiated on this index"),
    ("pg_stat_user_indexes_idx_tup_reads_total", "Number of index entries returned by scans on this index"),
    ("pg_stat_user_indexes_idx_tup_fetches_total",
     "Number of live table rows fetched by simple index scans using this index"),
    ("pg_statio_user_indexes_idx_blks_read_total", "Number of disk blocks read from this index"),
    ("pg_statio_user_indexes_idx_blks_hit_total", "Number of buffer hits in this index"),
)

# The size comes from pg_class (no lock, as of the last VACUUM/ANALYZE): it only ranks indexes for folding.
INDEXES = """
SELECT s.schemaname, s.relname, s.indexrelname,
       s.idx_scan::float8, s.idx_tup_read::float8, s.idx_tup_fetch::float8,
       coalesce(io.idx_blks_read, 0)::float8, coalesce(io.idx_blks_hit, 0)::float8,
       (c.relpages::float8 * current_setting('block_size')::float8) AS size
FROM pg_stat_user_indexes s
LEFT JOIN pg_statio_user_indexes io ON io.indexrelid = s.indexrelid
LEFT JOIN pg_class c ON c.oid = s.indexrelid
"""
