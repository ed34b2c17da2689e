"""Replication clusters as rules see them: who belongs together, and each member's state from its snapshots.

A cluster is a set of targets: those configured with the same ``cluster: NAME``, plus those discovered to
replicate from one another (a PostgreSQL standby's upstream from pg_stat_wal_receiver, a MySQL/MariaDB
channel's source, a Redis replica's master, matched to the configured targets by host and port). A member's
role comes from the server (``pg_is_in_recovery()``, ``SHOW SLAVE STATUS``, ``INFO replication``), never
from the config.

Cluster rules implement :class:`PythonClusterRule`: ``evaluate_cluster(view)`` sees every member through a
:class:`ClusterView` and returns findings whose ``target`` is the member the alert is about. Engines plug in
by adding a reader to :data:`ROLE_READERS` that turns a member's facts into a :class:`MemberState`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol

from dbwatch.model import Finding, Target
from dbwatch.rules.clusterconfig import FailoverConfig

__all__ = ["ClusterView", "MemberState", "PythonClusterRule", "ROLE_READERS", "discover_clusters",
           "endpoint", "member_state"]

PRIMARY, REPLICA, UNKNOWN = "primary", "replica", "unknown"


@dataclass(frozen=True, slots=True)
class Link:
    """What an engine's facts say about a member's role and its replication link (engine-neutral)."""

    role: str  # primary | replica | unknown
    link_up: bool | None = None  # a replica: streaming from its upstream
    link_state: str = ""  # the server's word: streaming, stopped, Connecting, down...
    link_error: str = ""  # the server's error text, where it keeps one
    lag_seconds: float | None = None
    lag_bytes: float | None = None
    upstream: tuple[str, int] | None = None
    replay_paused: bool = False
    writable: bool = False


@dataclass(frozen=True, slots=True)
class MemberState:
    """One member at one evaluation: reachability from the agent's probes, plus its last known :class:`Link`."""

    name: str
    engine: str
    reachable: bool  # the newest probe (the main collector's snapshot) succeeded
    failed_probes: int  # consecutive failed probes up to now (0 when reachable)
    down_since: float | None  # start of the first of those failed probes
    last_seen_at: float | None  # start of the newest successful probe
    probed: bool  # at least one probe was made
    link: Link
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

    def __init__(self, name: str, members: Mapping[str, Any], settings: FailoverConfig | None = None,
                 now: float = 0.0) -> None:
        self.name = name
        self.views: dict[str, Any] = dict(sorted(members.items()))
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


def member_state(view: Any) -> MemberState:
    """A member's state: probes from its main collector's history, role and link from its newest facts."""
    probe = _main_collector(view)
    history = view.history(probe) if probe else []
    failed, down_since = 0, None
    for snapshot in reversed(history):
        if snapshot.ok:
            break
        failed, down_since = failed + 1, snapshot.started_at
    last_ok = next((s for s in reversed(history) if s.ok), None)
    reader = ROLE_READERS.get(view.engine)
    link = reader(last_ok.facts) if reader and last_ok is not None else Link(UNKNOWN)
    return MemberState(
        name=view.target, engine=view.engine, reachable=bool(history) and history[-1].ok, failed_probes=failed,
        down_since=down_since, last_seen_at=last_ok.started_at if last_ok else None, probed=bool(history),
        link=link, error=history[-1].error if history and not history[-1].ok else None,
    )


def _main_collector(view: Any) -> str | None:
    # The collector exporting dbwatch_target_up (the daemon adds it to the main collector's snapshots).
    for name in view.collectors():
        history = view.history(name)
        if history and history[-1].family("dbwatch_target_up") is not None:
            return name
    return next(iter(view.collectors()), None)


def _postgres(facts: Mapping[str, Any]) -> Link:
    server = facts.get("server")
    if server is None:
        return Link(UNKNOWN)
    if not server.in_recovery:
        return Link(PRIMARY, writable=True)
    standby = facts.get("standby")
    if standby is None:
        return Link(REPLICA, link_up=False, link_state="unknown")
    upstream = (standby.upstream_host, int(standby.upstream_port)) if standby.upstream_host else None
    return Link(
        REPLICA, link_up=standby.receiver_status == "streaming", link_state=standby.receiver_status,
        lag_seconds=float(standby.lag_seconds), lag_bytes=float(standby.replay_lag_bytes), upstream=upstream,
        replay_paused=bool(standby.replay_paused),
    )


def _redis(facts: Mapping[str, Any]) -> Link:
    info = facts.get("redis")
    if info is None:
        return Link(UNKNOWN)
    if info.role != "slave":
        return Link(PRIMARY, writable=True)
    upstream = (info.master_host, int(info.master_port)) if info.master_host and info.master_port else None
    return Link(REPLICA, link_up=info.master_link_status == "up", link_state=f"master_link_status:{info.master_link_status}",
                lag_seconds=info.master_last_io_seconds, upstream=upstream)


def _mysql(facts: Mapping[str, Any]) -> Link:
    channels = facts.get("channels")
    settings = facts.get("settings")
    if channels is None and settings is None:
        return Link(UNKNOWN)
    if not channels:
        return Link(PRIMARY, writable=not getattr(settings, "read_only", False))
    channel = channels[0]
    up = channel.io_running and channel.sql_running
    error = "; ".join(e for e in (channel.last_io_error, channel.last_sql_error) if e)
    return Link(REPLICA, link_up=up, link_state=f"Slave_IO_Running: {channel.io_state}, "
                f"Slave_SQL_Running: {channel.sql_state}", link_error=error,
                lag_seconds=channel.seconds_behind_master,
                upstream=(channel.master_host, int(channel.master_port)) if channel.master_host else None,
                writable=not getattr(settings, "read_only", True))


#: engine -> reader of the facts of its main collector's newest successful snapshot
ROLE_READERS: dict[str, Callable[[Mapping[str, Any]], Link]] = {
    "postgres": _postgres, "redis": _redis, "mysql": _mysql,
}


# -- membership -------------------------------------------------------------------------------------


def endpoint(target: Target) -> tuple[str, int] | None:
    """``(host, port)`` of a target's DSN, loopback names folded to 127.0.0.1 so that they match."""
    if not target.dsn:
        return None
    try:
        parsed = urllib.parse.urlsplit(target.dsn)
        host, port = parsed.hostname, parsed.port
    except ValueError:
        return None
    if not host or host.startswith("/"):
        return None
    if port is None:
        port = {"postgres": 5432, "mysql": 3306, "redis": 6379}.get(target.engine, 0)
    return _norm(host), port


def discover_clusters(targets: Mapping[str, Target], upstreams: Mapping[str, tuple[str, int]]
                      ) -> dict[str, list[str]]:
    """Group targets: configured ``cluster`` names, joined by replication links (``upstreams``: a member's
    upstream endpoint as its server reported it). A discovered group without a configured name is named
    after its primary (the member nobody's upstream points away from)."""
    by_endpoint = {ep: name for name, t in targets.items() if (ep := endpoint(t)) is not None}
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
        named = sorted({targets[m].cluster for m in members if targets[m].cluster})
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
