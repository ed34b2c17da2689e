"""One target's page: what the agent holds about it, as plain JSON-ready data (the template and
``/api/v1/targets/{name}`` both show this).

Every section reads facts from the target's latest snapshots, so an engine or collector the target does not
have leaves its section empty (the page says so) instead of failing.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from dbwatch.agent.alerting import finding_json
from dbwatch.agent.console.fleet import key_numbers
from dbwatch.agent.console.history import statement_key
from dbwatch.agent.console.sources import Sources, fact, facts
from dbwatch.collectors.migrations_common import statement_label
from dbwatch.model import AlertState, MetricFamily, Snapshot
from dbwatch.model.facts.backup import BackupStatuses
from dbwatch.model.facts.common import ReplicationLink
from dbwatch.model.facts.mongodb import MongoLongOps
from dbwatch.model.facts.mysql import Activity as MySQLActivity, Channels
from dbwatch.model.facts.postgres import Activity as PgActivity, Replicas, Slots
from dbwatch.model.facts.restore import RestoreDrills
from dbwatch.model.facts.slowlog import SlowClasses
from dbwatch.model.facts.statements import Statements

__all__ = ["TOP_STATEMENTS", "target_detail"]

TOP_STATEMENTS = 25
#: metric families shown as "migrations in progress" (the migrations collectors': collectors/catalog_migrations.py)
MIGRATION_FAMILIES = ("dbwatch_migration_ddl_info", "dbwatch_migration_blocking_queries",
                      "dbwatch_migration_progress_ratio", "dbwatch_migration_osc_progress_ratio",
                      "dbwatch_migration_osc_rows", "dbwatch_migration_invalid_index")
#: who blocks whom: the lock queues the PostgreSQL and MySQL collectors export
LOCK_FAMILIES = ("dbwatch_migration_ddl_info", "dbwatch_migration_blocking_queries", "pg_locks_count")


def target_detail(sources: Sources, name: str, now: float | None = None) -> dict[str, Any] | None:
    """Everything the target page shows, or None for a target not watched here."""
    target = sources.targets().get(name)
    if target is None:
        return None
    now = time.time() if now is None else now
    snapshots = sources.latest(name)
    alerts = [a for a in sources.alerts() if a.target == name and a.state != AlertState.RESOLVED]
    return {
        "name": name,
        "engine": target.engine,
        "labels": dict(target.labels),
        "up": sources.up(name),
        "version": next((s.version for s in snapshots if s.version), None),
        **key_numbers(snapshots),
        "collectors": [_collector(s) for s in sorted(snapshots, key=lambda s: s.collector)],
        "alerts": [{"name": a.name, "state": str(a.state), "severity": a.severity, "labels": a.labels,
                    "summary": a.annotations.get("summary", ""), "active_since": a.active_since,
                    "fired_at": a.fired_at, "fingerprint": a.fingerprint} for a in alerts],
        "statements": statements(sources, name, snapshots, now),
        "slow_classes": [_plain(c) for s in facts(snapshots, SlowClasses) for c in s][:TOP_STATEMENTS],
        "sessions": sessions(snapshots),
        "locks": _families(snapshots, LOCK_FAMILIES),
        "replication": replication(sources, name, snapshots),
        "backups": [_plain(b) for s in facts(snapshots, BackupStatuses) for b in s],
        "restore_drills": [_plain(d) | {"duration": d.duration} for s in facts(snapshots, RestoreDrills) for d in s],
        "migrations": _families(snapshots, MIGRATION_FAMILIES),
        "advice": [finding_json(f) for f in sources.recommendations(name)],
    }


def statements(sources: Sources, name: str, snapshots: list[Snapshot], now: float) -> list[dict[str, Any]]:
    """The top statements by total time since their statistics began, with the last hour per minute."""
    found = fact(snapshots, Statements)
    if not found:
        return []
    out = []
    for stmt in sorted(found, key=lambda s: s.total_time_seconds, reverse=True)[:TOP_STATEMENTS]:
        key = statement_key(stmt)
        out.append({
            "key": key, "queryid": str(stmt.queryid), "user": stmt.user, "database": stmt.datname,
            "query": stmt.query, "calls": stmt.calls, "total_seconds": stmt.total_time_seconds,
            "mean_ms": 1000 * stmt.total_time_seconds / stmt.calls if stmt.calls else None,
            "interval_calls": stmt.delta_calls, "interval_seconds": stmt.delta_time_seconds,
            "last_hour": sources.history.sparkline(name, key, now),
        })
    return out


def sessions(snapshots: list[Snapshot]) -> dict[str, Any]:
    """Sessions as the main collector counted them, and the long-running ones it named."""
    out: dict[str, Any] = {}
    pg = fact(snapshots, PgActivity)
    if pg is not None:
        out["summary"] = {"connections": pg.connections, **{f"state {k}": v for k, v in sorted(pg.by_state.items())},
                          "longest transaction (s)": round(pg.oldest_xact_seconds, 1),
                          "longest query (s)": round(pg.oldest_query_seconds, 1),
                          "longest idle in transaction (s)": round(pg.oldest_idle_in_xact_seconds, 1),
                          "waiting on locks": pg.waiting_on_locks}
    my = fact(snapshots, MySQLActivity)
    if my is not None:
        out["summary"] = {"connections": my.connections, "running": my.running,
                          "longest query (s)": round(my.oldest_query_seconds, 1)}
        # processlist ids: what the console's cancel and terminate actions take on MySQL/MariaDB
        out["long"] = [{"id": q.id, "user": q.user, "host": q.host, "db": q.db, "state": q.state or q.command,
                        "seconds": q.seconds, "query": statement_label(q.query, 1000) if q.query else None,
                        "signalable": True} for q in my.longest]
    mongo = fact(snapshots, MongoLongOps)
    if mongo:
        out["long"] = [{"id": o.opid, "user": o.client, "host": o.app_name, "db": o.ns, "state": o.op,
                        "seconds": o.seconds_running, "query": o.description} for o in mongo]
    return out


def replication(sources: Sources, name: str, snapshots: list[Snapshot]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    link = fact(snapshots, ReplicationLink)
    if link is not None:
        out["link"] = _plain(link)
    replicas = fact(snapshots, Replicas)
    if replicas:
        out["replicas"] = [_plain(r) for r in replicas]
    slots = fact(snapshots, Slots)
    if slots:
        out["slots"] = [_plain(s) for s in slots]
    channels = fact(snapshots, Channels)
    if channels:
        out["channels"] = [_plain(c) for c in channels]
    for cluster in sources.clusters():
        if name in cluster.get("members", {}):
            out["cluster"] = {**cluster, "candidate": failover_candidate(cluster)}
    return out


def failover_candidate(cluster: dict[str, Any]) -> str | None:
    """The member a failover would promote now: a reachable replica with its link up, least behind."""
    ranked = sorted(
        (m.get("lag_bytes") if m.get("lag_bytes") is not None else float("inf"), name)
        for name, m in cluster.get("members", {}).items()
        if m.get("role") != "primary" and m.get("reachable") and m.get("link_up") is not False)
    return ranked[0][1] if ranked else None


def _collector(snapshot: Snapshot) -> dict[str, Any]:
    return {"name": snapshot.collector, "ok": snapshot.ok, "error": snapshot.error,
            "at": snapshot.started_at, "duration": snapshot.duration, "notes": list(snapshot.notes)}


def _families(snapshots: list[Snapshot], names: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for snapshot in snapshots:
        if not snapshot.ok:
            continue
        for wanted in names:
            family: MetricFamily | None = snapshot.family(wanted)
            if family is not None and family.samples:
                shown = [(labels, value) for labels, value in family.samples if value][:50]  # a queue of 0 is none
                if shown:
                    out.append({"metric": family.name, "help": family.help,
                                "samples": [{"labels": dict(zip(family.labelnames, labels)), "value": value}
                                            for labels, value in shown]})
    return out


def _plain(value: Any) -> dict[str, Any]:
    return dataclasses.asdict(value)
