"""Helpers for the audit and query-hint tests: run real collectors once into a store, then evaluate rule
families on what they left (the daemon's path, without the daemon)."""

from __future__ import annotations

import time
from typing import Any, Iterable

from dbwatch.agent.model import CollectorSettings, Finding, Snapshot, Target
from dbwatch.agent.store import SnapshotStore
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.spec import RulesConfig


def target(engine: str, dsn: str, collectors: dict[str, dict[str, Any]], password_env: str | None = None) -> Target:
    return Target(name="t", engine=engine, dsn=dsn, labels={}, password_env=password_env,
                  collectors={name: CollectorSettings(60, 20, options) for name, options in collectors.items()})


async def collect(store: SnapshotStore, collector: Any) -> Snapshot:
    snapshot = Snapshot(target="t", engine=collector.target.engine, collector=collector.name, started_at=time.time())
    await collector.collect(snapshot)
    store.put(snapshot)
    return snapshot


def evaluate(store: SnapshotStore, engine: str, *families: str) -> list[Finding]:
    rules = []
    for family in families:
        module = __import__(f"dbwatch.rules.{family}", fromlist=["make_rules"])
        rules.extend(module.make_rules(RulesConfig()))
    engine_ = RuleEngine([], rules)
    findings = engine_.evaluate(TargetView(store, "t", engine))
    [_, errors] = engine_.metrics()
    assert not errors.samples, f"a rule raised: {errors.samples}"  # the engine only counts and logs errors
    return findings


def by_rule(findings: Iterable[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]
