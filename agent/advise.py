"""``dbwatch advise``: collect each target once, run the recommendation rules, hand back the findings.

Each target gets one session (one connection) through :class:`~dbwatch.agent.jobs.TargetJobs`, the same
bounded, never-raising path ``dbwatch check`` uses. The engine's ``advisor`` collector runs even when the
configuration leaves it off for the daemon (it is off by default there), with the options the
configuration gives it. The log-tailing ``slowlog`` collector is left out: it keeps a read offset in the
state directory, and a one-off run must not move the daemon's place in the log.
"""

from __future__ import annotations

import asyncio
import dataclasses

from dbwatch.agent.config import Config, TargetConfig
from dbwatch.agent.jobs import TargetJobs
from dbwatch.model import CollectorSettings, FindingKind, Target
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.engines import engine
from dbwatch.exporters.report import TargetAdvice
from dbwatch.rules.catalog import python_rules
from dbwatch.rules.engine import RuleEngine, TargetView

__all__ = ["ADVISOR", "advise", "advice_target"]

ADVISOR = "advisor"
ON_DEMAND = (ADVISOR, "audit", "workload", "schema_design", "ha")
SKIPPED = frozenset({"slowlog"})


class UnknownTarget(Exception):
    pass


def advice_target(config: TargetConfig) -> Target:
    """The target as configured, with the engine's advisor and audit collectors switched on (the daemon
    leaves them off by default: they read catalogs and plan statements hourly at most) and the log tailer off."""
    target = config.to_target()
    spec = engine(target.engine)
    collectors = {name: s for name, s in target.collectors.items() if name not in SKIPPED}
    for name in ON_DEMAND:
        if name in spec.collectors and name not in collectors:
            defaults = spec.defaults[name]
            own = config.collectors.get(name)
            timeout = (own.timeout if own is not None and own.timeout else None) or defaults.timeout
            collectors[name] = CollectorSettings(interval=defaults.interval, timeout=timeout,
                                                 options=config.collector_options(name))
    return dataclasses.replace(target, collectors=collectors)


async def advise(config: Config, target: str | None = None, section: str | None = None) -> list[TargetAdvice]:
    chosen = [t for t in config.targets if target is None or t.name == target]
    if not chosen:
        raise UnknownTarget(f"no target named {target!r} in the configuration")
    rules = RuleEngine([], python_rules(config.rules, section))
    return list(await asyncio.gather(*(_advise_one(advice_target(t), rules) for t in chosen)))


async def _advise_one(target: Target, rules: RuleEngine) -> TargetAdvice:
    jobs = TargetJobs(target)
    store = SnapshotStore(history_size=1)
    advice = TargetAdvice(target=target.name, engine=target.engine, up=True)
    try:
        for name in jobs.one_shot():
            snapshot = await jobs.collect(name)
            store.put(snapshot)
            advice.notes.extend(n for n in snapshot.notes if n not in advice.notes)
            if snapshot.error:
                advice.errors[name] = snapshot.error
            if name == jobs.up_collector and not snapshot.ok:
                advice.up = False
                break  # the server is not there: the other collectors would only wait for the same timeout
    finally:
        await jobs.close()
    view = TargetView(store, target.name, target.engine, target.labels)
    advice.findings = [f for f in rules.evaluate(view) if f.kind == FindingKind.RECOMMENDATION]
    return advice
