"""The SQL the PostgreSQL collectors run, as named constants, gated by server version where catalogs differ.

Everything here is readable by a role with ``pg_monitor`` (PostgreSQL 10+), and nothing takes a lock
stronger than AccessShareLock on a catalog or statistics view.
"""

from __future__ import annotations

# Read every collection: a standby promoted under a long-lived connection changes role (SERVER is read once).
IN_RECOVERY = "SELECT pg_is_in_recovery() AS in_recovery"

SERVER = """
SELECT current_setting('server_version') AS version,
       version() AS full_version,
       current_setting('server_version_num')::int AS version_num,
       pg_is_in_recovery() AS in_recovery,
       extract(epoch FROM pg_postmaster_start_time()) AS start_time,
       current_user AS role,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       pg_has_role(current_user, 'pg_monitor', 'member') AS monitor,
       pg_has_role(current_user, 'pg_read_all_stats', 'member') AS read_all_stats
"""

# Unit conversion is done by the collector, as postgres_exporter does (8kB pages -> bytes, ms -> seconds).
SETTINGS = """
SELECT name, setting, unit, vartype
FROM pg_settings
WHERE name = ANY($1::text[]) AND vartype IN ('integer', 'real', 'bool')
"""

# Settings exported as pg_settings_<name>[_bytes|_seconds] (postgres_exporter's names) and read by rules.
# Not the ones the monitoring session sets for itself (statement_timeout, lock_timeout,
# idle_in_transaction_session_timeout): pg_settings would show dbwatch's own values, not the server's.
EXPORTED_SETTINGS = (
    "max_connections",
    "superuser_reserved_connections",
    "autovacuum_freeze_max_age",
    "max_wal_senders",
    "max_replication_slots",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "checkpoint_timeout",
    "max_wal_size",
    "track_io_timing",
    "hot_standby",
)

# postgres_exporter's shape: every database x every state, zero-filled, so series never vanish; the
# columns after max_tx_duration are dbwatch's. Walsenders and background workers are not connections.
ACTIVITY = """
WITH a AS (
    SELECT datname, state, count(*) AS count,
           max(extract(epoch FROM now() - xact_start)) AS max_tx_duration,
           max(extract(epoch FROM now() - query_start)) FILTER (WHERE state = 'active') AS max_query_duration,
           max(extract(epoch FROM now() - state_change))
               FILTER (WHERE state LIKE 'idle in transaction%') AS max_idle_in_xact,
           max(age(backend_xmin)) AS max_xmin_age,
           count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting
    FROM pg_stat_activity
    WHERE backend_type = 'client backend'
    GROUP BY datname, state
)
SELECT d.datname, s.state, coalesce(a.count, 0) AS count,
       coalesce(a.max_tx_duration, 0) AS max_tx_duration,
       coalesce(a.max_query_duration, 0) AS max_query_duration,
       coalesce(a.max_idle_in_xact, 0) AS max_idle_in_xact,
       coalesce(a.max_xmin_age, 0) AS max_xmin_age,
       coalesce(a.waiting, 0) AS waiting
FROM pg_database d
CROSS JOIN (VALUES ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)'),
                   ('fastpath function call'), ('disabled')) AS s(state)
LEFT JOIN a ON a.datname = d.datname AND a.state = s.state
"""

# postgres_exporter's shape: lower-case modes, every database x every mode, zero-filled.
LOCKS = """
SELECT d.datname, m.mode, coalesce(l.count, 0) AS count
FROM pg_database d
CROSS JOIN (VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), ('shareupdateexclusivelock'),
                   ('sharelock'), ('sharerowexclusivelock'), ('exclusivelock'), ('accessexclusivelock'),
                   ('sireadlock')) AS m(mode)
LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count
           FROM pg_locks WHERE database IS NOT NULL GROUP BY 1, 2) l ON l.database = d.oid AND l.mode = m.mode
"""

# pg_database_size() needs CONNECT on the database or pg_read_all_stats: without either it raises
# and would fail the whole query, so such a database gets a NULL size (not exported) instead.
# Every row of pg_stat_database, as postgres_exporter shows them: the templates too, and the row of the
# shared catalogs (datid 0, no name, no pg_database row); `listed` marks the databases facts describe.
DATABASES = """
SELECT d.datid::int8 AS datid, d.datname, d.numbackends, d.xact_commit, d.xact_rollback, d.blks_read,
       d.blks_hit, d.tup_returned, d.tup_fetched, d.tup_inserted, d.tup_updated, d.tup_deleted, d.conflicts,
       d.temp_files, d.temp_bytes, d.deadlocks, d.blk_read_time, d.blk_write_time,
       CASE WHEN db.oid IS NOT NULL AND (has_database_privilege(d.datid, 'CONNECT')
                                         OR pg_has_role(current_user, 'pg_read_all_stats', 'member'))
            THEN pg_database_size(d.datid) END AS size_bytes,
       age(db.datfrozenxid) AS frozenxid_age,
       mxid_age(db.datminmxid) AS minmxid_age,
       coalesce(NOT db.datistemplate, false) AS listed
FROM pg_stat_database d LEFT JOIN pg_database db ON db.oid = d.datid
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


def server_batch(version_num: int, in_recovery: bool) -> dict[str, str]:
    """The server-wide collector's queries, batched into one statement (collectors/pg_batch.py; the settings'
    names are its $1). Replication is read as a primary or as a standby: each set raises on the other role."""
    return {
        "recovery": IN_RECOVERY, "settings": SETTINGS, "activity": ACTIVITY, "locks": LOCKS, "databases": DATABASES,
        "slots": SLOTS, "archiver": ARCHIVER, "bgwriter": bgwriter_sql(version_num),
        **({"standby": STANDBY} if in_recovery else {"replication": REPLICATION}),
    }


# -- pg_stat_statements ----------------------------------------------------------------------------

# shared_preload_libraries is readable only with pg_read_all_settings (pg_monitor has it); without, the
# library's own postmaster-level setting tells: pg_stat_statements defines it only when preloaded.
STATEMENTS_AVAILABLE = """
SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements') AS version,
       (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload,
       current_setting('pg_stat_statements.max', true) IS NOT NULL AS max_defined,
       current_database() AS database
"""

# Column order matters: the key (4 columns), then the counters in pg_statements.COLUMNS order, then
# max_exec_time; the collector slices rows by position, which is what makes 10k rows cheap.
# Counters only, no text: reading texts means reading the whole query-text file, so texts are fetched
# separately, for the few statements that get their own series, and cached per queryid.
# The columns follow the *installed extension's* version, not the server's: after pg_upgrade an old
# extension version keeps its old function signature until ALTER EXTENSION ... UPDATE.
STATEMENTS_1_9 = """
SELECT s.queryid, s.userid, s.dbid, s.toplevel, s.calls, s.total_exec_time, s.rows,
       s.shared_blks_hit, s.shared_blks_read, s.temp_blks_read, s.temp_blks_written,
       s.blk_read_time, s.blk_write_time, s.max_exec_time
FROM pg_stat_statements(false) s
WHERE s.queryid IS NOT NULL
"""

# 1.11 (PostgreSQL 17) renamed blk_{read,write}_time to shared_blk_{read,write}_time.
STATEMENTS_1_11 = STATEMENTS_1_9.replace(
    "s.blk_read_time, s.blk_write_time",
    "s.shared_blk_read_time AS blk_read_time, s.shared_blk_write_time AS blk_write_time")

# 1.8 (PostgreSQL 13) split planning from execution time but has no toplevel yet.
STATEMENTS_1_8 = STATEMENTS_1_9.replace("s.toplevel", "true AS toplevel")

STATEMENTS_BEFORE_1_8 = """
SELECT s.queryid, s.userid, s.dbid, true AS toplevel, s.calls, s.total_time AS total_exec_time,
       s.rows, s.shared_blks_hit, s.shared_blks_read, s.temp_blks_read, s.temp_blks_written,
       s.blk_read_time, s.blk_write_time, s.max_time AS max_exec_time
FROM pg_stat_statements(false) s
WHERE s.queryid IS NOT NULL
"""


def extension_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def statements_sql(extversion: tuple[int, ...]) -> str:
    if extversion >= (1, 11):
        return STATEMENTS_1_11
    if extversion >= (1, 9):
        return STATEMENTS_1_9
    if extversion >= (1, 8):
        return STATEMENTS_1_8
    return STATEMENTS_BEFORE_1_8


# pg_stat_statements_info (dealloc, stats_reset) exists from extension version 1.9 (PostgreSQL 14).
STATEMENTS_INFO_SINCE = (1, 9)

STATEMENT_TEXTS = """
SELECT DISTINCT ON (queryid) queryid, query FROM pg_stat_statements(true) WHERE queryid = ANY($1::bigint[])
"""

STATEMENTS_INFO = "SELECT dealloc, extract(epoch FROM stats_reset) AS stats_reset FROM pg_stat_statements_info"

NAMES = "SELECT 'r' AS kind, oid, rolname AS name FROM pg_roles UNION ALL SELECT 'd', oid, datname FROM pg_database"
