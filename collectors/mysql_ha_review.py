"""The replication and HA review's MySQL/MariaDB collector: GTID, semi-synchronous replication and binary-log
durability settings, and the replicas connected (binlog dump threads); facts:
:class:`~dbwatch.model.facts.ha_review.HaSettings`. Replication channels come from the main collector."""

from __future__ import annotations

from dbwatch.model import Snapshot
from dbwatch.model.facts.ha_review import HaSettings
from dbwatch.collectors.base import Collector
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.model.options import CollectorOptions

__all__ = ["MySQLHaReviewCollector", "VARIABLES"]

VARIABLES = ("gtid_mode", "enforce_gtid_consistency", "gtid_strict_mode", "log_bin", "sync_binlog",
             "innodb_flush_log_at_trx_commit", "binlog_format", "rpl_semi_sync_master_enabled",
             "rpl_semi_sync_slave_enabled", "rpl_semi_sync_source_enabled", "rpl_semi_sync_replica_enabled",
             "rpl_semi_sync_master_timeout", "rpl_semi_sync_source_timeout", "read_only", "log_slave_updates",
             "log_replica_updates")
STATUS = ("Rpl_semi_sync_master_clients", "Rpl_semi_sync_source_clients", "Rpl_semi_sync_master_status",
          "Rpl_semi_sync_source_status")
_IN = ", ".join(["%s"] * len(VARIABLES))
_STATUS_IN = ", ".join(["%s"] * len(STATUS))


class MySQLHaReviewCollector(Collector[MySQLSession, CollectorOptions]):
    name = "ha"
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            variables = await session.run(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({_IN})", VARIABLES)
            status = await session.run(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({_STATUS_IN})", STATUS)
            [dumps] = await session.run(
                "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%%'")
        settings = {r["Variable_name"].lower(): str(r["Value"]) for r in variables}
        numbers: dict[str, float] = {}
        for r in status:
            value = str(r["Value"])
            numbers[r["Variable_name"]] = 1.0 if value == "ON" else 0.0 if value == "OFF" else float(value or 0)
        snapshot.put(HaSettings(engine="mysql", in_recovery=False, replicas_connected=int(dumps["n"]),
                                settings=settings, status=numbers))
