"""The settings the replication and HA review (rules/ha_review.py) reads that the engines' main collectors do
not: PostgreSQL's synchronous replication, slot limit, archiving and standby feedback; MySQL/MariaDB's GTID,
semi-synchronous replication and binary-log durability. Put by collectors/pg_ha_review.py and
collectors/mysql_ha_review.py (the on-demand ``ha`` collector); the replicas, slots and archiver themselves
come from the main collectors' facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HaSettings:
    """``settings`` as the server spells them (names lower case); ``replicas_connected``: replicas streaming
    from this server as it counts them (PostgreSQL walsenders, MySQL binlog dump threads)."""

    engine: str
    in_recovery: bool  # a PostgreSQL standby / a MySQL server with a replication channel
    replicas_connected: int
    settings: dict[str, str] = field(default_factory=dict)
    #: MySQL/MariaDB: status counters the review reads (Rpl_semi_sync_master_clients, ..), as numbers
    status: dict[str, float] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.settings.get(name, default)
