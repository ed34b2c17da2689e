"""The SQL the PostgreSQL collectors run, as named constants, gated by server version where catalogs differ.

Everything here is readable by a role with ``pg_monitor`` (PostgreSQL 10+), and nothing takes a lock
stronger than AccessShareLock on a catalog or statistics view.
"""

from __future__ import annotations

SERVER = """
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       pg_is_in_recovery() AS in_recovery,
       extract(epoch FROM pg_postmaster_start_time()) AS start_time,
       current_user AS role,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       pg_has_role(current_user, 'pg_monitor', 'member') AS monitor
"""

SETTINGS = """
SELECT name, setting::float8 AS value
FROM pg_settings
WHERE name = ANY($1::text[]) AND vartype IN ('integer', 'real')
"""

# Settings exported as pg_settings_<name> (postgres_exporter's names) and read by rules.
EXPORTED_SETTINGS = (
    "max_connections",
    "superuser_reserved_connections",
    "autovacuum_freeze_max_age",
    "max_wal_senders",
    "max_replication_slots",
    "shared_buffers",
    "work_mem",
    "statement_timeout",
)

ACTIVITY = """
SELECT coalesce(datname, '') AS datname, coalesce(state, 'unknown') AS state, count(*) AS count,
       coalesce(max(extract(epoch FROM now() - xact_start)), 0) AS max_tx_duration,
       coalesce(max(extract(epoch FROM now() - query_start)) FILTER (WHERE state = 'active'), 0) AS max_query_duration,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1, 2
"""

LOCKS = """
SELECT coalesce(d.datname, '') AS datname, l.mode, count(*) AS count
FROM pg_locks l LEFT JOIN pg_database d ON d.oid = l.database
GROUP BY 1, 2
"""

DATABASES = """
SELECT d.datid, d.datname, d.numbackends, d.xact_commit, d.xact_rollback, d.blks_read, d.blks_hit,
       d.tup_returned, d.tup_fetched, d.tup_inserted, d.tup_updated, d.tup_deleted, d.conflicts,
       d.temp_files, d.temp_bytes, d.deadlocks, d.blk_read_time, d.blk_write_time,
       pg_database_size(d.datid) AS size_bytes,
       age(db.datfrozenxid) AS frozenxid_age
FROM pg_stat_database d JOIN pg_database db ON db.oid = d.datid
WHERE NOT db.datistemplate
"""

DATABASE_COUNTERS = (
    "xact_commit", "xact_rollback", "blks_read", "blks_hit", "tup_returned", "tup_fetched", "tup_inserted",
    "tup_updated", "tup_deleted", "conflicts", "temp_files", "temp_bytes", "deadlocks", "blk_read_time",
    "blk_write_time",
)

# On a primary: one row per connected standby. The *_lag intervals are NULL when idle and caught up.
REPLICATION = """
SELECT coalesce(application_name, '') AS application_name, coalesce(host(client_addr), '') AS client_addr,
       coalesce(state, '') AS state, coalesce(sync_state, '') AS sync_state,
       coalesce(s.slot_name, '') AS slot_name,
       pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn) AS replay_lag_bytes,
       pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn) AS flush_lag_bytes,
       coalesce(extract(epoch FROM write_lag), 0) AS write_lag,
       coalesce(extract(epoch FROM flush_lag), 0) AS flush_lag,
       coalesce(extract(epoch FROM replay_lag), 0) AS replay_lag
FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
"""

# On a standby. When everything received has been replayed the standby is caught up, whatever the age
# of the last replayed transaction (an idle primary writes none): lag is then 0, not "time since".
STANDBY = """
SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
            THEN 0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END AS lag_seconds,
       coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0) AS replay_lag_bytes,
       pg_is_wal_replay_paused() AS replay_paused,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver_status,
       (SELECT sender_host FROM pg_stat_wal_receiver) AS upstream_host,
       (SELECT sender_port FROM pg_stat_wal_receiver) AS upstream_port
"""

SLOTS = """
SELECT slot_name, slot_type, coalesce(database, '') AS database, active,
       coalesce(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                     ELSE pg_current_wal_lsn() END, restart_lsn), 0) AS retained_bytes
FROM pg_replication_slots
"""

ARCHIVER = """
SELECT archived_count, failed_count,
       extract(epoch FROM now() - last_archived_time) AS last_archive_age,
       extract(epoch FROM now() - last_failed_time) AS last_failed_age,
       coalesce(last_failed_time > last_archived_time OR (last_failed_time IS NOT NULL AND last_archived_time IS NULL),
                false) AS failing
FROM pg_stat_archiver
"""

# PostgreSQL 17 moved the checkpoint counters to pg_stat_checkpointer and dropped buffers_backend*.
BGWRITER_BEFORE_17 = """
SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time, buffers_checkpoint,
       buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync, buffers_alloc
FROM pg_stat_bgwriter
"""

BGWRITER_17 = """
SELECT c.num_timed AS checkpoints_timed, c.num_requested AS checkpoints_req,
       c.write_time AS checkpoint_write_time, c.sync_time AS checkpoint_sync_time,
       c.buffers_written AS buffers_checkpoint, b.buffers_clean, b.maxwritten_clean, b.buffers_alloc
FROM pg_stat_bgwriter b, pg_stat_checkpointer c
"""


def bgwriter_sql(version_num: int) -> str:
    return BGWRITER_17 if version_num >= 170000 else BGWRITER_BEFORE_17


# -- pg_stat_statements ----------------------------------------------------------------------------

STATEMENTS_AVAILABLE = """
SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements') AS version,
       current_setting('shared_preload_libraries') AS preload,
       current_database() AS database
"""

# Column order matters: the key (4 columns), then the counters in pg_statements.COLUMNS order, then
# max_exec_time; the collector slices rows by position, which is what makes 10k rows cheap.
# Counters only, no text: reading texts means reading the whole query-text file, so texts are fetched
# separately, for the few statements that get their own series, and cached per queryid.
STATEMENTS_13 = """
SELECT s.queryid, s.userid, s.dbid, s.toplevel, s.calls, s.total_exec_time, s.rows,
       s.shared_blks_hit, s.shared_blks_read, s.temp_blks_read, s.temp_blks_written,
       s.blk_read_time, s.blk_write_time, s.max_exec_time
FROM pg_stat_statements(false) s
WHERE s.queryid IS NOT NULL
"""

STATEMENTS_12 = """
SELECT s.queryid, s.userid, s.dbid, true AS toplevel, s.calls, s.total_time AS total_exec_time,
       s.rows, s.shared_blks_hit, s.shared_blks_read, s.temp_blks_read, s.temp_blks_written,
       s.blk_read_time, s.blk_write_time, s.max_time AS max_exec_time
FROM pg_stat_statements(false) s
WHERE s.queryid IS NOT NULL
"""

# PostgreSQL 17 renamed blk_{read,write}_time to shared_blk_{read,write}_time.
STATEMENTS_17 = STATEMENTS_13.replace("s.blk_read_time, s.blk_write_time",
                                      "s.shared_blk_read_time AS blk_read_time, s.shared_blk_write_time AS blk_write_time")


def statements_sql(version_num: int) -> str:
    if version_num >= 170000:
        return STATEMENTS_17
    if version_num >= 140000:
        return STATEMENTS_13
    if version_num >= 130000:
        return STATEMENTS_13.replace("s.toplevel", "true AS toplevel")
    return STATEMENTS_12


STATEMENT_TEXTS = "SELECT DISTINCT ON (queryid) queryid, query FROM pg_stat_statements(true) WHERE queryid = ANY($1::bigint[])"

STATEMENTS_INFO = "SELECT dealloc, extract(epoch FROM stats_reset) AS stats_reset FROM pg_stat_statements_info"

NAMES = "SELECT 'r' AS kind, oid, rolname AS name FROM pg_roles UNION ALL SELECT 'd', oid, datname FROM pg_database"
