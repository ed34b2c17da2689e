"""Typed facts (model/snapshot.py, model/facts/) and how rules read them (rules/engine.py's TargetView).

Facts are stored and looked up by type; a rule reads the newest successful snapshot carrying a type, whichever
collector made it. A fact a rule needs that is missing or of the wrong type is a counted, logged rule error
(``dbwatch_rule_errors_total{rule,target,reason}``), logged once when it starts, never a silent skip. Pure
unit tests on snapshots built here: no server is needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.model import Finding, Snapshot, gauge
from dbwatch.model.facts.common import FactList, Summary
from dbwatch.model.facts.redis import RedisInfo
from dbwatch.model.snapshot import FactMissing, FactWrongType
from dbwatch.rules.backups import RedisPersistenceStale
from dbwatch.rules import engine as rules_engine
from dbwatch.rules.engine import RuleEngine, TargetView


@dataclass(frozen=True, slots=True)
class Colour:
    name: str


@dataclass(frozen=True, slots=True)
class Colours(FactList[Colour]):
    pass


def snapshot(collector: str, at: float, *facts: object, ok: bool = True, main: bool = False) -> Snapshot:
    snap = Snapshot(target="t", engine="redis", collector=collector, started_at=at, ok=ok)
    if main:  # the daemon marks the main collector's snapshots with dbwatch_target_up
        up = gauge("dbwatch_target_up", "up")
        up.add((), int(ok))
        snap.families.append(up)
    snap.put(*facts)
    return snap


def store_of(*snapshots: Snapshot) -> SnapshotStore:
    store = SnapshotStore()
    for snap in sorted(snapshots, key=lambda s: s.started_at):
        store.put(snap)
    return store


class NeedsColour:
    name = "NeedsColour"
    engines: tuple[str, ...] = ()

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        view.need(Colour)
        return []


def errors(engine: RuleEngine) -> dict[tuple[str, ...], float]:
    [family] = [f for f in engine.metrics() if f.name == "dbwatch_rule_errors_total"]
    return dict(family.samples)


def test_a_snapshot_stores_one_fact_per_type_and_finds_it_by_type():
    snap = snapshot("main", 1.0, Colour("red"), Colours((Colour("a"), Colour("b"))), Summary({"n": 2}))
    assert snap.fact(Colour) == Colour("red") and snap.has(Colour)
    assert [c.name for c in snap.fact(Colours)] == ["a", "b"] and len(snap.fact(Colours)) == 2
    assert snap.fact(Summary)["n"] == 2 and snap.fact(RedisInfo) is None
    snap.put(Colour("blue"))  # a second fact of a type replaces the first
    assert snap.fact(Colour) == Colour("blue")
    with pytest.raises(FactMissing):
        snap.need(RedisInfo)


def test_a_fact_stored_under_another_type_is_a_wrong_type_error():
    snap = snapshot("main", 1.0)
    snap.facts[Colour] = Summary()  # only a hand-built dict can do this; put() never does
    with pytest.raises(FactWrongType) as err:
        snap.fact(Colour)
    assert err.value.reason == "wrong_type" and "Colour" in str(err.value)


def test_the_view_reads_a_type_from_the_collectors_newest_successful_snapshots_whichever_collector_made_it(
        monkeypatch):
    store = store_of(snapshot("main", 1.0, Colour("old"), main=True), snapshot("other", 2.0, Colour("new")),
                     snapshot("other", 3.0, ok=False), snapshot("main", 4.0, Summary(), main=True))
    view = TargetView(store, "t", "redis", {}, 5.0)
    assert view.fact(Colour) == Colour("new")  # other's newest successful one; a failed collection is skipped
    assert view.snapshot_with(Colour).collector == "other" and view.fact(Colours) is None
    with pytest.raises(ValueError, match="Colour is not kept over history"):
        view.history_with(Colour)  # older snapshots drop it (agent/jobs.py): a rule must say it reads it over time
    monkeypatch.setattr(rules_engine, "FACTS_OVER_HISTORY", rules_engine.FACTS_OVER_HISTORY | {Colour})
    assert [s.started_at for s in view.history_with(Colour)] == [2.0, 3.0]


def test_a_fact_the_newest_snapshot_no_longer_carries_is_gone_not_read_from_an_older_one():
    # e.g. a standby's WAL receiver (Standby) after a promotion: the old one is not the truth any more
    store = store_of(snapshot("main", 1.0, Colour("standby"), main=True), snapshot("main", 2.0, Summary(), main=True))
    assert TargetView(store, "t", "redis", {}, 3.0).fact(Colour) is None


def test_a_needed_fact_missing_is_counted_per_rule_target_and_reason_and_logged_once(caplog):
    store = store_of(snapshot("main", 1.0, Summary(), main=True))
    engine = RuleEngine([], [NeedsColour()])
    with caplog.at_level(logging.ERROR, logger="dbwatch.rules.engine"):
        for now in (2.0, 3.0, 4.0):
            assert engine.evaluate(TargetView(store, "t", "redis", {}, now)) == []
    assert errors(engine) == {("NeedsColour", "t", "missing"): 3}
    logged = [r for r in caplog.records if "NeedsColour" in r.getMessage()]
    assert len(logged) == 1 and "no Colour fact" in logged[0].getMessage()


def test_a_needed_fact_of_the_wrong_type_is_counted_with_its_reason():
    snap = snapshot("main", 1.0, main=True)
    snap.facts[Colour] = Summary()
    engine = RuleEngine([], [NeedsColour()])
    engine.evaluate(TargetView(store_of(snap), "t", "redis", {}, 2.0))
    assert errors(engine) == {("NeedsColour", "t", "wrong_type"): 1}


def test_an_error_that_stops_and_starts_again_is_logged_again(caplog):
    engine = RuleEngine([], [NeedsColour()])
    with caplog.at_level(logging.ERROR, logger="dbwatch.rules.engine"):
        engine.evaluate(TargetView(store_of(snapshot("main", 1.0, main=True)), "t", "redis", {}, 2.0))
        engine.evaluate(TargetView(store_of(snapshot("main", 1.0, Colour("x"), main=True)), "t", "redis", {}, 2.0))
        engine.evaluate(TargetView(store_of(snapshot("main", 1.0, main=True)), "t", "redis", {}, 2.0))
    assert len([r for r in caplog.records if "NeedsColour" in r.getMessage()]) == 2
    assert errors(engine) == {("NeedsColour", "t", "missing"): 2}


def test_a_target_whose_main_collector_is_down_has_nothing_to_judge_and_no_rule_error(caplog):
    store = store_of(snapshot("main", 1.0, ok=False, main=True), snapshot("other", 1.5, Summary()))
    engine = RuleEngine([], [NeedsColour(), RedisPersistenceStale()])
    with caplog.at_level(logging.ERROR, logger="dbwatch.rules.engine"):
        assert engine.evaluate(TargetView(store, "t", "redis", {}, 2.0)) == []
    assert errors(engine) == {} and not caplog.records


def test_a_shipped_rule_whose_main_collector_fact_is_missing_counts_an_error_instead_of_skipping():
    store = store_of(snapshot("redis", 1.0, Summary(), main=True))  # a main snapshot without its RedisInfo
    engine = RuleEngine([], [RedisPersistenceStale()])
    assert engine.evaluate(TargetView(store, "t", "redis", {}, 2.0)) == []
    assert errors(engine) == {("RedisPersistenceStale", "t", "missing"): 1}


def test_cluster_membership_counts_a_replication_link_it_cannot_read_instead_of_dropping_it(tmp_path):
    from dbwatch.agent.clusters import Clusters
    from dbwatch.model import Target
    from dbwatch.model.facts.common import ReplicationLink

    good = snapshot("redis", 1.0, ReplicationLink("replica", upstream=("127.0.0.1", 6379)), main=True)
    bad = Snapshot(target="r2", engine="redis", collector="redis", started_at=1.0)
    bad.families.extend(good.families)
    bad.facts[ReplicationLink] = Summary()
    store = store_of(good, bad)
    targets = {name: Target(name, "redis", f"redis://127.0.0.1:{port}", {}, {})
               for name, port in (("t", 6380), ("r2", 6381), ("p", 6379))}
    clusters = Clusters({}, store, lambda: targets, tmp_path)
    engine = RuleEngine([], [])
    # both have new snapshots (links are read from the targets that have: the others' did not change)
    assert clusters.evaluate(engine, {"t", "r2"}) == {"p", "t"}  # t's link still joins it to p
    assert errors(engine) == {("ClusterMembership", "r2", "wrong_type"): 1}
