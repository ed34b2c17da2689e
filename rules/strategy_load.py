"""Strategy findings about load: read replicas and a connection pooler (docs/architecture-advice.md)."""

from __future__ import annotations

from collections.abc import Iterable

from dbwatch.model import Finding
from dbwatch.model.facts.workload_profile import OTHER, WorkloadProfile
from dbwatch.rules.engine import TargetView
from dbwatch.rules.strategy_common import StrategyRule, per_second, server_cpu, strategy_finding

__all__ = ["ReadReplicasRule", "ConnectionPoolerRule"]

#: what makes a read statement unfit for a replica: it locks rows, or changes session state
_PRIMARY_ONLY = frozenset({"for_update", "session_state"})


class ReadReplicasRule(StrategyRule):
    """Most statement time is reads and the server is busy: replicas would take the reads."""

    name = "ReadReplicasAdvised"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        if profile.read_only_replica or not len(profile) or profile.statements_since_seconds <= 0:
            return
        # the application's reads and writes: maintenance (VACUUM, DDL) and statements on no table of the
        # application's (dbwatch's own catalog reads, an admin's) would not move to a replica either way
        mine = [s for s in profile if s.tables and s.kind != OTHER]
        seconds = sum(s.seconds for s in mine)
        movable = [s for s in mine if s.reads and not _PRIMARY_ONLY.intersection(s.features)]
        read_seconds = sum(s.seconds for s in movable)
        share = read_seconds / seconds if seconds > 0 else 0.0
        busy = seconds / profile.statements_since_seconds
        min_share = profile.threshold("replica_min_read_share", 0.8)
        min_busy = profile.threshold("replica_min_busy", 0.5)
        if share < min_share or busy < min_busy:
            return
        top = sorted(movable, key=lambda s: -s.seconds)[:10]
        # the server's CPU, when it runs beside the agent: busy backends on a busy CPU is load a replica takes;
        # on an idle CPU they wait on I/O or locks, which a replica relieves less surely than an index or a cache
        cpu = server_cpu(view)
        cpu_busy = cpu is not None and cpu[0] >= profile.threshold("replica_min_cpu", 0.5)
        cpu_idle = cpu is not None and cpu[0] < profile.threshold("replica_idle_cpu", 0.2)
        cpu_text = "" if cpu is None else (
            f" The server's processes used {cpu[0]:.0%} of the machine's {cpu[1]} CPUs ({cpu[2]})"
            + (": the reads wait on I/O or locks more than on CPU." if cpu_idle else "."))
        evidence = {"read_time_share": round(share, 4), "busy_backends": round(busy, 3),
                    "statement_seconds": round(seconds, 3), "since_seconds": round(profile.statements_since_seconds),
                    "replicas_now": profile.replicas,
                    "server_cpu_share": round(cpu[0], 4) if cpu else None, "cpus": cpu[1] if cpu else None,
                    "cpu_basis": cpu[2] if cpu else "unknown: the server does not run beside the agent",
                    "replica_statements": [{"query": s.query, "calls": s.calls, "seconds": round(s.seconds, 3)}
                                           for s in top],
                    "primary_only_reads": [s.query for s in mine if s.reads
                                           and _PRIMARY_ONLY.intersection(s.features)][:10]}
        yield strategy_finding(
            self.name, view, f"{share:.0%} of statement time is reads that a replica could serve, "
            f"{busy:.2f} backends busy on average",
            observed=f"read statements without row locks or session state took {read_seconds:.1f} s of "
            f"{seconds:.1f} s of statement time ({share:.0%}) over {profile.statements_since_seconds:.0f} s, "
            f"{busy:.2f} statements running on average; {profile.replicas} replica(s) attached now.{cpu_text}",
            action=("send the listed statements to a streaming replica (a read-only connection string or a "
                    "router such as pgpool/ProxySQL), keeping writes and read-your-writes paths on the primary."
                    if profile.replicas == 0 else
                    "the replicas exist: route the listed statements to them instead of the primary."),
            cost="a server per replica, replication lag seen by readers (ms to s), and routing in the "
            "application; long reads on a replica conflict with vacuum (hot_standby_feedback or cancellations).",
            wrong_when="the busy time is one slow query that an index fixes (see the index advice first), or "
            "readers must see their own writes at once.",
            confidence=(0.7 if busy >= 2 * min_busy else 0.55) + (0.1 if cpu_busy else -0.15 if cpu_idle else 0.0),
            labels={}, evidence=evidence,
            impact=min(0.5, busy / 10))


class ConnectionPoolerRule(StrategyRule):
    """Connection churn (many short sessions) or many idle connections: a pooler in front."""

    name = "ConnectionPoolerAdvised"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        c = profile.connections
        if c is None:
            return
        rate = per_second(c.sessions, profile) if c.sessions is not None else 0.0
        churn = (c.sessions is not None and rate >= profile.threshold("pooler_min_sessions_per_second", 1.0)
                 and c.session_seconds is not None
                 and c.session_seconds <= profile.threshold("pooler_max_session_seconds", 60.0))
        idle_share = (c.idle + c.idle_in_transaction) / c.max_connections if c.max_connections else 0.0
        idle = idle_share >= profile.threshold("pooler_min_idle_share", 0.5)
        if not churn and not idle:
            return
        session_bound = sorted({f"{s.query[:80]}" for s in profile if "session_state" in s.features})[:10]
        mode = "session" if session_bound else "transaction"
        reason = []
        if churn:
            reason.append(f"{c.sessions} sessions opened in {profile.since_seconds:.0f} s ({rate:.1f}/s), lasting "
                          f"{c.session_seconds:.2f} s on average: each costs a process fork and authentication")
        if idle:
            reason.append(f"{c.idle} idle and {c.idle_in_transaction} idle-in-transaction connections of "
                          f"{c.max_connections} allowed ({idle_share:.0%})")
        evidence = {"sessions": c.sessions, "sessions_per_second": round(rate, 3),
                    "average_session_seconds": round(c.session_seconds, 3) if c.session_seconds is not None else None,
                    "connections": c.total, "idle": c.idle, "idle_in_transaction": c.idle_in_transaction,
                    "max_connections": c.max_connections, "pool_mode": mode,
                    "session_state_statements": session_bound,
                    "rows_written_per_transaction": round(profile.rows_per_transaction, 2)
                    if profile.rows_per_transaction is not None else None}
        pooler = "PgBouncer" if view.engine == "postgres" else "ProxySQL"
        yield strategy_finding(
            self.name, view, f"{' and '.join(w for w, on in (('connection churn', churn), ('idle connections', idle)) if on)}"
            f": a pooler ({pooler}, "
            f"pool_mode={mode}) in front",
            observed="; ".join(reason) + ".",
            action=f"put {pooler} between the application and the server with pool_mode={mode}"
            + (" (statements that keep session state were seen: SET, LISTEN, advisory locks, temporary tables or "
               "PREPARE; transaction pooling would break them)" if session_bound else
               " (no statement that keeps session state was seen)")
            + ", and a pool a few times the CPU count.",
            cost="one more hop (tens of microseconds) and a process to run; in transaction mode, session "
            "features (SET, LISTEN, session advisory locks, protocol-level prepared statements before "
            "PgBouncer 1.21) do not survive between transactions.",
            wrong_when="the application already pools connections (the churn is a cron job's), or the idle "
            "connections are a pool's deliberate minimum.",
            confidence=0.75 if churn and idle else 0.6, labels={}, evidence=evidence,
            impact=min(0.4, rate / 50 + idle_share / 4))
