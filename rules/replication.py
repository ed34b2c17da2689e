"""Replication topology and failover triggers: cluster rules over every member of a replication cluster.

- ``FailoverRecommended`` (critical): the primary failed ``probes`` consecutive probes of the agent AND every
  reachable replica, probed since, says its link to the upstream is down. Names the best candidate (reachable,
  a replica, least lag; excluded above ``maximum_lag_on_failover`` bytes, as Patroni does), with the evidence
  for every member. ``NoFailoverCandidate`` (critical) when every replica is excluded.
- ``PrimaryUnreachableFromAgent`` (warning): the agent cannot reach the primary but a replica still streams
  from it: the agent's network is not the database's, so no failover.
- ``ReplicaLagging`` (warning): a replica is more than ``maximum_lag_on_failover`` behind (no longer a
  failover candidate). ``ReplicationBroken`` (critical): a replica's link is down while its primary is up,
  with the server's error text where it keeps one. ``SplitBrainSuspected`` (critical): two writable
  primaries in one cluster.

Lag in bytes is what the replica itself reports (PostgreSQL: WAL received but not replayed): WAL the primary
wrote but never sent is unknowable once the primary is gone.
"""

from __future__ import annotations

from typing import Any, Iterable

from dbwatch.model import Finding, FindingKind, Severity
from dbwatch.rules.cluster import REPLICA, UNKNOWN, ClusterView, MemberState

__all__ = ["replication_rules", "failed_primary", "rank_candidates"]


def replication_rules(config: Any = None) -> list[Any]:
    """The catalog factory (``dbwatch.rules.replication:replication_rules``)."""
    return [FailoverRecommended(), PrimaryUnreachableFromAgent(), ReplicaLagging(), ReplicationBroken(),
            SplitBrainSuspected()]


def failed_primary(view: ClusterView) -> MemberState | None:
    """The primary the agent cannot reach, when the cluster has no reachable primary.

    A member last seen as primary; failing that (the agent started after it went down), the only member
    never reached, in a cluster whose other members are all replicas.
    """
    if view.primaries(reachable_only=True):
        return None
    down = [m for m in view.primaries() if not m.reachable and m.probed]
    if down:
        return max(down, key=lambda m: m.last_seen_at or 0.0)
    unknown = [m for m in view.members().values() if m.role == UNKNOWN and m.probed and not m.reachable]
    others = [m for m in view.members().values() if m.role != UNKNOWN]
    if len(unknown) == 1 and others:
        return unknown[0]
    return None


def rank_candidates(view: ClusterView, primary: MemberState) -> tuple[list[MemberState], dict[str, str]]:
    """Eligible replicas, best first, and why each other member is not one."""
    limit = view.settings.maximum_lag_on_failover
    eligible: list[MemberState] = []
    excluded: dict[str, str] = {}
    for member in view.members().values():
        if member.name == primary.name:
            continue
        if member.role != REPLICA:
            excluded[member.name] = f"not a replica (role {member.role})"
        elif not member.reachable:
            excluded[member.name] = "unreachable from the agent"
        elif member.link.lag_bytes is not None and member.link.lag_bytes > limit:
            excluded[member.name] = (f"lag {member.link.lag_bytes:.0f} bytes is above maximum_lag_on_failover "
                                     f"({limit} bytes)")
        else:
            eligible.append(member)
    eligible.sort(key=lambda m: (m.link.lag_bytes is None, m.link.lag_bytes or 0.0, m.link.lag_seconds or 0.0,
                                 m.name))
    return eligible, excluded


class _ClusterRule:
    name = ""
    for_ = 0.0
    keep_firing_for = 0.0

    def _finding(self, view: ClusterView, target: str, severity: Severity, summary: str, description: str,
                 labels: dict[str, str] | None = None, evidence: dict[str, Any] | None = None,
                 value: float | None = None) -> Finding:
        return Finding(rule=self.name, target=target, kind=FindingKind.ALERT, severity=severity, summary=summary,
                       description=description, labels={"cluster": view.name, **(labels or {})},
                       evidence={"cluster": view.name, "members": view.evidence(), **(evidence or {})}, value=value)


def _primary_down(view: ClusterView) -> tuple[MemberState, list[MemberState]] | None:
    """The failed primary (after ``probes`` failed probes) and the reachable replicas probed since it failed;
    None while that is not established (replica evidence older than the failure is not evidence)."""
    primary = failed_primary(view)
    if primary is None or primary.failed_probes < view.settings.probes:
        return None
    reachable = [m for m in view.replicas() if m.reachable and m.name != primary.name]
    if not reachable:
        return None
    if any((m.last_seen_at or 0.0) < (primary.down_since or 0.0) for m in reachable):
        return None
    return primary, reachable


class FailoverRecommended(_ClusterRule):
    name = "FailoverRecommended"

    def evaluate_cluster(self, view: ClusterView) -> Iterable[Finding]:
        down = _primary_down(view)
        if down is None or any(m.link.link_up for m in down[1]):
            return []
        primary = down[0]
        eligible, excluded = rank_candidates(view, primary)
        settings = view.settings
        evidence = {"primary": primary.name, "failed_probes": primary.failed_probes,
                    "probe_interval_seconds": settings.probe_interval,
                    "maximum_lag_on_failover_bytes": settings.maximum_lag_on_failover, "excluded": excluded}
        why = (f"{primary.name} failed {primary.failed_probes} consecutive probes of the agent "
               f"(last error: {primary.error or 'none'}) and every reachable replica reports its upstream gone.")
        if not eligible:
            return [Finding(
                rule="NoFailoverCandidate", target=primary.name, kind=FindingKind.ALERT, severity=Severity.CRITICAL,
                summary=f"Primary {primary.name} of cluster {view.name} is down and no replica is fit to promote",
                description=why + " Excluded: " + "; ".join(f"{k}: {v}" for k, v in sorted(excluded.items())) + ".",
                labels={"cluster": view.name}, evidence={"cluster": view.name, "members": view.evidence(), **evidence},
            )]
        best = eligible[0]
        lag = _lag_text(best)
        evidence["candidate"] = best.name
        evidence["candidates"] = [m.name for m in eligible]
        return [self._finding(
            view, primary.name, Severity.CRITICAL,
            f"Primary {primary.name} of cluster {view.name} is down: promote {best.name} ({lag} behind)",
            f"{why} Best candidate: {best.name}, reachable, {lag} behind"
            + (f"; next: {', '.join(m.name for m in eligible[1:])}" if len(eligible) > 1 else "")
            + (f". Excluded: {'; '.join(f'{k}: {v}' for k, v in sorted(excluded.items()))}." if excluded else "."),
            labels={"candidate": best.name}, evidence=evidence, value=best.link.lag_bytes,
        )]


class PrimaryUnreachableFromAgent(_ClusterRule):
    name = "PrimaryUnreachableFromAgent"

    def evaluate_cluster(self, view: ClusterView) -> Iterable[Finding]:
        down = _primary_down(view)
        if down is None:
            return []
        primary, reachable = down
        streaming = [m.name for m in reachable if m.link.link_up]
        if not streaming:
            return []
        return [self._finding(
            view, primary.name, Severity.WARNING,
            f"The agent cannot reach primary {primary.name} of cluster {view.name}, but its replicas still can",
            f"{primary.name} failed {primary.failed_probes} consecutive probes (last error: {primary.error}) while "
            f"{', '.join(streaming)} still stream from their upstream: the agent's network path is broken, not "
            f"the primary. No failover is recommended.",
            evidence={"primary": primary.name, "streaming": streaming, "failed_probes": primary.failed_probes},
        )]


class ReplicaLagging(_ClusterRule):
    name = "ReplicaLagging"
    for_ = 30.0

    def evaluate_cluster(self, view: ClusterView) -> Iterable[Finding]:
        limit = view.settings.maximum_lag_on_failover
        out = []
        for member in view.replicas():
            lag = member.link.lag_bytes
            if member.reachable and lag is not None and lag > limit:
                out.append(self._finding(
                    view, member.name, Severity.WARNING,
                    f"Replica {member.name} of cluster {view.name} is {_lag_text(member)} behind",
                    f"{member.name} has {lag:.0f} bytes of WAL to replay, above maximum_lag_on_failover ({limit} "
                    f"bytes): it is no longer a failover candidate"
                    + (" (replay is paused)." if member.link.replay_paused else "."),
                    value=lag,
                ))
        return out


class ReplicationBroken(_ClusterRule):
    name = "ReplicationBroken"
    for_ = 10.0

    def evaluate_cluster(self, view: ClusterView) -> Iterable[Finding]:
        if not view.primaries(reachable_only=True):
            return []  # no primary up: that is the failover rules' case
        out = []
        for member in view.replicas():
            if not member.reachable or member.link.link_up is not False:
                continue
            error = member.link.link_error or member.link.error_hint
            out.append(self._finding(
                view, member.name, Severity.CRITICAL,
                f"Replica {member.name} of cluster {view.name} is not replicating ({member.link.link_state})",
                f"{member.name} is reachable but its replication link is down: {member.link.link_state}"
                + (f"; error: {error}" if error else ""),
                evidence={"link": member.link.link_state, "error": member.link.link_error or None},
            ))
        return out


class SplitBrainSuspected(_ClusterRule):
    name = "SplitBrainSuspected"

    def evaluate_cluster(self, view: ClusterView) -> Iterable[Finding]:
        writable = [m for m in view.primaries(reachable_only=True) if m.link.writable]
        if len(writable) < 2:
            return []
        names = [m.name for m in writable]
        return [self._finding(
            view, member.name, Severity.CRITICAL,
            f"Split brain suspected in cluster {view.name}: {', '.join(names)} all accept writes",
            f"{len(names)} members of cluster {view.name} are writable primaries ({', '.join(names)}). Fence all "
            f"but one before clients write to both; failover actions are suspended meanwhile.",
            evidence={"primaries": names},
        ) for member in writable]


def _lag_text(member: MemberState) -> str:
    parts = []
    if member.link.lag_bytes is not None:
        parts.append(f"{member.link.lag_bytes:.0f} bytes")
    if member.link.lag_seconds is not None:
        parts.append(f"{member.link.lag_seconds:.1f}s")
    return " / ".join(parts) or "unknown lag"

