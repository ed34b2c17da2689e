"""From MySQL/MariaDB rows to metric families and facts: mysqld_exporter's names, labels and grouping.

Pure functions of what the server returned, so the naming rules live in one place and the collector
(:mod:`mysql`) only asks the server.
"""

from __future__ import annotations

import re
from typing import Any

from dbwatch.model import MetricFamily, MetricType, counter, gauge, info
from dbwatch.model.facts.mysql import (
    Activity, Channel, Gtid, Heartbeat, LongQuery, ServerInfo, Settings, Status,
)

_LONGEST_KEPT = 10  # running statements kept in the Activity fact's longest
_ERROR_TEXT_LENGTH = 200
CHANNEL_LABELS = ("channel_name", "connection_name", "master_host", "master_uuid")

# mysqld_exporter's grouping of SHOW GLOBAL STATUS (collector/global_status.go): these prefixes become one
# labelled counter each; every other numeric variable is "mysql_global_status_<name>", untyped.
_GROUPED = re.compile(r"^(com|handler|connection_errors|innodb_buffer_pool_pages|innodb_rows|performance_schema)_(.*)$")
_GROUP_FAMILIES = {
    "com": ("mysql_global_status_commands_total", "command", "Total number of executed MySQL commands."),
    "handler": ("mysql_global_status_handlers_total", "handler", "Total number of executed MySQL handlers."),
    "connection_errors": ("mysql_global_status_connection_errors_total", "error",
                          "Total number of MySQL connection errors."),
    "innodb_rows": ("mysql_global_status_innodb_row_ops_total", "operation",
                    "Total number of MySQL InnoDB row operations."),
    "performance_schema": ("mysql_global_status_performance_schema_lost_total", "instrumentation",
                           "Total number of MySQL instrumentations that could not be loaded or created due "
                           "to memory constraints."),
}
_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_]")
# Replication columns that are labels or text, never values, whatever they hold.
_CHANNEL_TEXT = {"master_host", "master_user", "master_uuid", "channel_name", "connection_name"}


def metric_name(name: str) -> str:
    return _INVALID_NAME.sub("_", name.lower())


def parse_value(value: Any) -> float | None:
    """mysqld_exporter's parseStatus: numbers, and ON/YES as 1, OFF/NO/DISABLED/CONNECTING as 0; Galera's
    wsrep_cluster_status PRIMARY as 1, NON-PRIMARY/DISCONNECTED as 0."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("yes", "on", "primary"):
        return 1.0
    if text in ("no", "off", "disabled", "connecting", "non-primary", "disconnected"):
        return 0.0
    try:
        return float(text)
    except ValueError:
        return None


def server_families(server: ServerInfo, variables: dict[str, Any]) -> list[MetricFamily]:
    up = gauge("mysql_up", "Whether the last collection could reach the server (1 = yes).")
    up.add((), 1)
    version = info("mysql_version_info", "MySQL version and distribution.",
                   ("innodb_version", "version", "version_comment"))
    # MariaDB 10.10+ has no innodb_version (InnoDB is versioned with the server): the label stays empty.
    version.add((variables.get("innodb_version") or "", server.version, server.version_comment), 1)
    return [up, version]


def status_families(status: dict[str, Any]) -> list[MetricFamily]:
    families: dict[str, MetricFamily] = {}
    pages = gauge("mysql_global_status_buffer_pool_pages", "Innodb buffer pool pages by state.", ("state",))
    dirty = gauge("mysql_global_status_buffer_pool_dirty_pages", "Innodb buffer pool dirty pages.")
    changes = counter("mysql_global_status_buffer_pool_page_changes_total", "Innodb buffer pool page state changes.",
                      ("operation",))
    for name, raw in status.items():
        value = parse_value(raw)
        if value is None:
            continue
        key = metric_name(name)
        grouped = _GROUPED.match(key)
        if grouped is None:
            fam = MetricFamily(f"mysql_global_status_{key}", MetricType.UNTYPED,
                               "Generic metric from SHOW GLOBAL STATUS.")
            fam.add((), value)
            families[fam.name] = fam
            continue
        group, rest = grouped.groups()
        if group == "innodb_buffer_pool_pages":
            if rest in ("data", "free", "misc", "old"):
                pages.add((rest,), value)
            elif rest == "dirty":
                dirty.add((), value)
            elif rest != "total":
                changes.add((rest,), value)
            continue
        fam_name, label, help_text = _GROUP_FAMILIES[group]
        group_family = families.get(fam_name)
        if group_family is None:
            group_family = families[fam_name] = counter(fam_name, help_text, (label,))
        group_family.add((rest,), value)
    return [*families.values(), pages, dirty, changes]


def variable_families(variables: dict[str, Any]) -> list[MetricFamily]:
    families = []
    for name, raw in variables.items():
        value = parse_value(raw)
        if value is None:
            continue
        fam = gauge(f"mysql_global_variables_{metric_name(name)}", "Generic gauge metric from SHOW GLOBAL VARIABLES.")
        fam.add((), value)
        families.append(fam)
    return families


def settings_of(variables: dict[str, Any]) -> Settings:
    def num(name: str) -> float:
        return parse_value(variables.get(name)) or 0.0

    return Settings(
        max_connections=int(num("max_connections")), innodb_buffer_pool_size=int(num("innodb_buffer_pool_size")),
        read_only=bool(num("read_only")), performance_schema=bool(num("performance_schema")),
        long_query_time=num("long_query_time"), slow_query_log=bool(num("slow_query_log")),
    )


def derived_families(status: Status, deadlocks: float | None) -> list[MetricFamily]:
    hit = gauge("dbwatch_mysql_buffer_pool_hit_ratio",
                "Share of InnoDB buffer pool read requests served from memory over the last interval "
                "(since start on the first collection).")
    hit.add((), status.buffer_pool_hit_ratio)
    dirty = gauge("dbwatch_mysql_buffer_pool_dirty_ratio", "Share of InnoDB buffer pool pages that are dirty.")
    dirty.add((), status.buffer_pool_dirty_ratio)
    used = gauge("dbwatch_mysql_connections_used_ratio", "Threads_connected / max_connections.")
    used.add((), status.connections_used_ratio)
    locks = counter("dbwatch_mysql_innodb_deadlocks_total",
                    "InnoDB deadlocks (Innodb_deadlocks on MariaDB, INNODB_METRICS lock_deadlocks on MySQL).")
    locks.add((), deadlocks)
    return [hit, dirty, used, locks]


def activity_of(processes: list[dict[str, Any]], connections: list[dict[str, Any]]) -> Activity:
    running = sorted(processes, key=lambda r: float(r["seconds"] or 0), reverse=True)
    longest = [
        LongQuery(id=int(r["id"]), user=str(r["user"] or ""), host=str(r["host"] or ""), db=r["db"],
                  command=str(r["command"]), state=r["state"], seconds=float(r["seconds"] or 0),
                  query=fold(r["query"]))
        for r in running[:_LONGEST_KEPT]
    ]
    return Activity(
        connections=sum(int(r["count"]) for r in connections), running=len(processes),
        oldest_query_seconds=longest[0].seconds if longest else 0.0, longest=longest,
    )


def processlist_families(processes: list[dict[str, Any]], connections: list[dict[str, Any]],
                         activity: Activity) -> list[MetricFamily]:
    by_user = gauge("mysql_info_schema_processlist_processes_by_user",
                    "The number of processes by user.", ("mysql_user",))
    by_host = gauge("mysql_info_schema_processlist_processes_by_host",
                    "The number of processes by host.", ("client_host",))
    users: dict[str, int] = {}
    hosts: dict[str, int] = {}
    for row in connections:
        user, host = str(row["user"] or ""), str(row["host"] or "")
        users[user] = users.get(user, 0) + int(row["count"])
        hosts[host] = hosts.get(host, 0) + int(row["count"])
    for user, count in sorted(users.items()):
        by_user.add((user,), count)
    for host, count in sorted(hosts.items()):
        by_host.add((host,), count)
    threads = gauge("mysql_info_schema_processlist_threads", "The number of threads split by current state.",
                    ("command", "state"))
    seconds = gauge("mysql_info_schema_processlist_seconds",
                    "The number of seconds threads have used split by current state.", ("command", "state"))
    states: dict[tuple[str, str], list[float]] = {}  # (command, state) -> [threads, seconds]
    for row in connections:
        if not row.get("own"):
            key = (_sanitize_state(row.get("command")), _sanitize_state(row.get("state")))
            count_seconds = states.setdefault(key, [0.0, 0.0])
            count_seconds[0] += int(row["count"])
            count_seconds[1] += float(row.get("seconds") or 0)
    for key, (n_threads, total) in sorted(states.items()):
        threads.add(key, n_threads)
        seconds.add(key, total)
    oldest = gauge("dbwatch_mysql_oldest_query_seconds", "Age of the longest-running statement (0 when none runs).")
    oldest.add((), activity.oldest_query_seconds)
    labels = ("mysql_user", "client_host")
    per_client = gauge("dbwatch_mysql_processlist_oldest_query_seconds",
                       "Age of the longest-running statement per user and client host.", labels)
    running = gauge("dbwatch_mysql_processlist_running_queries", "Statements running per user and client host.",
                    labels)
    ages: dict[tuple[str, str], list[float]] = {}
    for row in processes:
        ages.setdefault((str(row["user"] or ""), str(row["host"] or "")), []).append(float(row["seconds"] or 0))
    for key, values in sorted(ages.items()):
        per_client.add(key, max(values))
        running.add(key, len(values))
    return [by_user, by_host, threads, seconds, oldest, per_client, running]


def _sanitize_state(value: Any) -> str:
    """A command or state as mysqld_exporter labels it: lower case, "unknown" when empty, no punctuation."""
    text = str(value or "").lower() or "unknown"
    for old, new in ((";", ""), (",", ""), (":", ""), (".", ""), ("(", ""), (")", ""), (" ", "_"), ("-", "_")):
        text = text.replace(old, new)
    return text


def normalise_channel_row(row: dict[str, Any]) -> dict[str, Any]:
    """MySQL 8's Replica/Source column names in MariaDB's and old MySQL's Slave/Master spelling."""
    return {k.replace("Replica", "Slave").replace("Source", "Master"): v for k, v in row.items()}


def channel_of(raw: dict[str, Any], server: ServerInfo, gtid: Gtid) -> Channel:
    row = normalise_channel_row(raw)
    behind = row.get("Seconds_Behind_Master")
    return Channel(
        channel_name=str(row.get("Channel_Name") or row.get("Connection_name") or ""),
        master_host=str(row.get("Master_Host") or ""), master_port=int(row.get("Master_Port") or 0),
        io_running=str(row.get("Slave_IO_Running")) == "Yes", sql_running=str(row.get("Slave_SQL_Running")) == "Yes",
        io_state=str(row.get("Slave_IO_Running") or ""), sql_state=str(row.get("Slave_SQL_Running") or ""),
        seconds_behind_master=None if behind is None else float(behind), sql_delay=int(row.get("SQL_Delay") or 0),
        last_io_errno=int(row.get("Last_IO_Errno") or 0), last_io_error=str(row.get("Last_IO_Error") or ""),
        last_sql_errno=int(row.get("Last_SQL_Errno") or 0), last_sql_error=str(row.get("Last_SQL_Error") or ""),
        gtid_io_pos=clean_gtid(row.get("Gtid_IO_Pos") if server.mariadb else row.get("Retrieved_Gtid_Set")),
        gtid_executed=gtid.slave_pos if server.mariadb else clean_gtid(row.get("Executed_Gtid_Set")),
        using_gtid=str((row.get("Using_Gtid") if server.mariadb else row.get("Auto_Position")) or ""),
    )


def _channel_labels(row: dict[str, Any]) -> tuple[str, ...]:
    return (str(row.get("Channel_Name") or ""), str(row.get("Connection_name") or ""),
            str(row.get("Master_Host") or ""), str(row.get("Master_UUID") or ""))


def replication_families(rows: list[dict[str, Any]], channels: list[Channel]) -> list[MetricFamily]:
    """mysqld_exporter's slave_status: every numeric (or Yes/No) column as ``mysql_slave_status_<column>``."""
    families: dict[str, MetricFamily] = {}
    errors = info("dbwatch_mysql_slave_status_last_error", "The last replication error of a channel's IO or SQL "
                  "thread (present only while there is one).", (*CHANNEL_LABELS, "thread", "errno", "error"))
    received = gauge("dbwatch_mysql_slave_status_gtid_received",
                     "Highest GTID sequence number received per GTID domain (MariaDB) or source UUID (MySQL).",
                     (*CHANNEL_LABELS, "domain"))
    for raw, channel in zip(rows, channels):
        row = normalise_channel_row(raw)
        labels = _channel_labels(row)
        for column, raw_value in row.items():
            name = metric_name(column)
            if name in _CHANNEL_TEXT:
                continue
            if name in ("slave_io_running", "slave_sql_running"):
                value: float | None = 1.0 if str(raw_value) == "Yes" else 0.0
            else:
                value = parse_value(raw_value)
            if value is None:
                continue
            fam = families.get(name)
            if fam is None:
                fam = families[name] = gauge(f"mysql_slave_status_{name}", "Generic metric from SHOW SLAVE STATUS.",
                                             CHANNEL_LABELS)
            fam.add(labels, value)
        for thread, errno, error in (("io", channel.last_io_errno, channel.last_io_error),
                                     ("sql", channel.last_sql_errno, channel.last_sql_error)):
            if errno:
                errors.add((*labels, thread, errno, fold(error, _ERROR_TEXT_LENGTH)), 1)
        for domain, seq in gtid_positions(channel.gtid_io_pos).items():
            received.add((*labels, domain), seq)
    return [*families.values(), errors, received]


def gtid_families(gtid: Gtid) -> list[MetricFamily]:
    executed = gauge("dbwatch_mysql_gtid_executed",
                     "Highest GTID sequence number this server has applied, per GTID domain (MariaDB "
                     "@@gtid_current_pos) or source UUID (MySQL @@gtid_executed).", ("domain",))
    for domain, seq in gtid_positions(gtid.executed).items():
        executed.add((domain,), seq)
    return [executed]


def gtid_positions(text: str) -> dict[str, int]:
    """MariaDB ``0-1-42,1-3-7`` -> {"0": 42, "1": 7}; MySQL ``uuid:1-42:50-60`` -> {"uuid": 60}."""
    positions: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        if ":" in item:
            source, *intervals = item.split(":")
            ends = [int(part.split("-")[-1]) for part in intervals if part.split("-")[-1].isdigit()]
            if ends:
                positions[source] = max(ends + [positions.get(source, 0)])
            continue
        parts = item.split("-")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            positions[parts[0]] = max(int(parts[2]), positions.get(parts[0], 0))
    return positions


def heartbeat_families(heartbeat: Heartbeat) -> list[MetricFamily]:
    labels = (str(heartbeat.server_id),)
    stored = gauge("mysql_heartbeat_stored_timestamp_seconds",
                   "Timestamp stored in the heartbeat table.", ("server_id",))
    stored.add(labels, heartbeat.stored)
    now = gauge("mysql_heartbeat_now_timestamp_seconds", "Timestamp of the current server.", ("server_id",))
    now.add(labels, heartbeat.now)
    lag = gauge("dbwatch_mysql_heartbeat_lag_seconds",
                "now - stored heartbeat: true replication delay, also while the replica is stopped.", ("server_id",))
    lag.add(labels, heartbeat.lag_seconds)
    return [stored, now, lag]


def clean_gtid(value: Any) -> str:
    """A GTID set as one line (MySQL breaks long sets over lines)."""
    return re.sub(r"\s+", "", str(value or ""))


_SPACE = re.compile(r"\s+")


def fold(text: Any, limit: int = 1000) -> str | None:
    if text is None:
        return None
    folded = _SPACE.sub(" ", str(text)).strip()
    return folded if len(folded) <= limit else folded[: max(0, limit - 1)] + "…"
