"""Replication clusters as rules see them: who belongs together, and each member's state from its snapshots.

A cluster is a set of targets: those configured with the same ``cluster: NAME``, plus those discovered to
replicate from one another (a PostgreSQL standby's upstream from pg_stat_wal_receiver, a MySQL/MariaDB
channel's source, a Redis replica's master, matched to the configured targets by host and port). A member's
role comes from the server (``pg_is_in_recovery()``, ``SHOW SLAVE STATUS``, ``INFO replication``), never
from the config.

Cluster rules implement :class:`PythonClusterRule`: ``evaluate_cluster(view)`` sees every member through a
:class:`ClusterView` and returns findings whose ``target`` is the member the alert is about. Engines plug in
by having their main collector put a :class:`~dbwatch.model.facts.common.ReplicationLink`: no engine is named
here (one whose main collector puts none, MongoDB or PgBouncer, is a member of unknown role).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Protocol

from dbwatch.model import Finding, Target
from dbwatch.model.facts.common import PRIMARY, REPLICA, UNKNOWN, ReplicationLink
from dbwatch.rules.clusterconfig import FailoverConfig
from dbwatch.rules.engine import TargetView, main_collector

__all__ = ["ClusterView", "MemberState", "PRIMARY", "PythonClusterRule", "REPLICA", "UNKNOWN", "discover_clusters",
           "endpoint", "member_state"]


@dataclass(frozen=True, slots=True)
class MemberState:
    """One member at one evaluation: reachability from the agent's probes, plus its last known link."""

    name: str
    engine: str
    reachable: bool  # the newest probe (the main collector's snapshot) succeeded
    failed_probes: int  # consecutive failed probes up to now (0 when reachable)
    down_since: float | None  # start of the first of those failed probes
    last_seen_at: float | None  # start of the newest successful probe
    probed: bool  # at least one probe was made
    link: ReplicationLink
    error: str | None = None  # the newest failed probe's error

    @property
    def role(self) -> str:
        return self.link.role

    def evidence(self) -> dict[str, Any]:
        return {
            "role": self.role, "reachable": self.reachable, "failed_probes": self.failed_probes,
            "link": self.link.link_state or None, "link_up": self.link.link_up,
            "lag_seconds": _round(self.link.lag_seconds), "lag_bytes": _round(self.link.lag_bytes),
            "upstream": f"{self.link.upstream[0]}:{self.link.upstream[1]}" if self.link.upstream else None,
            "replay_paused": self.link.replay_paused, "error": self.error or self.link.link_error or None,
        }


class ClusterView:
    """Read-only access to one cluster at one evaluation: each member's TargetView and derived state."""

    def __init__(self, name: str, members: Mapping[str, TargetView], settings: FailoverConfig | None = None,
                 now: float = 0.0) -> None:
        self.name = name
        self.views: dict[str, TargetView] = dict(sorted(members.items()))
        self.settings = settings or FailoverConfig()
        self.now = now
        self._states: dict[str, MemberState] | None = None

    def members(self) -> dict[str, MemberState]:
        if self._states is None:
            self._states = {name: member_state(view) for name, view in self.views.items()}
        return self._states

    def primaries(self, reachable_only: bool = False) -> list[MemberState]:
        return [m for m in self.members().values() if m.role == PRIMARY and (m.reachable or not reachable_only)]

    def replicas(self) -> list[MemberState]:
        return [m for m in self.members().values() if m.role == REPLICA]

    def evidence(self) -> dict[str, dict[str, Any]]:
        return {name: state.evidence() for name, state in self.members().items()}


class PythonClusterRule(Protocol):
    name: str

    def evaluate_cluster(self, view: ClusterView) -> Iterable[Finding]: ...


# -- members ----------------------------------------------------------------------------------------


def member_state(view: TargetView) -> MemberState:
    """A member's state: probes from its main collector's history, role and link from its newest facts."""
    probe = main_collector(view)
    history = view.history(probe) if probe else []
    failed, down_since = 0, None
    for snapshot in reversed(history):
        if snapshot.ok:
            break
        failed, down_since = failed + 1, snapshot.started_at
    last_ok = next((s for s in reversed(history) if s.ok), None)
    link = (last_ok.fact(ReplicationLink) if last_ok is not None else None) or ReplicationLink(UNKNOWN)
    return MemberState(
        name=view.target, engine=view.engine, reachable=bool(history) and history[-1].ok, failed_probes=failed,
        down_since=down_since, last_seen_at=last_ok.started_at if last_ok else None, probed=bool(history),
        link=link, error=history[-1].error if history and not history[-1].ok else None,
    )


# -- membership -------------------------------------------------------------------------------------


def endpoint(target: Target, default_port: int = 0) -> tuple[str, int] | None:
    """``(host, port)`` of a target's DSN (``default_port``, the engine's, when it names none), loopback names
    folded to 127.0.0.1 so that they match."""
    if not target.dsn:
        return None
    try:
        parsed = urllib.parse.urlsplit(target.dsn)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        return None
    if not host or host.startswith("/"):
        return None
    return _norm(host), default_port if port is None else port


def discover_clusters(targets: Mapping[str, Target], upstreams: Mapping[str, tuple[str, int]],
                      default_ports: Mapping[str, int] | None = None) -> dict[str, list[str]]:
    """Group targets: configured ``cluster`` names, joined by replication links (``upstreams``: a member's
    upstream endpoint as its server reported it). A discovered group without a configured name is named
    after its primary (the member nobody's upstream points away from). ``default_ports``: engine -> the port
    a DSN without one means."""
    ports = default_ports or {}
    by_endpoint = {ep: name for name, t in targets.items()
                   if (ep := endpoint(t, ports.get(t.engine, 0))) is not None}
    parent = {name: name for name in targets}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    by_cluster: dict[str, str] = {}
    for name, target in sorted(targets.items()):
        if target.cluster:
            first = by_cluster.setdefault(target.cluster, name)
            parent[root(name)] = root(first)
    for name, (host, port) in sorted(upstreams.items()):
        upstream = by_endpoint.get((_norm(host), port))
        if name in parent and upstream is not None and upstream != name:
            parent[root(name)] = root(upstream)
    groups: dict[str, list[str]] = {}
    for name in sorted(targets):
        groups.setdefault(root(name), []).append(name)
    clusters: dict[str, list[str]] = {}
    for members in groups.values():
        named = sorted({c for m in members if (c := targets[m].cluster)})
        if named:
            clusters[named[0]] = members
        elif len(members) > 1:
            tops = [m for m in members if m not in upstreams or by_endpoint.get(
                (_norm(upstreams[m][0]), upstreams[m][1])) not in members]
            clusters[(tops or members)[0]] = members
    return clusters


def _norm(host: str) -> str:
    return "127.0.0.1" if host in ("localhost", "127.0.0.1", "::1", "[::1]") else host.lower()


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
