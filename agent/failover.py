"""Failover actions: what the agent does when a cluster rule recommends a failover, guarded and recorded.

Off unless a cluster's ``failover.action`` says otherwise, and a dry run unless ``dry_run: false``: a dry run
logs and notifies what it would have done. At most one action per cluster per ``cooldown`` (kept in SQLite
under ``state_dir``, so a restart does not re-arm it), never while ``SplitBrainSuspected`` holds in the
cluster, and every action (dry runs included) is recorded and raised as a ``FailoverActionTaken`` alert.

- ``pg_promote``: through the candidate's own session (the one its collectors use, in its turn), check it is
  still in recovery, ``SELECT pg_promote(true, timeout)`` (the role needs superuser or ``GRANT EXECUTE ON
  FUNCTION pg_promote TO ...``). Which engine offers which promote action is the engine registry's to say.
- ``patroni``: ``POST {patroni_url}/failover`` with ``{"candidate": ...}`` (target names are Patroni's
  member names).
- ``command``: the configured argv, without a shell, ``{cluster}``, ``{primary}`` and ``{candidate}``
  replaced in each argument and ``DBWATCH_CLUSTER``/``DBWATCH_PRIMARY``/``DBWATCH_CANDIDATE`` in its
  environment, killed after ``timeout``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import aiohttp

from dbwatch.collectors.base import Session
from dbwatch.collectors.engines import ENGINE_NAMES, engine
from dbwatch.agent.logs import redact
from dbwatch.agent.statefile import StateFile
from dbwatch.model import Finding, FindingKind, Severity, Target
from dbwatch.rules.clusterconfig import ClusterConfig, FailoverConfig

__all__ = ["ActionRecord", "FailoverController"]

logger = logging.getLogger(__name__)

#: how long a FailoverActionTaken alert stays firing at least (it resolves after max(cooldown, this))
ACTION_ALERT_SECONDS = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS failover_actions (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster   TEXT NOT NULL,
    at        REAL NOT NULL,
    action    TEXT NOT NULL,
    dry_run   INTEGER NOT NULL,
    primary_target TEXT NOT NULL,
    candidate TEXT NOT NULL,
    ok        INTEGER NOT NULL,
    detail    TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class ActionRecord:
    cluster: str
    at: float
    action: str
    dry_run: bool
    primary: str
    candidate: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FailoverController:
    def __init__(self, clusters: dict[str, ClusterConfig], state_dir: Path, targets: Callable[[], dict[str, Target]],
                 clock: Callable[[], float] = time.time,
                 sessions: Callable[[str], Session | None] = lambda name: None) -> None:
        self.clusters = clusters
        self.targets = targets
        self.sessions = sessions  # the running session of a target, by name (None: not watched by this agent)
        self.clock = clock
        # a damaged or unwritable file never stops the agent (agent/statefile.py); actions it could not take
        # are kept in memory, so the cooldown holds, and written when it can
        self._unsaved: list[ActionRecord] = []
        self.state = StateFile(state_dir / "failover.db", _SCHEMA, ("PRAGMA journal_mode=WAL",), flush=self._save)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._refused: dict[str, float] = {}

    def settings(self, cluster: str) -> FailoverConfig:
        config = self.clusters.get(cluster)
        return config.failover if config is not None else FailoverConfig()

    def consider(self, cluster: str, findings: list[Finding]) -> None:
        """After an evaluation of ``cluster``: start its action when one is recommended, allowed and due."""
        settings = self.settings(cluster)
        recommended = next((f for f in findings if f.rule == "FailoverRecommended"), None)
        if settings.action == "none" or recommended is None or cluster in self._running:
            return
        now = self.clock()
        if any(f.rule == "SplitBrainSuspected" for f in findings):
            if now - self._refused.get(cluster, float("-inf")) >= max(settings.cooldown, 60.0):
                self._refused[cluster] = now
                logger.error("failover of cluster %s refused: a split brain is suspected", cluster)
            return
        last = self.last_action(cluster, dry_run=settings.dry_run)
        if last is not None and now - last.at < settings.cooldown:
            return
        primary, candidate = recommended.target, recommended.labels["candidate"]
        self._running[cluster] = asyncio.get_running_loop().create_task(
            self._act(cluster, settings, primary, candidate), name=f"failover {cluster}")

    def findings(self, cluster: str) -> list[Finding]:
        """``FailoverActionTaken`` while the cluster's newest action is recent (it is notified once it fires)."""
        last = self.last_action(cluster)
        if last is None or self.clock() - last.at >= max(self.settings(cluster).cooldown, ACTION_ALERT_SECONDS):
            return []
        verb = "would run" if last.dry_run else "ran"
        outcome = "dry run" if last.dry_run else ("succeeded" if last.ok else "FAILED")
        return [Finding(
            rule="FailoverActionTaken", target=last.candidate, kind=FindingKind.ALERT,
            severity=Severity.WARNING if last.dry_run else Severity.CRITICAL,
            summary=f"dbwatch {verb} {last.action} for cluster {cluster}: promote {last.candidate} ({outcome})",
            description=f"Primary {last.primary} was down; {last.detail}",
            labels={"cluster": cluster, "action": last.action, "dry_run": str(last.dry_run).lower(),
                    "result": "ok" if last.ok else "failed"},
            evidence=last.as_json(),
        )]

    def annotate(self, cluster: str, findings: list[Finding]) -> list[Finding]:
        """FailoverRecommended says what the agent will do (or did) about it."""
        settings = self.settings(cluster)
        last = self.last_action(cluster)
        out = []
        for finding in findings:
            if finding.rule == "FailoverRecommended":
                if settings.action == "none":
                    note = "No automatic action is configured (clusters.%s.failover.action)." % cluster
                elif last is not None and self.clock() - last.at < settings.cooldown:
                    note = f"Action: {last.detail}"
                else:
                    note = f"Action: {settings.action}{' (dry run)' if settings.dry_run else ''} on {finding.labels['candidate']}."
                finding = dataclasses.replace(finding, description=f"{finding.description} {note}",
                                              evidence={**finding.evidence, "action": settings.action,
                                                        "dry_run": settings.dry_run})
            out.append(finding)
        return out

    def last_action(self, cluster: str, dry_run: bool | None = None) -> ActionRecord | None:
        query = "SELECT cluster, at, action, dry_run, primary_target, candidate, ok, detail FROM failover_actions " \
                "WHERE cluster = ?"
        args: list[Any] = [cluster]
        if dry_run is not None:
            query += " AND dry_run = ?"
            args.append(int(dry_run))
        if self._unsaved:
            self._save()  # what a failed write kept in memory, now that the file may take it
        row = self.state.read(lambda db: db.execute(query + " ORDER BY at DESC, id DESC LIMIT 1", args).fetchone(), None)
        kept = [r for r in self._unsaved if r.cluster == cluster and dry_run in (None, r.dry_run)]
        return max([*kept, *([_record(row)] if row else [])], key=lambda r: r.at, default=None)

    def actions(self, cluster: str, limit: int = 10) -> list[ActionRecord]:
        rows: list[tuple[Any, ...]] = self.state.read(lambda db: db.execute(
            "SELECT cluster, at, action, dry_run, primary_target, candidate, ok, detail "
            "FROM failover_actions WHERE cluster = ? ORDER BY at DESC, id DESC LIMIT ?", (cluster, limit)).fetchall(), [])
        kept = [r for r in reversed(self._unsaved) if r.cluster == cluster]
        return (kept + [_record(row) for row in rows])[:limit]

    async def stop(self) -> None:
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        self._save()
        self.state.close()

    # -- the actions ----------------------------------------------------------------------------------

    async def _act(self, cluster: str, settings: FailoverConfig, primary: str, candidate: str) -> None:
        try:
            if settings.dry_run:
                ok, detail = True, f"dry run: would {_describe(settings, cluster, primary, candidate)}"
            else:
                ok, detail = await self._run(settings, cluster, primary, candidate)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an action that breaks is recorded as failed, never crashes the agent
            ok, detail = False, redact(f"{_describe(settings, cluster, primary, candidate)} failed: "
                                       f"{type(exc).__name__}: {exc}")
        finally:
            self._running.pop(cluster, None)
        record = ActionRecord(cluster, self.clock(), settings.action, settings.dry_run, primary, candidate, ok, detail)
        self._unsaved.append(record)
        self._save()
        log = logger.warning if ok else logger.error
        log("failover of cluster %s: %s", cluster, detail, extra={"target": candidate})

    def _save(self) -> bool:
        """Write the actions kept in memory; True when none is left unwritten."""
        records = list(self._unsaved)
        if not records:
            return True

        def write(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO failover_actions (cluster, at, action, dry_run, primary_target, candidate, "
                           "ok, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(r.cluster, r.at, r.action, int(r.dry_run), r.primary, r.candidate, int(r.ok), r.detail)
                            for r in records])

        if not self.state.write(write):
            return False
        del self._unsaved[:len(records)]
        return True

    async def _run(self, settings: FailoverConfig, cluster: str, primary: str, candidate: str) -> tuple[bool, str]:
        promoters = [name for name in ENGINE_NAMES if engine(name).promote_action == settings.action]
        if promoters:
            target = self.targets().get(candidate)
            if target is None or target.engine not in promoters:
                return False, f"{settings.action}: {candidate} is not a configured {' or '.join(promoters)} target"
            return await self._promote(target, settings.timeout)
        if settings.action == "patroni":
            return await _patroni(settings, candidate)
        return await _command(settings, cluster, primary, candidate)

    async def _promote(self, target: Target, timeout: float) -> tuple[bool, str]:
        """Through the target's running session; a target this agent does not watch gets one for the action."""
        session = self.sessions(target.name)
        if session is not None:
            return await session.promote(timeout)
        session = engine(target.engine).session(target)
        try:
            return await session.promote(timeout)
        finally:
            await session.close()


def _describe(settings: FailoverConfig, cluster: str, primary: str, candidate: str) -> str:
    if settings.action == "pg_promote":
        return f"run SELECT pg_promote() on {candidate}"
    if settings.action == "patroni":
        return f"POST {settings.patroni_url}/failover {{\"candidate\": \"{candidate}\"}}"
    return "run " + " ".join(_argv(settings, cluster, primary, candidate))


async def _patroni(settings: FailoverConfig, candidate: str) -> tuple[bool, str]:
    url = f"{settings.patroni_url}/failover"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.timeout)) as http:
            async with http.post(url, json={"candidate": candidate}) as response:
                text = (await response.content.read(500)).decode(errors="replace").strip()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return False, f"POST {url}: {str(exc) or type(exc).__name__}"
    return 200 <= response.status < 300, f"POST {url}: HTTP {response.status} {text}"


def _argv(settings: FailoverConfig, cluster: str, primary: str, candidate: str) -> list[str]:
    return [arg.replace("{cluster}", cluster).replace("{primary}", primary).replace("{candidate}", candidate)
            for arg in settings.command]


async def _command(settings: FailoverConfig, cluster: str, primary: str, candidate: str) -> tuple[bool, str]:
    argv = _argv(settings, cluster, primary, candidate)
    env = {**os.environ, "DBWATCH_CLUSTER": cluster, "DBWATCH_PRIMARY": primary, "DBWATCH_CANDIDATE": candidate}
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=env)
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), settings.timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"ran {' '.join(argv)}: killed after {settings.timeout:g}s"
    text = output.decode(errors="replace").strip()[-500:]
    return proc.returncode == 0, f"ran {' '.join(argv)}: exit {proc.returncode}" + (f": {text}" if text else "")


def _record(row: tuple[Any, ...]) -> ActionRecord:
    return ActionRecord(row[0], row[1], row[2], bool(row[3]), row[4], row[5], bool(row[6]), row[7])
