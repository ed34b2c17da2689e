"""Helpers for the advice tests (audits, query hints, index and storage advisors): run real collectors once
into a store, then evaluate rule families on what they left (the daemon's path, without the daemon)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from dbwatch.model import CollectorSettings, Finding, Snapshot, Target
from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.engines import engine as spec
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig
from tests.helpers import collect


def target(engine: str, dsn: str, collectors: dict[str, dict[str, Any]], password_env: str | None = None) -> Target:
    """A target whose ``collectors`` are given as each collector's options, validated by its options model."""
    models = spec(engine).collectors
    return Target(name="t", engine=engine, dsn=dsn, labels={}, password_env=password_env,
                  collectors={name: CollectorSettings(60, 20, models[name].options_model.model_validate(options))
                              for name, options in collectors.items()})


async def collect_once(store: SnapshotStore, collector_class: Any, session_class: Any, target: Target,
                       after: Callable[[Any], Awaitable[None]] | None = None) -> Snapshot:
    """One collection on a session of its own; ``after`` may look at the session before it is closed."""
    session = session_class(target)
    try:
        snapshot = await collect(collector_class(target, session), store)
        if after is not None:
            await after(session)
    finally:
        await session.close()
    return snapshot


def evaluate(store: SnapshotStore, engine: str, *families: str, target: str = "t") -> list[Finding]:
    rules = []
    for family in families:
        module = __import__(f"dbwatch.rules.{family}", fromlist=["make_rules"])
        rules.extend(module.make_rules(RulesConfig()))
    engine_ = RuleEngine([], rules)
    findings = engine_.evaluate(TargetView(store, target, engine))
    errors = {f.name: f for f in engine_.metrics()}["dbwatch_rule_errors_total"]
    assert not errors.samples, f"a rule raised: {errors.samples}"  # the engine only counts and logs errors
    return findings


def by_rule(findings: Iterable[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]
