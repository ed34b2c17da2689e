"""The metric families the MySQL/MariaDB collectors (mysql, statements, advisor) can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import C, G, I, U, MetricSpec

TITLE = 'MySQL/MariaDB'
ENGINES: tuple[str, ...] = ('mysql',)
INTRO = """\
Names are mysqld_exporter's where it has the metric (its dashboards and `mysqld-mixin` alerts work
unchanged); `dbwatch_mysql_*` are dbwatch's own. Replication columns keep the master/slave spelling on
MySQL 8's `SHOW REPLICA STATUS` too (`Seconds_Behind_Source` is exported as
`mysql_slave_status_seconds_behind_master`), so one dashboard serves MySQL and MariaDB.
"""
NOTES = """\
Digest series are capped like pg_stat_statements': the top `top_n` digests by total time have their own
series (`digest_text` folded and cut to `query_text_length`), the rest are summed into `digest="other"`.
Rules read per-interval deltas from the `statements` facts, with the same field names as PostgreSQL's
(`queryid` is the digest, `datname` the schema, `calls`, `total_time_seconds`, `rows`, `delta_calls`,
`delta_time_seconds`, `delta_rows`, `mean_time_seconds`, plus `delta_rows_examined`, `delta_no_index_used`,
`delta_tmp_disk_tables`, ...). A digest row re-created by `TRUNCATE` or a restart (its `FIRST_SEEN`
changes) counts from zero; counters that go down otherwise re-baseline that row; no delta is ever negative.
"""

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('mysql_up', G,
               'Whether the last collection could reach the server (1 = yes).',
               (), 'mysql'),
    MetricSpec('mysql_version_info', I,
               'Server version (`innodb_version` is empty on MariaDB ≥ 10.10).',
               ('innodb_version', 'version', 'version_comment'), 'mysql'),
    MetricSpec('mysql_global_status_<variable>', U,
               'Every numeric `SHOW GLOBAL STATUS` variable, lower case, ON/OFF as 1/0 (`innodb_row_lock_time` '
               'in ms, `innodb_deadlocks` on MariaDB only), for example',
               (), 'mysql',
               values=(
                       'threads_connected', 'threads_running', 'max_used_connections',
                       'connections', 'aborted_connects', 'aborted_clients',
                       'innodb_buffer_pool_reads', 'innodb_buffer_pool_read_requests',
                       'innodb_row_lock_waits', 'innodb_row_lock_time',
                       'innodb_row_lock_current_waits', 'innodb_deadlocks',
                       'created_tmp_tables', 'created_tmp_disk_tables', 'slow_queries',
                       'questions', 'uptime',), open=True),
    MetricSpec('mysql_global_status_commands_total', C,
               '`Com_*`: statements executed, by command.',
               ('command',), 'mysql'),
    MetricSpec('mysql_global_status_handlers_total', C,
               '`Handler_*`: storage engine handler calls.',
               ('handler',), 'mysql'),
    MetricSpec('mysql_global_status_connection_errors_total', C,
               '`Connection_errors_*`.',
               ('error',), 'mysql'),
    MetricSpec('mysql_global_status_innodb_row_ops_total', C,
               '`Innodb_rows_*`, where the server has them (MySQL).',
               ('operation',), 'mysql'),
    MetricSpec('mysql_global_status_buffer_pool_pages', G,
               'InnoDB buffer pool pages by state (data, free, misc, old).',
               ('state',), 'mysql'),
    MetricSpec('mysql_global_status_buffer_pool_dirty_pages', G,
               'Dirty pages in the InnoDB buffer pool.',
               (), 'mysql'),
    MetricSpec('mysql_global_status_buffer_pool_page_changes_total', C,
               'Pages flushed, made young, ...',
               ('operation',), 'mysql'),
    MetricSpec('mysql_global_status_performance_schema_lost_total', C,
               'performance_schema instruments lost for lack of memory.',
               ('instrumentation',), 'mysql'),
    MetricSpec('mysql_global_variables_<variable>', G,
               'Every numeric `SHOW GLOBAL VARIABLES` value, ON/OFF as 1/0, for example',
               (), 'mysql',
               values=(
                       'max_connections', 'innodb_buffer_pool_size', 'innodb_log_file_size',
                       'read_only', 'performance_schema', 'long_query_time', 'slow_query_log',
                       'table_open_cache', 'tmp_table_size', 'max_heap_table_size',), open=True),
    MetricSpec('dbwatch_mysql_connections_used_ratio', G,
               'Threads_connected / max_connections.',
               (), 'mysql'),
    MetricSpec('dbwatch_mysql_buffer_pool_hit_ratio', G,
               'Share of InnoDB read requests served from the buffer pool over the last interval (since start '
               'on the first collection).',
               (), 'mysql'),
    MetricSpec('dbwatch_mysql_buffer_pool_dirty_ratio', G,
               'Share of buffer pool pages that are dirty.',
               (), 'mysql'),
    MetricSpec('dbwatch_mysql_innodb_deadlocks_total', C,
               'InnoDB deadlocks (`Innodb_deadlocks` on MariaDB, `INNODB_METRICS` `lock_deadlocks` on MySQL).',
               (), 'mysql'),
    MetricSpec('mysql_info_schema_processlist_processes_by_user', G,
               'Connections per user.',
               ('mysql_user',), 'mysql'),
    MetricSpec('mysql_info_schema_processlist_processes_by_host', G,
               'Connections per client host.',
               ('client_host',), 'mysql'),
    MetricSpec('dbwatch_mysql_oldest_query_seconds', G,
               'Age of the longest-running statement (replication threads, sleeping sessions and dbwatch '
               'excluded).',
               (), 'mysql'),
    MetricSpec('dbwatch_mysql_processlist_oldest_query_seconds', G,
               'The same per user and client host.',
               ('mysql_user', 'client_host'), 'mysql'),
    MetricSpec('dbwatch_mysql_processlist_running_queries', G,
               'Statements running per user and client host.',
               ('mysql_user', 'client_host'), 'mysql'),
    MetricSpec('mysql_slave_status_<column>', G,
               'Every numeric or Yes/No column of the replication status, per channel; the running columns are '
               '1 only for "Yes" and `seconds_behind_master` is absent while a thread is stopped (the server '
               'says NULL); for example',
               ('channel_name', 'connection_name', 'master_host', 'master_uuid'), 'mysql',
               values=(
                       'slave_io_running', 'slave_sql_running', 'seconds_behind_master',
                       'sql_delay', 'last_errno', 'last_io_errno', 'last_sql_errno',
                       'read_master_log_pos', 'exec_master_log_pos', 'relay_log_space',
                       'master_port', 'master_server_id',), open=True),
    MetricSpec('dbwatch_mysql_slave_status_last_error', I,
               "The channel's last IO or SQL thread error, while there is one.",
               ('channel_name', 'connection_name', 'master_host', 'master_uuid', 'thread', 'errno', 'error'), 'mysql'),
    MetricSpec('dbwatch_mysql_slave_status_gtid_received', G,
               'Highest GTID sequence number received, per GTID domain (MariaDB `Gtid_IO_Pos`) or source UUID '
               '(MySQL `Retrieved_Gtid_Set`).',
               ('channel_name', 'connection_name', 'master_host', 'master_uuid', 'domain'), 'mysql'),
    MetricSpec('dbwatch_mysql_gtid_executed', G,
               'Highest GTID sequence number applied by this server (MariaDB `@@gtid_current_pos`, MySQL '
               "`@@gtid_executed`); compare a replica's with its primary's.",
               ('domain',), 'mysql'),
    MetricSpec('mysql_heartbeat_stored_timestamp_seconds', G,
               'With `heartbeat_table`: the newest timestamp pt-heartbeat wrote (on the primary, replicated '
               'here).',
               ('server_id',), 'mysql'),
    MetricSpec('mysql_heartbeat_now_timestamp_seconds', G,
               "With `heartbeat_table`: this server's clock when it was read.",
               ('server_id',), 'mysql'),
    MetricSpec('dbwatch_mysql_heartbeat_lag_seconds', G,
               'Their difference: the true replica delay, also while replication is stopped or broken.',
               ('server_id',), 'mysql'),
    MetricSpec('mysql_perf_schema_events_statements_total', C,
               'Executions per statement digest.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_seconds_total', C,
               'Total execution time.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_lock_time_seconds_total', C,
               'Total time spent waiting for table locks.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_rows_examined_total', C,
               'Rows read by the storage engines.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_rows_sent_total', C,
               'Rows returned to the client.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_rows_affected_total', C,
               'Rows inserted, updated or deleted.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_no_index_used_total', C,
               'Executions that scanned a table without using an index.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_no_good_index_used_total', C,
               'Executions that found no good index.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_tmp_tables_total', C,
               'Internal temporary tables created.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_tmp_disk_tables_total', C,
               'Internal temporary tables created on disk.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_sort_rows_total', C,
               'Rows sorted.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_errors_total', C,
               'Executions that ended in an error.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('mysql_perf_schema_events_statements_warnings_total', C,
               'Warnings raised.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('dbwatch_mysql_perf_schema_events_statements_max_seconds', G,
               'Longest execution of the digest since its row was created.',
               ('schema', 'digest', 'digest_text'), 'statements'),
    MetricSpec('dbwatch_mysql_perf_schema_digests', G,
               'Rows in `events_statements_summary_by_digest`.',
               (), 'statements'),
    MetricSpec('dbwatch_mysql_advisor_statements', G,
               'Digests on application tables the index advisor considered in its last run.',
               (), 'advisor'),
    MetricSpec('dbwatch_mysql_advisor_explains', G,
               'EXPLAINs the index advisor ran in its last run.',
               (), 'advisor'),
    MetricSpec('dbwatch_mysql_advisor_explain_failures', G,
               'Statements the advisor could not EXPLAIN.',
               (), 'advisor'),
    MetricSpec('dbwatch_mysql_advisor_index_candidates', G,
               'Index candidates the advisor found in its last run.',
               (), 'advisor'),
)
