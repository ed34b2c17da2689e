"""The replication and HA review (``dbwatch advise --section ha``): for each target, what a failover (or a
restart) would lose or leave unavailable, stated plainly, from the replication state the main collectors read
and the settings the ``ha`` collector adds (:class:`~dbwatch.model.facts.ha_review.HaSettings`).

A statement is offered only where it cannot stop writes on its own: synchronous replication is offered as
``ANY 1 (...)`` over two or more streaming standbys, never over a single one (one standby down would stall
every commit). docs/architecture-advice.md, "Replication and HA review", lists each finding and its evidence.
"""

from __future__ import annotations

from typing import Any, Iterable

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.ha_review import HaSettings
from dbwatch.model.facts.mongodb import MongoReplSet
from dbwatch.model.facts.mysql import Channels
from dbwatch.model.facts.postgres import Archiver, Replicas, Slots
from dbwatch.model.facts.redis import RedisInfo
from dbwatch.rules.advice_common import quote_literal, recommend
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["make_rules", "HaReview"]

_RELOAD = "none (a reload)"


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [HaReview()]


class HaReview:
    name = "HaReview"
    engines = ("postgres", "mysql", "redis", "mongodb")

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        out: list[Finding] = []

        def add(rule: str, severity: Severity, summary: str, description: str, labels: dict[str, str],
                evidence: dict[str, Any], sql: str | None, lock: str, risk: str, impact: float) -> None:
            out.append(recommend(rule, view, severity, summary, description, labels,
                                 {**evidence, "lock": lock if sql else "none (nothing to run)",
                                  "risk": risk if sql else "low"}, sql, impact))

        if view.engine == "postgres":
            _postgres(view, add)
        elif view.engine == "mysql":
            _mysql(view, add)
        elif view.engine == "redis":
            _redis(view, add)
        elif view.engine == "mongodb":
            _mongodb(view, add)
        return out


def _postgres(view: TargetView, add: Any) -> None:
    ha = view.fact(HaSettings)
    if ha is None:
        return
    if ha.in_recovery:
        if ha.get("hot_standby_feedback") == "off":
            add("HaStandbyFeedbackOff", Severity.INFO, "hot_standby_feedback is off on this standby",
                "Queries on this standby that read rows the primary's vacuum removes are cancelled after "
                f"max_standby_streaming_delay ({ha.get('max_standby_streaming_delay')}): long reports here fail "
                "with 'canceling statement due to conflict with recovery'. Turning it on keeps them running at the "
                "cost of bloat on the primary while they run. Leave it off if this standby only serves failover.",
                {}, {"hot_standby_feedback": "off",
                     "max_standby_streaming_delay": ha.get("max_standby_streaming_delay")},
                "ALTER SYSTEM SET hot_standby_feedback = 'on';\nSELECT pg_reload_conf();", _RELOAD, "low", 0.1)
        return
    replicas = list(view.fact(Replicas) or ())
    streaming = [r for r in replicas if r.state == "streaming"]
    sync_names = ha.get("synchronous_standby_names").strip()
    commit = ha.get("synchronous_commit")
    if streaming and not sync_names:
        lag = max((r.replay_lag_bytes or 0.0 for r in streaming), default=0.0)
        names = sorted({r.application_name for r in streaming if r.application_name})
        sql = None
        if len(names) >= 2:
            listed = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
            sql = (f"ALTER SYSTEM SET synchronous_standby_names = {quote_literal(f'ANY 1 ({listed})')};\n"
                   "SELECT pg_reload_conf();")
        add("HaAsyncReplication", Severity.INFO,
            f"{len(streaming)} standby(s) replicate asynchronously: a failover loses the commits they lack",
            f"synchronous_standby_names is empty, so a commit returns before any standby has it. If this primary "
            f"fails now, the promoted standby lacks up to {lag:.0f} bytes of committed WAL (its replay lag); those "
            "transactions are lost although their clients saw them commit. "
            + ("ANY 1 over the standbys makes each commit wait for one of them (a round trip to the nearest), and "
               "writes go on while at least one is up." if sql else
               ("With a single standby, synchronous replication would stop every commit while that standby is "
                "down, so none is offered: add a second standby first, or accept the loss window."
                if len(streaming) < 2 else
                f"The standbys do not have distinct application_name values ({', '.join(names) or 'none'}): give "
                "each its own in primary_conninfo first, so that synchronous_standby_names can name them.")),
            {}, {"standbys": len(streaming), "application_names": names, "max_replay_lag_bytes": lag,
                 "synchronous_commit": commit},
            sql, _RELOAD + "; each commit then waits for one standby's flush", "medium", 0.3)
    if sync_names:
        synced = [r for r in streaming if r.sync_state in ("sync", "quorum")]
        if not synced and commit not in ("local", "off"):
            add("HaSyncStandbyMissing", Severity.CRITICAL,
                "synchronous_standby_names is set but no synchronous standby is connected",
                f"synchronous_standby_names = {sync_names!r} and no streaming standby matches it, so every commit "
                "waits forever (sessions hang in SyncRep): writes are unavailable now. Bring the standby back, or "
                "clear the setting and accept asynchronous replication until it returns.",
                {}, {"synchronous_standby_names": sync_names, "standbys": [r.application_name for r in streaming]},
                "ALTER SYSTEM SET synchronous_standby_names = '';\nSELECT pg_reload_conf();  -- only while the "
                "standby is away: commits stop waiting, and a failover meanwhile loses what it lacks",
                _RELOAD + "; waiting commits complete at once", "medium", 0.9)
        if commit in ("local", "off"):
            add("HaSyncCommitLocal", Severity.WARNING,
                f"synchronous_commit = {commit} defeats synchronous_standby_names",
                f"With synchronous_commit = {commit} commits do not wait for the standby named in "
                f"synchronous_standby_names ({sync_names!r}): the standby is synchronous in name only, and a "
                "failover loses what it had not received" + (", and a crash of this server loses its last commits "
                                                               "too" if commit == "off" else "") + ".",
                {}, {"synchronous_commit": commit, "synchronous_standby_names": sync_names},
                "ALTER SYSTEM SET synchronous_commit = 'on';\nSELECT pg_reload_conf();",
                _RELOAD + "; commits then wait for the synchronous standby", "medium", 0.4)
    slots = list(view.fact(Slots) or ())
    if slots and ha.get("max_slot_wal_keep_size") in ("-1", ""):
        retained = max(s.retained_bytes for s in slots)
        inactive = [s.slot_name for s in slots if not s.active]
        add("HaSlotsUnbounded", Severity.WARNING if inactive else Severity.INFO,
            f"{len(slots)} replication slot(s) with no max_slot_wal_keep_size",
            "A slot keeps every WAL segment its consumer has not confirmed; with max_slot_wal_keep_size = -1 a "
            "consumer that stops (" + (f"{', '.join(inactive)} is inactive now" if inactive else "none is now")
            + f"; the largest slot retains {retained:.0f} bytes) fills pg_wal until the primary stops: then "
            "everything is unavailable. A limit invalidates the slot instead; that consumer then needs a new base "
            "backup. Size the limit above the longest outage a standby should survive.",
            {}, {"slots": [s.slot_name for s in slots], "inactive": inactive, "max_retained_bytes": retained},
            f"ALTER SYSTEM SET max_slot_wal_keep_size = '{max(10240, int(retained * 4 / 1024**2) + 1)}MB';\n"
            "SELECT pg_reload_conf();", _RELOAD + "; a consumer further behind loses its slot", "medium", 0.4)
    archive_mode = ha.get("archive_mode")
    archiver = view.fact(Archiver)
    command = "" if ha.get("archive_command").strip() in ("", "(disabled)") else ha.get("archive_command").strip()
    command = command or ha.get("archive_library").strip()
    if archive_mode == "off" or not command:
        add("HaNoPitr", Severity.INFO, "no WAL archive: no point-in-time recovery",
            f"archive_mode = {archive_mode}" + ("" if command else ", no archive_command or archive_library")
            + ": the only recovery points are the base backups themselves. A mistaken DELETE or DROP replicates to "
            "every standby at once, so a failover does not undo it; without archived WAL everything since the last "
            "backup is lost. Archive WAL (pgBackRest, Barman, WAL-G: archive_mode = on needs a restart).",
            {}, {"archive_mode": archive_mode, "archive_command_set": bool(command)}, None, "", "low", 0.3)
    elif archiver is not None and archiver.failing:
        add("HaPitrBroken", Severity.WARNING, "WAL archiving is failing: the PITR window stops at the last archived "
            "segment", "pg_stat_archiver's last failure is newer than its last success: recovery can only reach "
            "the last archived WAL, and pg_wal grows until archiving succeeds again.",
            {}, {"failed_count": archiver.failed_count, "last_archive_age": archiver.last_archive_age},
            None, "", "low", 0.5)


def _on(value: str) -> bool:
    return value.upper() in ("ON", "1", "YES", "TRUE")


def _mysql(view: TargetView, add: Any) -> None:
    ha = view.fact(HaSettings)
    channels = list(view.fact(Channels) or ())
    for ch in channels:
        if ch.using_gtid.strip().lower() in ("no", "0", ""):
            add("HaReplicaWithoutGtid", Severity.INFO,
                f"replication from {ch.master_host}:{ch.master_port} uses binary-log positions, not GTIDs",
                "A replica that follows file/position cannot be repointed at another server after a failover "
                "without finding the matching position by hand; with GTIDs it continues where it stopped.",
                {"channel": ch.channel_name}, {"using_gtid": ch.using_gtid, "master_host": ch.master_host},
                None, "", "low", 0.2)
    if ha is None:
        return
    if channels and ha.get("read_only").upper() in ("OFF", "0"):
        add("HaReplicaWritable", Severity.WARNING, "a replica that accepts writes (read_only = OFF)",
            "Writes made here directly are not on its source: the replica drifts, replication can stop on a "
            "duplicate key, and a failover to it (or from it) carries or loses those rows. read_only keeps "
            "ordinary users out (replication and SUPER/READ_ONLY ADMIN users still write).",
            {}, {"read_only": ha.get("read_only"), "sources": [f"{c.master_host}:{c.master_port}" for c in channels]},
            "SET GLOBAL read_only = ON;  -- persist it in the option file",
            "none; sessions writing to this replica get an error from then on", "medium", 0.4)
    semi_on = _on(ha.get("rpl_semi_sync_master_enabled")) or _on(ha.get("rpl_semi_sync_source_enabled"))
    if ha.replicas_connected > 0 and not semi_on:
        mariadb = "rpl_semi_sync_master_enabled" in ha.settings
        add("HaAsyncReplication", Severity.INFO,
            f"{ha.replicas_connected} replica(s) replicate asynchronously: a failover loses what they lack",
            "Semi-synchronous replication is off, so a commit returns before any replica has received it; if this "
            "server fails, the promoted replica lacks the transactions still in flight, and their clients saw them "
            "commit. Semi-sync makes each commit wait for one replica's receipt (falling back to asynchronous after "
            "its timeout, so writes never stop for long); the replicas must enable their side too."
            + ("" if mariadb else " On MySQL the semisync plugins must be installed first."),
            {}, {"replicas_connected": ha.replicas_connected, "semi_sync": False},
            "-- first on each replica: SET GLOBAL rpl_semi_sync_slave_enabled = ON; STOP SLAVE IO_THREAD; "
            "START SLAVE IO_THREAD;\nSET GLOBAL rpl_semi_sync_master_enabled = ON;"
            if mariadb else None, "none; new commits wait for one replica's receipt, and with no semi-sync replica "
            "connected the first commit waits rpl_semi_sync_master_timeout "
            f"({ha.get('rpl_semi_sync_master_timeout') or '10000'} ms) before falling back to asynchronous",
            "low", 0.3)
    if ha.replicas_connected > 0 or channels:
        weak = {k: ha.get(k) for k in ("sync_binlog", "innodb_flush_log_at_trx_commit") if ha.get(k) not in ("1", "")}
        if weak:
            add("HaBinlogNotDurable", Severity.WARNING, "binary log or redo log not flushed at each commit",
                f"{', '.join(f'{k} = {v}' for k, v in weak.items())}: after a crash of this server its binary log "
                "or data can lack transactions a replica already applied, so it cannot rejoin without a rebuild, "
                "and commits clients saw succeed are lost on it.", {}, weak,
                "\n".join(f"SET GLOBAL {k} = 1;" for k in weak), "none (each commit then flushes: more fsyncs)",
                "low", 0.3)


def _redis(view: TargetView, add: Any) -> None:
    info = view.fact(RedisInfo)
    if info is None or info.role != "master" or info.connected_replicas == 0 or info.rdb_save_schedule is None:
        return
    if info.rdb_save_schedule.strip() == "" and not info.aof_enabled:
        add("HaRedisPrimaryWithoutPersistence", Severity.WARNING,
            f"a primary with {info.connected_replicas} replica(s) and no persistence",
            "This primary neither snapshots (save is empty) nor appends (appendonly no). If it restarts (a crash "
            "and a supervisor bringing it back), it starts empty, its replicas resynchronise from it and empty "
            "themselves too: the whole dataset is lost everywhere. Enable AOF (or RDB), or make sure a restarted "
            "primary is never restarted automatically before a replica is promoted.",
            {}, {"connected_replicas": info.connected_replicas, "save": "", "appendonly": False},
            "CONFIG SET appendonly yes\nCONFIG REWRITE", "none (a background rewrite: fork and disk I/O for the "
            "dataset's size)", "low", 0.6)


def _mongodb(view: TargetView, add: Any) -> None:
    rs = view.fact(MongoReplSet)
    if rs is None or not rs.members:
        return
    ha = view.fact(HaSettings)
    configured = ha is not None and ha.get("voting_members") != ""
    voting = int(ha.get("voting_members")) if ha is not None and configured else len(rs.members)
    arbiters = int(ha.get("arbiters") or 0) if ha is not None else 0
    if voting % 2 == 0:
        majority = voting // 2 + 1
        add("HaMongoEvenMembers", Severity.INFO,
            f"replica set {rs.set_name} has {voting} voting members, an even number",
            f"A majority of {voting} is {majority}, so it survives only {voting - majority} failure(s), no more "
            f"than {voting - 1} members would; and a network split into two halves leaves neither with a majority: "
            "no primary, writes unavailable on both sides. Add a voting member or remove one (an arbiter adds a "
            "vote without data, but weakens majority writes)."
            + ("" if configured else " (replSetGetConfig was not read: every member is taken to vote.)"),
            {"replica_set": rs.set_name}, {"members": [m.name for m in rs.members], "voting_members": voting,
                                           "majority": majority, "votes_from": "replSetGetConfig" if configured
                                           else "assumed"}, None, "", "low", 0.3)
    if ha is None or ha.get("default_w_source") == "":
        return
    w, source = ha.get("default_w"), ha.get("default_w_source")
    effective = w or ("1" if arbiters else "majority")  # 5.0+: implicit majority, but w:1 with an arbiter (PSA)
    if effective not in ("0", "1"):
        return
    sql = None if arbiters else ('db.adminCommand({setDefaultRWConcern: 1, defaultWriteConcern: {w: "majority"}})')
    add("HaMongoWeakWriteConcern", Severity.WARNING,
        f"replica set {rs.set_name}: the default write concern is w:{effective}"
        + (" (implicit, because of an arbiter)" if not w else ""),
        f"A write acknowledged with w:{effective} is on the primary alone. If the primary fails before a secondary "
        "has replicated it, the new primary does not have it and the old one rolls it back when it rejoins: the "
        "client saw it succeed and it is gone. w:\"majority\" acknowledges only what survives a failover. "
        + ("With an arbiter, majority writes stall whenever the data-bearing secondary is down, so none is "
           "offered: replace the arbiter with a data-bearing member first." if arbiters else
           "Applications that set their own write concern keep it."),
        {"replica_set": rs.set_name}, {"default_w": effective, "source": source, "arbiters": arbiters}, sql,
        "none; writes then wait for a majority's acknowledgement (the latency of the nearest majority)", "medium",
        0.4)
