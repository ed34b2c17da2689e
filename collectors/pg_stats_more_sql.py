"""The SQL of :mod:`dbwatch.collectors.pg_stats_more`, one named constant per view, gated by server version.

Every query returns its label columns first, then float8 values (timestamps as Unix seconds, 0 = never),
so the collector maps columns to families by position without converting anything. All of it is readable
by ``pg_monitor``; the WAL directory listing is skipped, not failed, for a role that may not read it.
"""

from __future__ import annotations

# Columns pg_stat_database gained after PostgreSQL 10, with the version that added them. The shared row
# (datid 0, objects without a database) has a NULL datname, shown as "" as postgres_exporter does.
DATABASE_EXTRA = """
SELECT datid::text AS datid, coalesce(datname, '') AS datname,
       {columns}
       coalesce(extract(epoch FROM stats_reset), 0)::float8 AS stats_reset
FROM pg_stat_database
"""
# checksum_failures is NULL when data checksums are off: NaN, as the exporter shows it.
DATABASE_EXTRA_12 = """coalesce(checksum_failures::float8, 'NaN') AS checksum_failures,
       coalesce(extract(epoch FROM checksum_last_failure), 0)::float8 AS checksum_last_failure,"""
DATABASE_EXTRA_14 = """sessions::float8, session_time::float8, active_time::float8, idle_in_transaction_time::float8,
       sessions_abandoned::float8, sessions_fatal::float8, sessions_killed::float8,
       (active_time / 1000)::float8 AS active_time_seconds,"""


def database_extra_sql(version_num: int) -> str:
    columns = (DATABASE_EXTRA_12 if version_num >= 120000 else "") + (
        DATABASE_EXTRA_14 if version_num >= 140000 else "")
    return DATABASE_EXTRA.format(columns=columns)


DATABASE_CONFLICTS = """
SELECT datid::text AS datid, datname,
       confl_tablespace::float8, confl_lock::float8, confl_snapshot::float8, confl_bufferpin::float8,
       confl_deadlock::float8 {extra}
FROM pg_stat_database_conflicts
"""


def conflicts_sql(version_num: int) -> str:
    return DATABASE_CONFLICTS.format(
        extra=", confl_active_logicalslot::float8" if version_num >= 160000 else "")


# PostgreSQL 17 moved the checkpoint counters out of pg_stat_bgwriter; the bgwriter's stats_reset stays.
BGWRITER_RESET = "SELECT coalesce(extract(epoch FROM stats_reset), 0)::float8 AS stats_reset FROM pg_stat_bgwriter"

CHECKPOINTER_17 = """
SELECT num_timed::float8, num_requested::float8, restartpoints_timed::float8, restartpoints_req::float8,
       restartpoints_done::float8, write_time::float8, sync_time::float8, buffers_written::float8,
       coalesce(extract(epoch FROM stats_reset), 0)::float8 AS stats_reset
FROM pg_stat_checkpointer
"""

# pg_stat_wal exists from PostgreSQL 14; 18 moved the write and sync counters to pg_stat_io.
STAT_WAL_14 = """
SELECT wal_records::float8, wal_fpi::float8, wal_bytes::float8, wal_buffers_full::float8, wal_write::float8,
       wal_sync::float8, wal_write_time::float8, wal_sync_time::float8,
       coalesce(extract(epoch FROM stats_reset), 0)::float8 AS stats_reset
FROM pg_stat_wal
"""
STAT_WAL_18 = """
SELECT wal_records::float8, wal_fpi::float8, wal_bytes::float8, wal_buffers_full::float8,
       coalesce(extract(epoch FROM stats_reset), 0)::float8 AS stats_reset
FROM pg_stat_wal
"""


def stat_wal_sql(version_num: int) -> str | None:
    if version_num >= 180000:
        return STAT_WAL_18
    return STAT_WAL_14 if version_num >= 140000 else None


# pg_stat_io (PostgreSQL 16+): one row per backend type, object and context; times in ms.
IO_16 = """
SELECT backend_type, object, context,
       coalesce(reads, 0)::float8 AS reads, coalesce(writes, 0)::float8 AS writes,
       coalesce(extends, 0)::float8 AS extends, coalesce(hits, 0)::float8 AS hits,
       coalesce(evictions, 0)::float8 AS evictions, coalesce(fsyncs, 0)::float8 AS fsyncs,
       coalesce(read_time, 0)::float8 / 1000 AS read_time, coalesce(write_time, 0)::float8 / 1000 AS write_time
FROM pg_stat_io
"""

# The relation is named only when it lives in the database we are connected to (pg_class is per
# database; another database's OIDs may collide), else its OID, as postgres_exporter does.
_RELNAME = "coalesce(CASE WHEN p.datname = current_database() THEN p.relid::regclass::text END, p.relid::text)"

VACUUM_PROGRESS = f"""
SELECT p.datname, {_RELNAME} AS relname, p.phase,
       p.heap_blks_total::float8, p.heap_blks_scanned::float8, p.heap_blks_vacuumed::float8,
       p.index_vacuum_count::float8, p.{{max_dead}}::float8 AS max_dead_tuples,
       p.{{num_dead}}::float8 AS num_dead_tuples
FROM pg_stat_progress_vacuum p
"""


def vacuum_progress_sql(version_num: int) -> str:
    # PostgreSQL 17 counts the dead-item store in bytes and item ids rather than tuples.
    if version_num >= 170000:
        return VACUUM_PROGRESS.format(max_dead="max_dead_tuple_bytes", num_dead="num_dead_item_ids")
    return VACUUM_PROGRESS.format(max_dead="max_dead_tuples", num_dead="num_dead_tuples")


CREATE_INDEX_PROGRESS = f"""
SELECT p.datname, {_RELNAME} AS relname, p.command, p.phase,
       p.blocks_total::float8, p.blocks_done::float8, p.tuples_total::float8, p.tuples_done::float8
FROM pg_stat_progress_create_index p
"""

ANALYZE_PROGRESS = f"""
SELECT p.datname, {_RELNAME} AS relname, p.phase,
       p.sample_blks_total::float8, p.sample_blks_scanned::float8
FROM pg_stat_progress_analyze p
"""

# postgres_exporter's replication_slot collector; safe_wal_size and wal_status exist from PostgreSQL 13.
SLOTS = """
SELECT slot_name, slot_type,
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END
        - '0/0')::float8 AS current_wal_lsn,
       (coalesce(confirmed_flush_lsn, '0/0') - '0/0')::float8 AS confirmed_flush_lsn,
       active::int::float8 AS active {extra}
FROM pg_replication_slots
"""


def slots_sql(version_num: int) -> str:
    return SLOTS.format(extra=", safe_wal_size::float8, wal_status" if version_num >= 130000 else "")


# Where the WAL is (bytes since 0/0: rate() of it is the WAL write rate), and the WAL directory's size.
WAL_POSITION = """
SELECT (CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0') ELSE pg_current_wal_lsn() END
        - '0/0')::float8 AS position
"""

WAL_FILES = """
SELECT count(*)::float8 AS segments, coalesce(sum(size), 0)::float8 AS size
FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'
"""

WAL_FILES_ALLOWED = "SELECT has_function_privilege('pg_ls_waldir()', 'EXECUTE') AS allowed"


def stats_batch(version_num: int) -> dict[str, str]:
    """The collector's queries for this server version, batched into one statement (collectors/pg_batch.py);
    the WAL directory is listed after, by itself, when ``wal_files_allowed`` says the role may."""
    queries = {"database_extra": database_extra_sql(version_num), "conflicts": conflicts_sql(version_num),
               "bgwriter_reset": BGWRITER_RESET}
    if version_num >= 170000:
        queries["checkpointer"] = CHECKPOINTER_17
    if (wal := stat_wal_sql(version_num)) is not None:
        queries["stat_wal"] = wal
    if version_num >= 160000:
        queries["io"] = IO_16
    queries["vacuum"] = vacuum_progress_sql(version_num)
    if version_num >= 120000:
        queries["create_index"] = CREATE_INDEX_PROGRESS
    if version_num >= 130000:
        queries["analyze"] = ANALYZE_PROGRESS
    queries |= {"slots": slots_sql(version_num), "wal_position": WAL_POSITION, "wal_files_allowed": WAL_FILES_ALLOWED}
    return queries
