"""The strategy advice on MariaDB (collectors/mysql_workload.py): the same findings where its catalog allows,
against a real server with planted workloads, each beside its near-miss. Runs on the session's shared
MariaDB (tests/mariadbserver.py) in a schema of its own."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_workload import MySQLWorkloadCollector
from dbwatch.model import Finding
from dbwatch.model.facts.workload_profile import WorkloadProfile
from tests.auditutil import by_rule, collect_once, evaluate, target
from tests.mariadbserver import MariaDBServer, mariadb_primary  # noqa: F401 (fixture)

SCHEMA = """
DROP DATABASE IF EXISTS strat; CREATE DATABASE strat; USE strat;
CREATE TABLE plans (id int PRIMARY KEY, name varchar(40) NOT NULL, price int NOT NULL) ENGINE=InnoDB;
-- the load's 100 inserts count as writes beside the workload's 10 updates: 110 for 1,500 lookups
INSERT INTO plans SELECT seq, CONCAT('plan ', seq), seq FROM seq_1_to_100;
CREATE TABLE counters (id int PRIMARY KEY, hits bigint NOT NULL) ENGINE=InnoDB;
INSERT INTO counters SELECT seq, 0 FROM seq_1_to_200;
CREATE TABLE categories (id int PRIMARY KEY, parent_id int NULL, FOREIGN KEY (parent_id) REFERENCES categories (id))
  ENGINE=InnoDB;
INSERT INTO categories SELECT seq, IF(seq > 1, seq DIV 2, NULL) FROM seq_1_to_500;
CREATE TABLE flat (id int PRIMARY KEY, parent_id int NULL) ENGINE=InnoDB;
INSERT INTO flat SELECT seq, IF(seq > 1, seq DIV 2, NULL) FROM seq_1_to_500;
"""
RECURSIVE = ("WITH RECURSIVE t(id) AS (SELECT id FROM {0} WHERE id = 1 UNION ALL "
             "SELECT c.id FROM {0} c JOIN t ON c.parent_id = t.id) SELECT count(*) FROM t;")


@pytest.fixture(scope="module")
def advice(mariadb_primary: MariaDBServer) -> tuple[WorkloadProfile, list[Finding]]:  # noqa: F811
    db = mariadb_primary
    db.sql(SCHEMA)
    lines = ["USE strat;"]
    for i in range(1500):
        key = 1 + i % 100
        lines += [f"SELECT name, price FROM plans WHERE id = {key};", f"SELECT hits FROM counters WHERE id = {key};",
                  f"UPDATE counters SET hits = hits + 1 WHERE id = {key};"]
    lines += [f"UPDATE plans SET price = price + 1 WHERE id = {1 + i};" for i in range(10)]
    lines += [RECURSIVE.format(t) for t in ("categories", "flat") for _ in range(5)]
    db.sql("\n".join(lines))
    store = SnapshotStore(history_size=2)
    t = target("mysql", db.dsn(), {"workload": {}})
    snapshot = asyncio.run(collect_once(store, MySQLWorkloadCollector, MySQLSession, t))
    assert snapshot.error is None, snapshot.error
    profile = snapshot.fact(WorkloadProfile)
    assert profile is not None and profile.statements_available
    return profile, evaluate(store, "mysql", "strategy")


def _tables(findings: list[Finding], rule: str) -> set[str]:
    return {f.evidence["table"] for f in by_rule(findings, rule) if f.evidence["table"].startswith("strat.")}


def test_profile_reads_digests_and_table_io(advice):
    profile, findings = advice
    plans = next(t for t in profile.tables if t.name == "strat.plans")
    counters = next(t for t in profile.tables if t.name == "strat.counters")
    assert plans.updates == 10 and counters.updates == 1500
    [f] = by_rule(findings, "WorkloadProfile")
    assert f.evidence["kinds"]["point"]["calls"] >= 3000 and "recursive" in f.evidence["features"]
    assert f.evidence["growth_bytes_per_day"] is None and f.evidence["growth_basis"].startswith("unknown")


def test_cache_candidate_on_mariadb_fires_on_read_mostly_lookups_only(advice):
    _, findings = advice
    assert _tables(findings, "CacheCandidate") == {"strat.plans"}
    [f] = [f for f in by_rule(findings, "CacheCandidate") if f.evidence["table"] == "strat.plans"]
    assert f.evidence["point_reads"] >= 1500 and f.evidence["table_writes"] == 110


def test_graph_query_on_mariadb_needs_the_self_referencing_foreign_key(advice):
    _, findings = advice
    assert _tables(findings, "GraphQueryCandidate") == {"strat.categories"}
