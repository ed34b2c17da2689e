"""The replication and HA review's PostgreSQL collector: the settings that decide what a failover loses
(facts: :class:`~dbwatch.model.facts.ha_review.HaSettings`). One catalog query; on demand in
``dbwatch advise`` and hourly when enabled."""

from __future__ import annotations

from dbwatch.model import Snapshot
from dbwatch.model.facts.ha_review import HaSettings
from dbwatch.collectors.base import Collector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model.options import CollectorOptions

__all__ = ["PgHaReviewCollector", "SETTINGS"]

SETTINGS = ("synchronous_commit", "synchronous_standby_names", "max_slot_wal_keep_size", "hot_standby_feedback",
            "archive_mode", "archive_command", "archive_library", "wal_level", "max_wal_senders",
            "max_standby_streaming_delay", "wal_keep_size", "fsync")

QUERY = """
SELECT pg_is_in_recovery() AS in_recovery,
       (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming') AS replicas,
       (SELECT coalesce(json_object_agg(name, CASE WHEN unit IS NULL OR setting = '-1' THEN setting
                                                  ELSE setting || unit END), '{}')::text
        FROM pg_settings WHERE name = ANY($1::text[])) AS settings"""


class PgHaReviewCollector(Collector[PostgresSession, CollectorOptions]):
    name = "ha"
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        import json

        async with self.session.lock:
            [row] = await self.session.run(QUERY, list(SETTINGS))
        snapshot.put(HaSettings(engine="postgres", in_recovery=bool(row["in_recovery"]),
                                replicas_connected=int(row["replicas"]), settings=json.loads(row["settings"])))
