"""The daemon: wires config, collectors, store and HTTP together; schedules; handles signals and reloads.

One job per (target, collector) on the schedule (agent/schedule.py), at the collector's interval, with no
overlapping runs of the same job and missed runs coalesced. Targets start at random phases spread over their
interval, so that many targets do not collect in lockstep; a target's collectors share its phase, so that its
collections of one cycle land together and the rules judge them together, once.
SIGTERM/SIGINT stop the schedule, give in-flight collections a grace period, then cancel them, close
every connection and return 0. SIGHUP re-reads the config; added, removed and changed targets take effect
at once, and an invalid new config is reported while the old one keeps running.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import random
import signal
import time
from pathlib import Path
from typing import Any

from dbwatch.agent import __version__
from dbwatch.agent.alerting import Alerting
from dbwatch.agent.config import Config, ConfigError, load_config
from dbwatch.agent.console.mount import mount_console
from dbwatch.agent.http import HttpServer
from dbwatch.agent.jobs import TargetJobs
from dbwatch.agent.pressure import ServerGates
from dbwatch.agent.schedule import Schedule
from dbwatch.agent.logs import setup_logging
from dbwatch.agent.gcpace import GcPacer
from dbwatch.agent.loophealth import LoopHealth
from dbwatch.model import Target
from dbwatch.agent.sdnotify import SystemdNotifier
from dbwatch.agent.sharding import ShardingConfig, select_shard
from dbwatch.agent.silences_http import add_routes as add_console_api
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.base import Session
from dbwatch.collectors.engines import engine
from dbwatch.collectors.session import set_connect_slots
from dbwatch.rules.engine import FACTS_OVER_HISTORY
from dbwatch.rules.cluster import endpoint as dsn_endpoint
from dbwatch.agent.webconfig import WebConfigError, load_web_config
from dbwatch.exporters.prometheus import Exposition
from dbwatch.exporters.pg_exporter_compat import PG_EXPORTER_COLUMNS

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds in-flight collections get to finish before they are cancelled
#: families the Python rules read from older snapshots (rules/backups.py: rows written since the last backup)
PYTHON_RULES_HISTORY = ("pg_stat_database_tup_inserted", "pg_stat_database_tup_updated",
                        "pg_stat_database_tup_deleted", "dbwatch_target_up")
FAMILY_HORIZON_MIN = 300.0  # families stay at least this long in the history (the default rules' windows)
FIRST_RUNS_PER_SECOND = 50.0  # targets starting at once are spread so that about this many start each second


class Daemon:
    def __init__(self, config_path: str | Path, config: Config, shard: ShardingConfig | None = None) -> None:
        self.config_path = Path(config_path)
        self.config = config
        self.shard = shard  # --shard on the command line: wins over the config's sharding, across reloads
        self.web_config = load_web_config(config.server.web_config_file) if config.server.web_config_file else None
        scheme = "https" if self.web_config and self.web_config.tls else "http"
        self.store = SnapshotStore()
        self.exposition = Exposition(self.store, version=__version__)
        self.gates = ServerGates(config.collection.max_concurrent_per_server)
        self.exposition.add_provider(self.gates.metrics)
        self.loop_health = LoopHealth(self.exposition.registry)
        self.gc_pacer = GcPacer()
        self.http = HttpServer(self.exposition, self.store, expected_jobs=self.expected_jobs,
                               targets=self.targets_info)
        self.targets: dict[str, TargetJobs] = {}
        # Read on every evaluation of every target's rules: kept, not rebuilt per call (O(targets) each).
        self._target_map: dict[str, Target] = {}
        self._up: dict[str, bool] = {}  # target -> whether its main collector last succeeded (tried ones only)
        self.alerting = Alerting(config, self.store, targets=self.target_map, sessions=self.session_of,
                                 external_url=f"{scheme}://{config.server.listen}")
        self._history_metrics = self.history_metrics()
        self.exposition.add_provider(self.alerting.metrics)
        self.exposition.add_job_columns(PG_EXPORTER_COLUMNS)  # pg_exporter_* for its rules
        self.http.degraded_state = self.alerting.degraded_state
        self.http.add_json("/api/v1/alerts", self.alerting.alerts_json)
        self.http.add_json("/api/v1/recommendations", self.alerting.recommendations_json)
        self.http.add_json("/api/v1/clusters", self.alerting.clusters.as_json)
        add_console_api(self.http.app, self)  # /api/v1/silences, the console's actions (agent/silences_http.py)
        self.console = mount_console(self)  # the web console's pages and JSON (agent/console/)
        self.scheduler = Schedule()
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._last_status = ""
        self._reloading: asyncio.Lock = asyncio.Lock()
        self.systemd = SystemdNotifier()

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        await self.http.start(self.config.server.listen, self.web_config, idle_timeout=self.config.server.idle_timeout)
        self.exposition.add_provider(self.http.connection_metrics)
        self.loop_health.start()
        self.scheduler.start()
        await self.apply(self.config)
        _tune_gc()
        self.gc_pacer.start()
        await self.alerting.start()  # after apply: alerts of targets no longer configured resolve, the others stay
        logger.info(
            "dbwatch %s running: %d target(s), listening on %s",
            __version__, len(self.targets), self.http.address,
        )
        self.systemd.ready(self._status())
        self.systemd.start_watchdog()
        await self._stopping.wait()
        await self.shutdown()
        return 0

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            logger.info("stopping: no new collections; waiting up to %gs for running ones", SHUTDOWN_GRACE)
            self._stopping.set()

    async def shutdown(self) -> None:
        self.systemd.stopping()
        self.scheduler.pause()  # no new runs; the ones in flight get the grace
        pending: set[asyncio.Task[None]] = set()
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await self.scheduler.stop()
        await asyncio.gather(*(jobs.close() for jobs in self.targets.values()), return_exceptions=True)
        self.targets.clear()
        await self.alerting.stop(grace=2.0)
        await self.http.stop()
        self.loop_health.stop()
        self.gc_pacer.stop()
        await self.systemd.stop_watchdog()
        if pending:  # one line for all of them: a fleet's hung collections are not hundreds of tracebacks
            logger.info("stopped (%d collection(s) still running after %gs were cancelled)", len(pending),
                        SHUTDOWN_GRACE)
        else:
            logger.info("stopped")

    async def reload(self) -> None:
        async with self._reloading:
            logger.info("reloading %s", self.config_path)
            self.systemd.reloading()
            try:
                await self._reload()
            finally:  # systemd waits for READY=1 after RELOADING=1, whether the reload was applied or not
                self.systemd.ready(self._status())

    async def _reload(self) -> None:
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:  # one line per problem, each saying that the running config stays
            for problem in exc.problems:
                logger.error("reload rejected, the running configuration stays: %s: %s", exc.source, problem)
            return
        if config.server != self.config.server:
            logger.warning("server settings changed; they take effect at the next restart")
        elif config.server.web_config_file:
            try:
                self.http.reload_web_config(config.server.web_config_file)
            except (WebConfigError, ValueError, OSError) as exc:
                logger.error("web config %s not reloaded, keeping the running one: %s",
                             config.server.web_config_file, exc)
        if config.logging != self.config.logging:
            setup_logging(config.logging.level, config.logging.format)
        self.config = config
        await self.apply(config)
        await self.alerting.reconfigure(config)
        horizon = self.family_horizon()  # the reloaded rules' windows and metrics
        self._history_metrics = self.history_metrics()
        for jobs in self.targets.values():
            jobs.family_horizon, jobs.history_metrics = horizon, self._history_metrics
        logger.info("reloaded: %d target(s)", len(self.targets))

    def _update_status(self) -> None:
        """Tell systemd (``systemctl status``) when the number of targets up changes, not every collection."""
        status = self._status()
        if status != self._last_status:
            self._last_status = status
            self.systemd.status(status)

    def _status(self) -> str:
        # Counted from what collections reported (kept as they land), not by a pass over the store per
        # collection: at a fleet's size that pass was quadratic.
        up = sum(1 for name, ok in self._up.items() if ok and name in self.targets)
        tried = sum(1 for name in self._up if name in self.targets)
        return f"{up} of {len(self.targets)} target(s) up, {len(self.targets) - tried} not yet tried"

    def target_up(self, name: str) -> bool | None:
        """Whether the collector answering for the target's up metric last succeeded (None: not yet run)."""
        jobs = self.targets[name]
        snapshot = self.store.latest(name, jobs.up_collector)
        return None if snapshot is None else snapshot.ok

    # -- targets and jobs -------------------------------------------------------------------------

    async def apply(self, config: Config) -> None:
        """Make the running jobs match ``config``: a changed target is restarted, others are untouched."""
        set_connect_slots(config.collection.max_concurrent_connects)
        wanted = {t.name: t for t in self.shard_targets(config)}
        self.gates.configure(config.collection.max_concurrent_per_server,
                             {server for t in wanted.values() if (server := _server(t)) is not None})
        for name in list(self.targets):
            if name not in wanted or wanted[name] != self.targets[name].target:
                await self._remove(name, gone=name not in wanted)
        new = [target for name, target in wanted.items() if name not in self.targets]
        for target in new:
            self._add(target, starting=len(new))
        self._target_map = {name: jobs.target for name, jobs in self.targets.items()}
        self.exposition.set_target_labels({name: jobs.target.labels for name, jobs in self.targets.items()})

    def shard_targets(self, config: Config) -> list[Target]:
        """The config's targets that fall in this agent's shard (all of them without sharding)."""
        targets = config.resolved_targets()
        shard = self.shard or config.sharding
        if shard.total == 1:
            return targets
        kept = select_shard(targets, shard, lambda t: t.name)
        logger.info("shard %s keeps %d of %d target(s)", shard, len(kept), len(targets))
        return kept

    def target_map(self) -> dict[str, Target]:
        """The watched targets by name (the same dict until the next reload: callers must not change it)."""
        return self._target_map

    def session_of(self, name: str) -> Session | None:
        """A watched target's session (failover promotes through it), None for a target not watched here."""
        jobs = self.targets.get(name)
        return jobs.session if jobs is not None else None

    def expected_jobs(self) -> list[tuple[str, str]]:
        return [(name, collector) for name, jobs in self.targets.items() for collector in jobs.collectors]

    def targets_info(self) -> list[dict[str, Any]]:
        """What /api/v1/targets shows: per target, up, last success and error, per-collector figures."""
        stats = {(s.target, s.collector): s for s in self.store.stats()}
        out = []
        for name, jobs in self.targets.items():
            collectors = {}
            for collector in jobs.collectors:
                job = stats.get((name, collector))
                latest = self.store.latest(name, collector)
                collectors[collector] = {
                    "runs": job.runs if job else 0,
                    "errors": job.errors if job else 0,
                    "last_duration_seconds": job.last_duration if job else None,
                    "last_success": job.last_success if job else None,
                    "last_error": job.last_error if job else None,
                    "ok": latest.ok if latest else None,
                    "notes": latest.notes if latest else [],
                }
            up_job = collectors[jobs.up_collector]
            out.append({
                "name": name,
                "engine": jobs.target.engine,
                "labels": dict(jobs.target.labels),
                "up": self.target_up(name),
                "version": next((s.version for c in jobs.collectors
                                 if (s := self.store.latest(name, c)) and s.version), None),
                "last_success": up_job["last_success"],
                "last_error": next((c["last_error"] for c in collectors.values() if c["ok"] is False), None),
                "collectors": collectors,
            })
        return out

    def family_horizon(self) -> float:
        """How long every collected family stays in the store's history: the default rules' windows and a minute
        of slack for slow collectors. A family a rule reads over a longer window stays longer (history_metrics)."""
        return FAMILY_HORIZON_MIN + 60.0

    def history_metrics(self) -> dict[str, float]:
        """The families a rule reads over time (the metrics of the threshold rules, the write counters the
        backup rules compare, rules/backups.py), each with how long it stays in the store's history: the
        longest window it is read over plus a minute, at least the family horizon. Older snapshots in the
        history keep only these; a 6-hour window (DiskWillFillIn) keeps its metric only, not every family."""
        horizons = dict.fromkeys(PYTHON_RULES_HISTORY, self.family_horizon())

        def read(metric: str, window: float) -> None:
            horizons[metric] = max(horizons.get(metric, 0.0), self.family_horizon(), window + 60.0)

        for rule in self.alerting.rules.rules:
            read(rule.metric, rule.effective_window)
            if rule.divide_by is not None:
                read(rule.divide_by.metric, rule.divide_by.effective_window)
            if rule.info is not None:
                read(rule.info.metric, rule.effective_window)
        return horizons

    def _add(self, target: Target, starting: int = 1) -> None:
        server = _server(target)
        jobs = TargetJobs(target, family_horizon=self.family_horizon(),
                          gate=self.gates.gate(server) if server is not None else None,
                          history_metrics=self._history_metrics, history_facts=FACTS_OVER_HISTORY)
        self.targets[target.name] = jobs
        # One phase per target: collectors at the same interval (or multiples of it) run together, one after the
        # other on the target's session, and the rules judge the cycle once instead of once per collector.
        first, phase = _first_run(min((s.interval for s in target.collectors.values()), default=15.0), starting)
        for name, settings in target.collectors.items():
            self.scheduler.add(_job_id(target.name, name), settings.interval,
                               functools.partial(self._run_job, target.name, name), at=first,
                               then=phase + settings.interval)
        logger.info("watching %s (%s): %s", target.name, target.engine, ", ".join(target.collectors),
                    extra={"target": target.name})

    async def _remove(self, name: str, gone: bool) -> None:
        """Stop a target's jobs; when it left the config (``gone``), its alerts resolve too."""
        jobs = self.targets.pop(name)
        for collector in jobs.collectors:
            self.scheduler.remove(_job_id(name, collector))
        await jobs.close()
        self._up.pop(name, None)
        self.store.forget_target(name)
        if gone:
            self.alerting.forget_target(name)
        logger.info("no longer watching %s", name, extra={"target": name})

    async def _run_job(self, target: str, collector: str) -> None:
        jobs = self.targets.get(target)
        if jobs is None or self._stopping.is_set() or not jobs.due(collector):
            return  # backing off from a server that times out: this tick is skipped
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            snapshot = await jobs.collect(collector)
            if self.targets.get(target) is jobs:  # not removed by a reload meanwhile
                self.store.put(snapshot)
                if collector == jobs.up_collector and self._up.get(target) is not snapshot.ok:
                    self._up[target] = snapshot.ok
                    self._update_status()
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            # Cancelled by shutdown after the grace: counted in its "stopped" line, not one traceback each.
        finally:
            self._inflight.discard(task)


def _tune_gc() -> None:
    """What was loaded at start-up (modules, config, the first collections) is frozen out of every collection of
    Python's cyclic collector; from then on agent/gcpace.py runs the collector, in short steps on a timer (its
    docstring says why the collector's own thresholds held a fleet's scrapes for 0.1-0.25 s every few seconds)."""
    gc.collect()
    gc.freeze()


def _server(target: Target) -> str | None:
    """``host:port`` of the server a target is on (its gate, agent/pressure.py); None for a target with no
    network server (the host engine, a Unix socket)."""
    if not target.dsn:
        return None
    endpoint = dsn_endpoint(target, engine(target.engine).default_port)
    return None if endpoint is None else f"{endpoint[0]}:{endpoint[1]}"


def _job_id(target: str, collector: str) -> str:
    return f"{target}/{collector}"


def _first_run(interval: float, starting: int) -> tuple[float, float]:
    """The first run and the phase (``time.monotonic()``; runs after the first are at the phase plus multiples of
    the interval) of one of ``starting`` targets added at once. The phases are spread over the whole interval,
    so that a fleet's collections never come in one wave; the first runs are the phases squeezed into a window
    that grows with the number of targets (:data:`FIRST_RUNS_PER_SECOND`), at least a second and at most the
    interval, so that a fleet does not connect in one burst and a few targets still start within a second.

    (Phases kept from the first runs, a fleet of 300 targets ran every collection within 6 s of each 15 s and
    none in the other 9: on a busy server, a queue of collections timing out for 6 s and an idle server.) The
    second run comes at least an interval after the first, since the phase is never before the first run."""
    now = time.monotonic()
    offset = random.uniform(0, interval)
    window = min(interval, max(1.0, starting / FIRST_RUNS_PER_SECOND))
    return now + offset * window / interval, now + offset


async def run_daemon(config_path: str | Path, config: Config, shard: ShardingConfig | None = None) -> int:
    return await Daemon(config_path, config, shard).run()
