"""The SQL the MySQL/MariaDB collectors run, as named constants, gated by flavor and version where they differ.

Everything here is readable with ``PROCESS, REPLICATION CLIENT`` (``BINLOG MONITOR`` on MariaDB >= 10.5)
and ``SELECT ON performance_schema.*``; the replication status needs ``SLAVE MONITOR`` on MariaDB >= 10.5
(``REPLICATION CLIENT`` on MySQL and older MariaDB). Nothing here locks a user table.
"""

from __future__ import annotations

SERVER = """
SELECT VERSION() AS version, @@version_comment AS version_comment,
       CURRENT_USER() AS user, @@server_id AS server_id, @@read_only AS read_only,
       @@performance_schema AS performance_schema
"""

# The current user's global privileges (the grantee's own rows only need no privilege to read).
PRIVILEGES = "SELECT PRIVILEGE_TYPE AS privilege FROM information_schema.USER_PRIVILEGES"

GLOBAL_STATUS = "SHOW GLOBAL STATUS"
GLOBAL_VARIABLES = "SHOW GLOBAL VARIABLES"

# MySQL counts deadlocks only here (enabled by default); MariaDB also has Innodb_deadlocks in the status.
INNODB_DEADLOCKS = "SELECT `COUNT` AS count FROM information_schema.INNODB_METRICS WHERE NAME = 'lock_deadlocks'"

GTID_MARIADB = "SELECT @@gtid_current_pos AS executed, @@gtid_slave_pos AS slave_pos, @@gtid_binlog_pos AS binlog_pos"
GTID_MYSQL = "SELECT @@gtid_executed AS executed, '' AS slave_pos, '' AS binlog_pos"

# Replication status, one row per channel. MariaDB names channels "connections" (multi-source).
REPLICATION_MARIADB = "SHOW ALL SLAVES STATUS"
REPLICATION_MYSQL = "SHOW REPLICA STATUS"  # MySQL 8.0.22+; SHOW SLAVE STATUS is gone in 8.4
REPLICATION_MYSQL_OLD = "SHOW SLAVE STATUS"
MYSQL_REPLICA_SYNTAX_SINCE = (8, 0, 22)


def replication_sql(mariadb: bool, version: tuple[int, int, int]) -> str:
    if mariadb:
        return REPLICATION_MARIADB
    return REPLICATION_MYSQL if version >= MYSQL_REPLICA_SYNTAX_SINCE else REPLICATION_MYSQL_OLD


# Client sessions doing something: replication threads, the event scheduler, sleeping connections and
# dbwatch's own connection are not "queries". MariaDB has TIME_MS (fractions); MySQL whole seconds.
_PROCESSLIST = """
SELECT ID AS id, USER AS user, SUBSTRING_INDEX(HOST, ':', 1) AS host, DB AS db, COMMAND AS command,
       STATE AS state, {seconds} AS seconds, LEFT(INFO, %s) AS query
FROM information_schema.PROCESSLIST
WHERE ID <> CONNECTION_ID()
  AND COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Connect', 'Slave_IO',
                      'Slave_SQL', 'Slave_worker')
  AND USER NOT IN ('system user', 'event_scheduler')
"""
PROCESSLIST_MARIADB = _PROCESSLIST.format(seconds="TIME_MS / 1000")
PROCESSLIST_MYSQL = _PROCESSLIST.format(seconds="TIME")

# Every connection, by user and client host (mysqld_exporter's processlist counts), sleeping ones included;
# by command and state too for its processlist_threads, which leaves out the connection asking (`own`).
CONNECTIONS = """
SELECT USER AS user, SUBSTRING_INDEX(HOST, ':', 1) AS host, COALESCE(COMMAND, '') AS command,
       COALESCE(STATE, '') AS state, ID = CONNECTION_ID() AS own, COUNT(*) AS count, SUM(TIME) AS seconds
FROM information_schema.PROCESSLIST
GROUP BY USER, SUBSTRING_INDEX(HOST, ':', 1), COALESCE(COMMAND, ''), COALESCE(STATE, ''), ID = CONNECTION_ID()
"""

# pt-heartbeat: ts is the primary's clock when it wrote the row (one row per primary in a chain: the newest
# wins); the table name is validated by the collector before it is put into the query. With --utc, ts is
# UTC: shifted by the session's offset from UTC before UNIX_TIMESTAMP() reads it as local time.
HEARTBEAT = """
SELECT server_id, UNIX_TIMESTAMP(ts) AS stored, UNIX_TIMESTAMP(NOW(6)) AS now FROM {table}
ORDER BY ts DESC LIMIT 1
"""
HEARTBEAT_UTC = """
SELECT server_id, UNIX_TIMESTAMP(ts) + (UNIX_TIMESTAMP(NOW(6)) - UNIX_TIMESTAMP(UTC_TIMESTAMP(6))) AS stored,
       UNIX_TIMESTAMP(NOW(6)) AS now FROM {table}
ORDER BY ts DESC LIMIT 1
"""

# performance_schema digests. Timers are in picoseconds. The text is read separately, for the top N only.
PERFORMANCE_SCHEMA = """
SELECT @@performance_schema AS enabled,
       (SELECT ENABLED FROM performance_schema.setup_consumers WHERE NAME = 'statements_digest') AS digest
"""
DIGESTS = """
SELECT SCHEMA_NAME, DIGEST, UNIX_TIMESTAMP(FIRST_SEEN), COUNT_STAR, SUM_TIMER_WAIT, SUM_LOCK_TIME,
       SUM_ROWS_SENT, SUM_ROWS_AFFECTED, SUM_ROWS_EXAMINED, SUM_NO_INDEX_USED, SUM_NO_GOOD_INDEX_USED,
       SUM_CREATED_TMP_TABLES, SUM_CREATED_TMP_DISK_TABLES, SUM_SORT_ROWS, SUM_ERRORS, SUM_WARNINGS,
       MAX_TIMER_WAIT
FROM performance_schema.events_statements_summary_by_digest
"""
DIGEST_TEXTS = """
SELECT DIGEST AS digest, DIGEST_TEXT AS text
FROM performance_schema.events_statements_summary_by_digest
WHERE DIGEST IN ({placeholders})
"""
