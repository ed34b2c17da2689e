"""Threshold rules: the schema and its errors, the functions over history, the engine's isolation of
failures, templates, and the Prometheus export checked against promtool's own rule evaluation.

Snapshots here are built in the test (they are data, not a server): what a rule computes from them is the
behaviour under test. The rules firing on real PostgreSQL servers are in test_alerting_e2e.py.
"""

from __future__ import annotations

import asyncio
import time
import shutil
import subprocess
import textwrap

import pytest
import yaml

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.model import Finding, FindingKind, Severity, Snapshot, counter, gauge
from dbwatch.rules.engine import RuleEngine, TargetView
from dbwatch.rules.promexport import export_prometheus_rules
from dbwatch.rules.spec import RulesConfig, ThresholdRule, load_rules, shipped_rules
from dbwatch.rules.thresholds import render_template
from tests.helpers import declared, wait_until

SHIPPED = ("TargetDown", "ReplicationLagHigh", "ConnectionsNearMax", "SlowStatements", "DiskAlmostFull", "CpuHigh",
           "DeadlocksIncreasing", "LongTransaction", "ArchivingFailing", "ReplicationSlotInactive", "WraparoundNear")
T0 = 1_700_000_000.0


class History:
    """An in-memory snapshot history in the shape of the agent's store."""

    def __init__(self) -> None:
        self.snapshots: dict[tuple[str, str], list[Snapshot]] = {}

    def add(self, at: float, *families, collector: str = "postgres", target: str = "db1", ok: bool = True) -> None:
        snap = Snapshot(target=target, engine="postgres", collector=collector, started_at=at, ok=ok,
                        families=list(families))
        self.snapshots.setdefault((target, collector), []).append(snap)

    def collectors(self, target: str) -> list[str]:
        return [c for t, c in self.snapshots if t == target]

    def history(self, target: str, collector: str) -> list[Snapshot]:
        return self.snapshots.get((target, collector), [])


def shipped(name: str, engine: str = "postgres") -> ThresholdRule:
    [found] = [r for r in shipped_rules() if r.alert == name and (not r.engines or engine in r.engines)]
    return found


def rule(**fields) -> ThresholdRule:
    return ThresholdRule.model_validate({"alert": "Test", "op": ">", "threshold": 0, "summary": "s", **fields})


def fire(rules, history: History, now: float, engine: str = "postgres", labels=None) -> list[Finding]:
    engine_ = RuleEngine(rules)
    return engine_.evaluate(TargetView(history, "db1", engine, labels or {}, now))


def fam(name: str, kind=gauge, labels: dict[str, float] | None = None, value: float | None = None, label="datname"):
    family = kind(name, "help", (label,) if labels is not None else ())
    if labels is not None:
        for key, v in labels.items():
            family.add((key,), v)
    else:
        family.add((), value)
    return family


# -- the shipped rules --------------------------------------------------------------------------------


def test_every_shipped_rule_is_present_and_reads_a_metric_the_catalog_declares():
    rules = {r.alert: r for r in shipped_rules()}
    assert set(SHIPPED) <= set(rules)
    for r in rules.values():
        for metric in [r.metric, *([r.divide_by.metric] if r.divide_by else [])]:
            assert declared(metric), f"{r.alert} reads {metric}, which the metric catalog does not declare"


def test_overrides_change_threshold_for_and_severity_and_disable():
    config = RulesConfig.model_validate({"overrides": {
        "ReplicationLagHigh": {"threshold": 30, "for": "2m", "severity": "critical"},
        "CpuHigh": {"enabled": False},
    }})
    rules = {r.alert: r for r in load_rules(config)}
    assert (rules["ReplicationLagHigh"].threshold, rules["ReplicationLagHigh"].for_,
            rules["ReplicationLagHigh"].severity) == (30, 120, "critical")
    assert "CpuHigh" not in rules and "DiskAlmostFull" in rules


def test_a_rule_name_has_one_variant_per_engine_and_an_override_changes_them_all():
    variants = [r for r in load_rules(RulesConfig.model_validate({"overrides": {"ReplicationLagHigh": {"threshold": 9}}}))
                if r.alert == "ReplicationLagHigh"]
    assert sorted(r.engines for r in variants) == [("mysql",), ("postgres",), ("redis",)]
    assert {r.threshold for r in variants} == {9}
    with pytest.raises(ConfigError) as err:
        parse_config("rules:\n  custom:\n    - {alert: Twice, metric: a, op: '>', threshold: 1, summary: s, engines: [mysql]}\n"
                     "    - {alert: Twice, metric: b, op: '>', threshold: 1, summary: s, engines: [mysql, redis]}\n")
    assert err.value.problems == ["rules.custom[1].alert: 'Twice' is already defined in rules.custom[0] (change a "
                                  "shipped rule with rules.overrides; variants need disjoint engines)"]


def test_the_issue_contract_config_parses():
    config = parse_config(textwrap.dedent("""
        receivers:
          - {name: oncall, type: webhook, url: "http://127.0.0.1:9000/hook", match: {severity: critical}, group_wait: 0s}
          - {name: am, type: alertmanager, url: "http://127.0.0.1:9093"}
        rules:
          overrides:
            TargetDown: {for: 0s}
          custom:
            - alert: ManyBackends
              metric: pg_stat_activity_count
              match: {state: idle}
              op: ">"
              threshold: 0
              for: 0s
              severity: warning
              summary: "{{ $value }} idle backends on {{ $labels.target }}"
    """))
    rules = {r.alert: r for r in load_rules(config.rules)}
    assert rules["TargetDown"].for_ == 0 and rules["ManyBackends"].match == {"state": "idle"}


@pytest.mark.parametrize("rules_yaml, problem", [
    ("custom: [{alert: A1, metric: m, op: '=>', threshold: 1, summary: s}]", "rules.custom[0].op: "),
    ("custom: [{alert: A1, metric: m, op: '>', threshold: high, summary: s}]", "rules.custom[0].threshold: "),
    ("custom: [{alert: A1, op: '>', threshold: 1}]", "rules.custom[0].metric: required key is missing"),
    ("custom: [{alert: a_1, metric: m, op: '>', threshold: 1, summary: s}]", "rules.custom[0].alert: expected a CamelCase"),
    ("custom: [{alert: A1, metric: m, op: '>', threshold: 1, summary: '{{ .Value }}'}]",
     "rules.custom[0].summary: unsupported template"),
    ("custom: [{alert: A1, metric: m, op: '>', threshold: 1, summary: s, for: soon}]",
     'rules.custom[0].for: expected a duration like "15s"'),
    ("custom: [{alert: A1, metric: m, op: '>', threshold: 1, summary: s, window: 1m}]", "rules.custom[0].window: only used with one of"),
    ("custom: [{alert: A1, metric: m, op: '>', threshold: 1, summary: s, labels: {target: x}}]",
     "rules.custom[0].labels: "),
    ("custom: [{alert: A1, metric: m, op: '>', threshold: 1, summary: s, tresh: 2}]",
     "rules.custom[0].tresh: unknown key"),
    ("custom: [{alert: TargetDown, metric: m, op: '>', threshold: 1, summary: s}]",
     "rules.custom[0].alert: 'TargetDown' is already defined in rules/defaults.yaml"),
    ("overrides: {TargetDwn: {for: 0s}}", "rules.overrides.TargetDwn: no rule of that name"),
    ("overrides: {TargetDown: {threshold: x}}", "rules.overrides.TargetDown.threshold: "),
    ("overrides: {TargetDown: {window: 5m}}", "rules.overrides.TargetDown.window: "),
    ("files: [/nonexistent/rules.yml]", "/nonexistent/rules.yml: cannot read the file"),
])
def test_bad_rules_give_errors_naming_their_path(rules_yaml, problem):
    with pytest.raises(ConfigError) as err:
        parse_config(f"rules:\n  {rules_yaml}\n", "dbwatch.yaml")
    assert any(line.startswith(problem) or problem in line for line in err.value.problems), err.value.problems


def test_a_bad_rule_file_names_the_file_and_the_rule(tmp_path):
    path = tmp_path / "team.rules.yml"
    path.write_text("rules:\n  - {alert: Ok1, metric: m, op: '>', threshold: 1, summary: s}\n"
                    "  - {alert: Bad, metric: 'not a name', op: '>', threshold: 1, summary: s}\n")
    with pytest.raises(ConfigError) as err:
        parse_config(f"rules:\n  files: ['{path}']\n")
    assert err.value.problems == [f"{path}: rules[1].metric: expected a Prometheus metric name, got 'not a name'"]
    path.write_text("rules: [\n")
    with pytest.raises(ConfigError) as err:
        parse_config(f"rules:\n  files: ['{path}']\n")
    assert err.value.problems[0].startswith(f"{path}: line ") and "not valid YAML" in err.value.problems[0]


# -- functions over history ----------------------------------------------------------------------------


def test_value_compares_the_newest_snapshot_only_and_a_failed_collection_has_no_value():
    h = History()
    h.add(T0, fam("lag", value=9))
    h.add(T0 + 15, fam("lag", value=2))
    assert fire([rule(metric="lag", threshold=5)], h, T0 + 15) == []
    h.add(T0 + 30, fam("lag", value=7))
    [finding] = fire([rule(metric="lag", threshold=5)], h, T0 + 30)
    assert finding.value == 7
    h.add(T0 + 45, ok=False)  # the server went away: no lag figure, no lag alert
    assert fire([rule(metric="lag", threshold=5)], h, T0 + 45) == []


def test_increase_and_rate_survive_a_counter_reset_and_only_use_the_window():
    h = History()
    for at, value in [(T0, 100), (T0 + 60, 5), (T0 + 120, 10), (T0 + 180, 16), (T0 + 240, 19)]:
        h.add(at, fam("deadlocks", counter, {"app": value}))
    inc = rule(metric="deadlocks", function="increase", window="3m", threshold=0)
    # samples in the last 3 minutes (T0+60 .. T0+240): 5 -> 10 -> 16 -> 19 = 14
    [f] = fire([inc], h, T0 + 240)
    assert f.value == 14 and f.labels == {"datname": "app"}
    # the whole history: 100 -> 5 is a reset (counts 5), then +5, +6, +3 = 19
    [f] = fire([rule(metric="deadlocks", function="increase", window="10m")], h, T0 + 240)
    assert f.value == 19
    [f] = fire([rule(metric="deadlocks", function="rate", window="10m")], h, T0 + 240)
    assert f.value == pytest.approx(19 / 240)
    # one sample in the window: no change to speak of, no finding
    assert fire([rule(metric="deadlocks", function="increase", window="30s")], h, T0 + 240) == []


def test_avg_max_min_over_a_window():
    h = History()
    for i, value in enumerate([0.2, 0.9, 0.95, 0.85]):
        h.add(T0 + 15 * i, fam("cpu", value=value), collector="host")
    assert fire([rule(metric="cpu", function="avg", window="1m", threshold=0.8)], h, T0 + 45) == []  # avg 0.725
    [f] = fire([rule(metric="cpu", function="avg", window="40s", threshold=0.8)], h, T0 + 45)
    assert f.value == pytest.approx(0.9)
    [f] = fire([rule(metric="cpu", function="min", window="40s", threshold=0.8)], h, T0 + 45)
    assert f.value == 0.85
    [f] = fire([rule(metric="cpu", function="max", window="1m", threshold=0.8)], h, T0 + 45)
    assert f.value == 0.95


def test_matchers_aggregation_and_a_ratio_of_two_metrics():
    activity = gauge("pg_stat_activity_count", "h", ("datname", "state"))
    for labels, value in [(("app", "active"), 50), (("app", "idle"), 40), (("web", "idle"), 5)]:
        activity.add(labels, value)
    h = History()
    h.add(T0, activity, fam("pg_settings_max_connections", value=100))
    near = shipped("ConnectionsNearMax")
    [f] = fire([near], h, T0)
    assert f.value == pytest.approx(0.95) and f.labels == {"engine": "postgres"}
    assert f.summary == "db1 uses 95% of max_connections"
    idle = rule(metric="pg_stat_activity_count", match={"state": "idle"}, aggregate="sum", by=["datname"], threshold=4)
    assert sorted((f.labels["datname"], f.value) for f in fire([idle], h, T0)) == [("app", 40), ("web", 5)]
    regex = rule(metric="pg_stat_activity_count", match_re={"datname": "a.*"}, threshold=0)
    assert {f.labels["state"] for f in fire([regex], h, T0)} == {"active", "idle"}


def test_matchers_over_a_window_treat_a_missing_label_as_empty_and_match_regexes_whole():
    """A label the family does not have is "" (PromQL); a regex matches the whole value; equality and regex
    matchers hold together, over a window as on the latest value."""
    h = History()
    for i, values in enumerate([(1, 10, 3), (4, 10, 3), (9, 10, 30)]):
        family = counter("conns_total", "h", ("datname", "state"))
        for labels, value in zip([("app", "idle"), ("web", "idle"), ("apple", "active")], values):
            family.add(labels, value)
        h.add(T0 + 15 * i, family)
    grew = rule(metric="conns_total", function="increase", window="1m", match_re={"datname": "app"}, threshold=0)
    [f] = fire([grew], h, T0 + 30)
    assert (f.labels["datname"], f.value) == ("app", 8), "app only: 'app' does not match apple whole"
    absent = rule(metric="conns_total", function="increase", window="1m", match={"role": ""}, threshold=-1)
    assert sorted(f.labels["datname"] for f in fire([absent], h, T0 + 30)) == ["app", "apple", "web"]
    assert fire([rule(metric="conns_total", match={"role": "x"}, threshold=-1)], h, T0 + 30) == []
    both = rule(metric="conns_total", match={"state": "idle"}, match_re={"datname": "a.*"}, threshold=5)
    [f] = fire([both], h, T0 + 30)
    assert (f.labels["datname"], f.value) == ("app", 9)


def test_a_ratio_per_series_joins_on_the_shared_labels_and_skips_a_zero_divisor():
    h = History()
    for at, secs, calls in [(T0, {"1": 10.0, "2": 1.0, "3": 0.0}, {"1": 4, "2": 100, "3": 7}),
                            (T0 + 60, {"1": 22.0, "2": 2.0, "3": 0.0}, {"1": 8, "2": 200, "3": 7})]:
        h.add(at, fam("pg_stat_statements_seconds_total", counter, secs, label="queryid"),
              fam("pg_stat_statements_calls_total", counter, calls, label="queryid"), collector="statements")
    slow = shipped("SlowStatements")
    [f] = fire([slow], h, T0 + 60)
    assert f.labels == {"queryid": "1", "engine": "postgres"} and f.value == pytest.approx(3.0)  # 12 s / 4 calls
    assert f.summary == "Statement 1 on db1 takes 3s on average"


def test_a_rule_that_raises_is_counted_and_the_others_still_run(caplog):
    h = History()
    ambiguous = gauge("by_db", "h", ("datname",))
    ambiguous.add(("a",), 1)
    h.add(T0, fam("lag", value=9), ambiguous, fam("plain", value=5))
    broken = rule(alert="Broken", metric="plain", divide_by={"metric": "by_db"})  # by_db's labels are not on plain

    class Exploding:
        name, engines = "Exploding", ()

        def evaluate(self, view):
            raise RuntimeError("bug in a python rule")

    engine = RuleEngine([broken, rule(alert="LagHigh", metric="lag", threshold=5)], [Exploding()])
    for _ in range(3):
        findings = engine.evaluate(TargetView(h, "db1", "postgres", {}, T0))
        assert [f.rule for f in findings] == ["LagHigh"]
    errors = {fam.name: fam for fam in engine.metrics()}["dbwatch_rule_errors_total"]
    assert errors.value(rule="Broken") == 3 and errors.value(rule="Exploding") == 3
    logged = [r for r in caplog.records if "failed on db1" in r.getMessage()]
    assert len(logged) == 2, "one log line per distinct error, not one per evaluation"


def test_findings_carry_target_labels_series_labels_and_rule_labels_and_respect_engines():
    h = History()
    h.add(T0, fam("lag", labels={"x": 9}))
    r = rule(metric="lag", labels={"team": "dba"}, engines=["postgres"],
             summary="{{ $labels.datname }}/{{ $labels.env }} {{ $labels.severity }}")
    [f] = fire([r], h, T0, labels={"env": "prod", "datname": "from-target"})
    assert f.labels == {"env": "prod", "datname": "x", "team": "dba", "engine": "postgres"}
    assert f.summary == "x/prod warning" and f.kind == FindingKind.ALERT and f.severity == Severity.WARNING
    assert fire([r], h, T0, engine="host") == []


@pytest.mark.parametrize("template, value, expected", [
    ("{{ $value }}", 0.5, "0.5"),
    ("{{ $value | humanizePercentage }}", 0.8512, "85.12%"),
    ("{{ $value | humanizeDuration }}", 3725, "1h 2m 5s"),
    ("{{ $value | humanizeDuration }}", 2.5, "2.5s"),
    ("{{ $value | humanizeDuration }}", 0.25, "250ms"),
    ("{{$value|humanize}}", 1234567, "1.235M"),
    ("{{ $labels.missing }}!", 1, "!"),
])
def test_templates_render_like_prometheus(template, value, expected):
    assert render_template(template, {"target": "db1"}, value) == expected


# -- the Prometheus export ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (apt-get install prometheus)")
    return path


def test_exported_rules_fire_in_prometheus_on_the_data_dbwatch_fires_on(tmp_path, promtool):
    """promtool evaluates the exported PromQL on series shaped like dbwatch's /metrics; the same alerts fire."""
    rules_file = tmp_path / "dbwatch.rules.yml"
    rules_file.write_text(export_prometheus_rules(load_rules()))
    tests = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": [
                {"series": 'pg_stat_activity_count{target="db1",datname="app",state="active"}', "values": "85x20"},
                {"series": 'pg_stat_activity_count{target="db1",datname="app",state="idle"}', "values": "5x20"},
                {"series": 'pg_settings_max_connections{target="db1"}', "values": "100x20"},
                {"series": 'pg_stat_database_deadlocks{target="db1",datid="5",datname="app"}', "values": "0 0 1 1 3x16"},
                {"series": 'dbwatch_target_up{target="db2"}', "values": "0x20"},
                {"series": 'dbwatch_pg_wraparound_margin_ratio{target="db1",datname="app"}', "values": "0.5x20"},
            ],
            "alert_rule_test": [
                expect("3m", "ConnectionsNearMax", {"severity": "warning", "target": "db1", "engine": "postgres"}, 0.9),
                expect("2m", "DeadlocksIncreasing",
                       {"severity": "warning", "target": "db1", "datid": "5", "datname": "app", "engine": "postgres"}, 3),
                expect("2m", "TargetDown", {"severity": "critical", "target": "db2"}, 0),
                {"eval_time": "2m", "alertname": "WraparoundNear", "exp_alerts": []},
            ],
        }],
    }
    tests_file = tmp_path / "tests.yml"
    tests_file.write_text(yaml.safe_dump(tests))
    # dbwatch's engine on the same figures fires the same alerts
    h = History()
    activity = gauge("pg_stat_activity_count", "h", ("datname", "state"))
    activity.add(("app", "active"), 85)
    activity.add(("app", "idle"), 5)
    h.add(T0, activity, fam("pg_settings_max_connections", value=100))
    assert [f.rule for f in fire(load_rules(), h, T0)] == ["ConnectionsNearMax"]
    out = subprocess.run([promtool, "test", "rules", str(tests_file)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def expect(at: str, name: str, labels: dict[str, str], value: float) -> dict:
    """promtool's expectation, with the annotations as dbwatch renders them: Prometheus must agree."""
    [r] = [x for x in load_rules() if x.alert == name and (not x.engines or labels.get("engine") in x.engines)]
    shown = {**labels, "alertname": name}
    return {"eval_time": at, "alertname": name, "exp_alerts": [{
        "exp_labels": labels,
        "exp_annotations": {"summary": render_template(r.summary, shown, value),
                            "description": render_template(r.description, shown, value)},
    }]}


# -- rules written in Python: recommendations beside alerts ---------------------------------------------


class AdviseVacuum:
    """A recommendation rule for the test: advises when the lag metric exists at all."""

    name, engines = "AdviseVacuum", ("postgres",)

    def evaluate(self, view):
        family = view.latest("lag")
        if family is not None:
            yield Finding(rule=self.name, target=view.target, kind=FindingKind.RECOMMENDATION,
                          severity=Severity.INFO, summary="vacuum it", evidence={"lag": family.value()})


def make_advisors(config):
    return [AdviseVacuum()]


async def test_python_rules_from_the_catalog_become_recommendations_on_metrics_and_the_api(tmp_path, monkeypatch):
    from dbwatch.agent.alerting import Alerting
    from dbwatch.model import Target
    from dbwatch.agent.store import SnapshotStore
    from dbwatch.rules import catalog

    monkeypatch.setattr(catalog, "FAMILIES", ("tests.test_rules:make_advisors",))
    config = parse_config(f"state_dir: {tmp_path}\n")
    store = SnapshotStore()
    targets = {"db1": Target("db1", "postgres", "postgresql://x@127.0.0.1/db", {}, {})}
    alerting = Alerting(config, store, lambda: targets, clock=lambda: T0)
    # the main collector's snapshot: it says whether the target is up (until it has, nothing is judged)
    store.put(Snapshot(target="db1", engine="postgres", collector="postgres", started_at=T0,
                       families=[fam("lag", value=3), fam("dbwatch_target_up", value=1)]))
    alerting.evaluate("db1")
    [advice] = alerting.recommendations_json()
    assert advice["rule"] == "AdviseVacuum" and advice["kind"] == "recommendation" and advice["evidence"] == {"lag": 3}
    families = {f.name: f for f in alerting.metrics()}
    assert families["dbwatch_recommendation"].value(rule="AdviseVacuum", target="db1", summary="vacuum it") == 1
    assert families["dbwatch_alerts"].samples == [], "a recommendation never becomes an alert"
    alerting.forget_target("db1")
    assert alerting.recommendations() == []
    await alerting.stop(0.1)


async def test_a_target_is_judged_when_its_main_collector_has_reported_and_at_least_every_tick(tmp_path, monkeypatch):
    """Before the main collector's first report another collector's snapshot does not stand in for it (rules
    would look for its facts there); once it has, the target is judged at least every TICK even while other
    targets' snapshots keep the loop busy (a fleet's), so that a pending alert fires on time."""
    from dbwatch.agent import alerting as alerting_module
    from dbwatch.agent.alerting import Alerting
    from dbwatch.agent.store import SnapshotStore
    from dbwatch.model import Target
    from dbwatch.rules import catalog

    monkeypatch.setattr(catalog, "FAMILIES", ("tests.test_rules:make_advisors",))
    monkeypatch.setattr(alerting_module, "TICK", 0.3)
    monkeypatch.setattr(alerting_module, "IDLE_TICK", 0.3)
    config = parse_config(f"state_dir: {tmp_path}\n")
    store = SnapshotStore()
    targets = {name: Target(name, "postgres", "postgresql://x@127.0.0.1/db", {}, {}) for name in ("quiet", "busy")}
    alerting = Alerting(config, store, lambda: targets, clock=lambda: T0)
    store.put(Snapshot(target="quiet", engine="postgres", collector="statements", started_at=T0,
                       families=[fam("lag", value=3)]))
    alerting.evaluate("quiet")
    assert alerting.recommendations("quiet") == [], "judged before the main collector reported"
    store.put(Snapshot(target="quiet", engine="postgres", collector="postgres", started_at=T0,
                       families=[fam("dbwatch_target_up", value=1)]))
    judged: list[str] = []
    judge = alerting._judge
    monkeypatch.setattr(alerting, "_judge", lambda name: (judged.append(name), judge(name))[1])
    await alerting.start()
    try:
        async def busy() -> None:
            while True:  # the other target's snapshots keep waking the loop
                store.put(Snapshot(target="busy", engine="postgres", collector="statements", started_at=T0))
                await asyncio.sleep(0.01)

        feeder = asyncio.ensure_future(busy())
        await wait_until(lambda: judged.count("quiet") >= 2, 5, "the quiet target judged by the tick twice")
        feeder.cancel()
        assert [f.rule for f in alerting.recommendations("quiet")] == ["AdviseVacuum"]
    finally:
        await alerting.stop(0.1)


async def test_the_tick_judges_targets_with_alerts_in_flight_often_and_the_others_only_as_their_snapshots_land(
        tmp_path, monkeypatch):
    """A pending or firing alert changes with time (it fires after its for:, resolves after keep_firing_for), so
    its target is judged every TICK; a target with none changes only when a snapshot of it lands (judged then),
    and the tick judges it every IDLE_TICK only, for the rules that read the clock."""
    from dbwatch.agent import alerting as alerting_module
    from dbwatch.agent.alerting import Alerting
    from dbwatch.agent.store import SnapshotStore
    from dbwatch.model import Target

    monkeypatch.setattr(alerting_module, "TICK", 0.1)
    monkeypatch.setattr(alerting_module, "IDLE_TICK", 60.0)
    store = SnapshotStore()
    targets = {name: Target(name, "postgres", "postgresql://x@127.0.0.1/db", {}, {}) for name in ("hot", "calm")}
    alerting = Alerting(parse_config(f"state_dir: {tmp_path}\n"), store, lambda: targets, clock=lambda: T0)
    monkeypatch.setattr(alerting.tracker, "timed_targets", lambda: {"hot"})  # an alert pending, say
    judged: list[str] = []
    monkeypatch.setattr(alerting, "_judge", lambda name: judged.append(name) or False)
    await alerting.start()
    try:
        await wait_until(lambda: judged.count("hot") >= 5, 5, "the target with an alert judged by the tick")
        assert judged.count("calm") == 1, "judged once at the start, then left alone while nothing landed"
        store.put(Snapshot(target="calm", engine="postgres", collector="postgres", started_at=T0))
        await wait_until(lambda: judged.count("calm") == 2, 5, "the calm target judged when its snapshot landed")
    finally:
        await alerting.stop(0.1)


async def test_a_targets_collections_landing_one_after_the_other_are_judged_once_together(tmp_path, monkeypatch):
    """A target's collectors share a phase and run one after the other on its session: their snapshots of one
    cycle are judged in one evaluation, once they stopped landing for SETTLE; a snapshot landing after that
    is judged again."""
    from dbwatch.agent import alerting as alerting_module
    from dbwatch.agent.alerting import Alerting
    from dbwatch.agent.store import SnapshotStore
    from dbwatch.model import Target

    monkeypatch.setattr(alerting_module, "SETTLE", 0.3)
    monkeypatch.setattr(alerting_module, "SETTLE_MAX", 5.0)
    store = SnapshotStore()
    targets = {"db": Target("db", "postgres", "postgresql://x@127.0.0.1/db", {}, {})}
    alerting = Alerting(parse_config(f"state_dir: {tmp_path}\n"), store, lambda: targets, clock=lambda: T0)
    judged: list[float] = []
    monkeypatch.setattr(alerting, "_judge", lambda name: judged.append(time.monotonic()) or False)
    await alerting.start()
    try:
        # the first pass comes at the loop's first tick, TICK (5 s) after the start: waited for with a margin
        await wait_until(lambda: len(judged) == 1, alerting_module.TICK + 5, "the start's judgement")
        landed = []
        for collector in ("postgres", "stats", "migrations"):
            store.put(Snapshot(target="db", engine="postgres", collector=collector, started_at=T0))
            landed.append(time.monotonic())
            await asyncio.sleep(0.05)
        await wait_until(lambda: len(judged) == 2, 5, "the cycle judged")
        assert judged[1] - landed[-1] >= 0.3, "judged before the collections stopped landing"
        await asyncio.sleep(0.5)
        assert len(judged) == 2, "three collections of one cycle judged more than once"
        store.put(Snapshot(target="db", engine="postgres", collector="postgres", started_at=T0 + 15))
        await wait_until(lambda: len(judged) == 3, 5, "the next cycle judged")
    finally:
        await alerting.stop(0.1)


async def test_a_pass_over_many_targets_lets_the_rest_of_the_agent_run_and_tells_the_receivers_once(
        tmp_path, monkeypatch):
    """A fleet's pass judges hundreds of targets: it gives the event loop back every SLICE (a scrape waiting on
    it is served meanwhile), and the receivers are updated once for the whole pass, not once per target."""
    from dbwatch.agent import alerting as alerting_module
    from dbwatch.agent.alerting import Alerting
    from dbwatch.agent.store import SnapshotStore
    from dbwatch.model import Target

    monkeypatch.setattr(alerting_module, "SLICE", 0.0)
    monkeypatch.setattr(alerting_module, "TICK", 0.1)  # the first pass comes with the first tick
    store = SnapshotStore()
    targets = {f"db{i:03d}": Target(f"db{i:03d}", "postgres", "postgresql://x@127.0.0.1/db", {}, {})
               for i in range(50)}
    alerting = Alerting(parse_config(f"state_dir: {tmp_path}\n"), store, lambda: targets, clock=lambda: T0)
    events: list[str] = []
    monkeypatch.setattr(alerting, "_judge", lambda name: events.append("judge") or True)
    monkeypatch.setattr(alerting.notifier, "update", lambda alerts, now=None: events.append("update"))

    async def other_work() -> None:
        while True:
            events.append("other")
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await alerting.start()
    try:
        await wait_until(lambda: "update" in events, 5, "the first pass over every target")
        first_pass = events[:events.index("update") + 1]
        assert first_pass.count("judge") == 50 and first_pass.count("update") == 1
        judged = [i for i, e in enumerate(first_pass) if e == "judge"]
        between = first_pass[judged[0]:judged[-1]]
        assert between.count("other") >= 40, "the pass held the event loop from its first target to its last"
    finally:
        other.cancel()
        await alerting.stop(0.1)
