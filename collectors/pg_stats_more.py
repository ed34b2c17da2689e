"""The rest of postgres_exporter's default and commonly enabled collectors that the server-wide
collector (:mod:`dbwatch.collectors.postgres`) does not already cover, under their names.

- pg_stat_database's later columns: ``pg_stat_database_{sessions, session_time, active_time,
  idle_in_transaction_time, sessions_abandoned, sessions_fatal, sessions_killed}`` (14+, ms as the view
  gives them, as the exporter's default metrics do), ``pg_stat_database_active_time_seconds_total`` (its
  newer collector's name), ``checksum_failures``/``checksum_last_failure`` (12+), ``stats_reset``;
- ``pg_stat_database_conflicts_confl_*``; ``pg_stat_bgwriter_stats_reset_total``; ``pg_stat_checkpointer_*``
  (17+); ``pg_stat_wal_*`` (14+); ``dbwatch_pg_stat_io_*`` (16+);
- ``pg_stat_progress_vacuum_*`` and dbwatch's ``dbwatch_pg_progress_{create_index,analyze}_*``;
- ``pg_replication_slot_*`` (the exporter's replication_slot collector: WAL positions, active,
  safe_wal_size, wal_status); ``pg_wal_segments``, ``pg_wal_size_bytes``, and
  ``dbwatch_pg_wal_position_bytes`` (rate() of it is the WAL write rate).

Each view is read with one query on the target's session; rows are few (one per database, slot, backend
type or running command).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dbwatch.collectors import pg_stats_more_sql as sql
from dbwatch.collectors.base import Collector
from dbwatch.collectors.pg_batch import fetch_batch
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model import MetricFamily, MetricType, Snapshot
from dbwatch.model.options import CollectorOptions

__all__ = ["MoreStatsCollector", "VACUUM_PHASES"]

#: pg_stat_progress_vacuum's phases in the server's order; the exporter exports each as 0 or 1
VACUUM_PHASES = ("initializing", "scanning heap", "vacuuming indexes", "vacuuming heap", "cleaning up indexes",
                 "truncating heap", "performing final cleanup")

C, G = MetricType.COUNTER, MetricType.GAUGE
Spec = Mapping[str, tuple[str, MetricType, str]]  # column -> (family, type, help)

_DB = ("datid", "datname")
DATABASE_EXTRA: Spec = {
    "checksum_failures": ("pg_stat_database_checksum_failures", C, "Data page checksum failures in this database"),
    "checksum_last_failure": ("pg_stat_database_checksum_last_failure", G,
                              "Time of the last checksum failure in this database (Unix time; 0 = never)"),
    "sessions": ("pg_stat_database_sessions", C, "Total number of sessions established to this database"),
    "session_time": ("pg_stat_database_session_time", C, "Time spent by sessions of this database, in ms"),
    "active_time": ("pg_stat_database_active_time", C, "Time spent executing SQL statements in this database, in ms"),
    "idle_in_transaction_time": ("pg_stat_database_idle_in_transaction_time", C,
                                 "Time spent idling while in a transaction in this database, in ms"),
    "sessions_abandoned": ("pg_stat_database_sessions_abandoned", C,
                           "Sessions to this database terminated because the connection to the client was lost"),
    "sessions_fatal": ("pg_stat_database_sessions_fatal", C,
                       "Sessions to this database terminated by fatal errors"),
    "sessions_killed": ("pg_stat_database_sessions_killed", C,
                        "Sessions to this database terminated by operator intervention"),
    "active_time_seconds": ("pg_stat_database_active_time_seconds_total", C,
                            "Time spent executing SQL statements in this database, in seconds"),
    "stats_reset": ("pg_stat_database_stats_reset", C, "Time at which these statistics were last reset (Unix time)"),
}
CONFLICTS: Spec = {
    f"confl_{kind}": (f"pg_stat_database_conflicts_confl_{kind}", C,
                      f"Queries in this database canceled by recovery conflicts: {what}")
    for kind, what in (("tablespace", "dropped tablespaces"), ("lock", "lock timeouts"),
                       ("snapshot", "old snapshots"), ("bufferpin", "pinned buffers"), ("deadlock", "deadlocks"),
                       ("active_logicalslot", "logical slots too old"))
}
BGWRITER_RESET: Spec = {"stats_reset": ("pg_stat_bgwriter_stats_reset_total", C,
                                        "Time at which these statistics were last reset (Unix time)")}
CHECKPOINTER: Spec = {
    column: (f"pg_stat_checkpointer_{column}_total", C, f"pg_stat_checkpointer.{column}")
    for column in ("num_timed", "num_requested", "restartpoints_timed", "restartpoints_req", "restartpoints_done",
                   "write_time", "sync_time", "buffers_written", "stats_reset")
}
STAT_WAL: Spec = {
    "wal_records": ("pg_stat_wal_wal_records_total", C, "Total number of WAL records generated"),
    "wal_fpi": ("pg_stat_wal_wal_fpi", C, "Total number of WAL full page images generated"),
    "wal_bytes": ("pg_stat_wal_wal_bytes", C, "Total amount of WAL generated in bytes"),
    "wal_buffers_full": ("pg_stat_wal_wal_buffers_full", C,
                         "Number of times WAL data was written to disk because WAL buffers became full"),
    "wal_write": ("pg_stat_wal_wal_write", C, "Number of times WAL buffers were written out to disk"),
    "wal_sync": ("pg_stat_wal_wal_sync", C, "Number of times WAL files were synced to disk"),
    "wal_write_time": ("pg_stat_wal_wal_write_time", C, "Time spent writing WAL buffers to disk, in ms"),
    "wal_sync_time": ("pg_stat_wal_wal_sync_time", C, "Time spent syncing WAL files to disk, in ms"),
    "stats_reset": ("pg_stat_wal_stats_reset", C, "Time at which these statistics were last reset"),
}
IO: Spec = {
    **{column: (f"dbwatch_pg_stat_io_{column}_total", C, f"pg_stat_io.{column} (operations)")
       for column in ("reads", "writes", "extends", "hits", "evictions", "fsyncs")},
    "read_time": ("dbwatch_pg_stat_io_read_seconds_total", C, "pg_stat_io.read_time, in seconds"),
    "write_time": ("dbwatch_pg_stat_io_write_seconds_total", C, "pg_stat_io.write_time, in seconds"),
}
VACUUM: Spec = {
    "heap_blks_total": ("pg_stat_progress_vacuum_heap_blks", G,
                        "Total number of heap blocks in the table being vacuumed."),
    "heap_blks_scanned": ("pg_stat_progress_vacuum_heap_blks_scanned", G, "Number of heap blocks scanned so far."),
    "heap_blks_vacuumed": ("pg_stat_progress_vacuum_heap_blks_vacuumed", G,
                           "Number of heap blocks vacuumed so far."),
    "index_vacuum_count": ("pg_stat_progress_vacuum_index_vacuums", G, "Number of completed index vacuum cycles."),
    "max_dead_tuples": ("pg_stat_progress_vacuum_max_dead_tuples", G,
                        "Maximum number of dead tuples that can be stored before cleanup is performed."),
    "num_dead_tuples": ("pg_stat_progress_vacuum_num_dead_tuples", G, "Current number of dead tuples found so far."),
}
CREATE_INDEX: Spec = {
    column: (f"dbwatch_pg_progress_create_index_{column}", G, f"pg_stat_progress_create_index.{column}")
    for column in ("blocks_total", "blocks_done", "tuples_total", "tuples_done")
}
ANALYZE: Spec = {
    column: (f"dbwatch_pg_progress_analyze_{column}", G, f"pg_stat_progress_analyze.{column}")
    for column in ("sample_blks_total", "sample_blks_scanned")
}
SLOTS: Spec = {
    "current_wal_lsn": ("pg_replication_slot_slot_current_wal_lsn", G, "current wal lsn value"),
    "confirmed_flush_lsn": ("pg_replication_slot_slot_confirmed_flush_lsn", G,
                            "last lsn confirmed flushed to the replication slot"),
    "active": ("pg_replication_slot_slot_is_active", G, "whether the replication slot is active or not"),
    "safe_wal_size": ("pg_replication_slot_safe_wal_size_bytes", G,
                      "number of bytes that can be written to WAL such that this slot is not in danger of "
                      "getting in state lost"),
}
WAL: Spec = {
    "position": ("dbwatch_pg_wal_position_bytes", G,
                 "WAL position (written on a primary, replayed on a standby) in bytes since 0/0"),
    "segments": ("pg_wal_segments", G, "Number of WAL segments"),
    "size": ("pg_wal_size_bytes", G, "Total size of WAL segments"),
}
PHASE = ("pg_stat_progress_vacuum_phase", "Current vacuum phase (1 = active, 0 = inactive). Label 'phase' is "
         "human-readable.")
WAL_STATUS = ("pg_replication_slot_wal_status", "availability of WAL files claimed by this slot")

#: the batch's queries (pg_stats_more_sql.stats_batch) in the order their families are exported: name, labels, spec
_TABLES: tuple[tuple[str, tuple[str, ...], Spec], ...] = (
    ("database_extra", _DB, DATABASE_EXTRA), ("conflicts", _DB, CONFLICTS), ("bgwriter_reset", (), BGWRITER_RESET),
    ("checkpointer", (), CHECKPOINTER), ("stat_wal", (), STAT_WAL), ("io", ("backend_type", "object", "context"), IO),
    ("vacuum", ("datname", "relname"), VACUUM), ("create_index", ("datname", "relname", "command", "phase"), CREATE_INDEX),
    ("analyze", ("datname", "relname", "phase"), ANALYZE), ("slots", ("slot_name", "slot_type"), SLOTS),
    ("wal_position", (), WAL), ("wal_files", (), WAL),
)


class MoreStatsCollector(Collector[PostgresSession, CollectorOptions]):
    """pg_stat_database's later columns, conflicts, checkpointer, WAL, I/O, progress, slots, WAL files."""

    name = "stats"
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            version = (await session.connected_server()).version_num
            rows = await fetch_batch(session, sql.stats_batch(version))  # one round trip (collectors/pg_batch.py)
            if rows["wal_files_allowed"][0]["allowed"]:
                rows["wal_files"] = [dict(row) for row in await session.run(sql.WAL_FILES)]
        out = _Families()
        for name, labels, spec in _TABLES:
            if name in rows:
                out.table(rows[name], labels, spec)
        vacuums, slots = rows["vacuum"], rows["slots"]
        out.one_hot(vacuums, ("datname", "relname"), "phase", VACUUM_PHASES, *PHASE)
        out.labelled(slots, ("slot_name", "slot_type"), "wal_status", *WAL_STATUS)
        snapshot.families.extend(out.families())


class _Families:
    """Families by name, created on first sample; only families with samples are exported."""

    def __init__(self) -> None:
        self._by_name: dict[str, MetricFamily] = {}

    def family(self, name: str, kind: MetricType, help: str, labels: Sequence[str]) -> MetricFamily:
        family = self._by_name.get(name)
        if family is None:
            family = self._by_name[name] = MetricFamily(name, kind, help, tuple(labels))
        return family

    def table(self, rows: Iterable[Mapping[str, Any]], labels: Sequence[str], spec: Spec) -> None:
        for row in rows:
            key = tuple("" if row[label] is None else str(row[label]) for label in labels)
            for column, (name, kind, help) in spec.items():
                value = row.get(column)
                # The exporter reports a slot's confirmed flush position only while the slot is active.
                if value is None or (column == "confirmed_flush_lsn" and not row.get("active")):
                    continue
                self.family(name, kind, help, labels).samples.append((key, float(value)))  # JSON: "NaN" too

    def one_hot(self, rows: Iterable[Mapping[str, Any]], labels: Sequence[str], column: str,
                values: Sequence[str], name: str, help: str) -> None:
        family = self.family(name, G, help, (*labels, column))
        for row in rows:
            key = tuple(str(row[label]) for label in labels)
            for value in values:
                family.samples.append(((*key, value), float(row[column] == value)))

    def labelled(self, rows: Iterable[Mapping[str, Any]], labels: Sequence[str], column: str, name: str,
                 help: str) -> None:
        family = self.family(name, G, help, (*labels, column))
        for row in rows:
            if row.get(column) is not None:
                family.samples.append(((*(str(row[label]) for label in labels), str(row[column])), 1.0))

    def families(self) -> list[MetricFamily]:
        return [family for family in self._by_name.values() if family.samples]
