"""The console's data and pages without a browser: the overview's filtering, sorting and paging, key numbers,
the bounded statement history, notification summaries, the outbox's newest rows, and the routes over HTTP
(aiohttp's test server: the handlers the agent mounts, on recorded snapshots).

The browser and a real agent: tests/test_console_browser.py.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from aiohttp import web

from dbwatch.agent.console.alertsview import notification_summary
from dbwatch.agent.console.fleet import Query, fleet_page, fleet_rows, key_numbers, parse_query
from dbwatch.agent.console.history import StatementHistory
from dbwatch.agent.console.sources import Sources
from dbwatch.agent.console.web import Console
from dbwatch.agent.outbox import Outbox
from dbwatch.agent.store import SnapshotStore
from dbwatch.model import Alert, AlertState, CollectorSettings, Snapshot, Target, gauge
from dbwatch.model.facts.common import PRIMARY, REPLICA, ReplicationLink, Summary
from dbwatch.model.facts.statements import StatementStats, Statements
from tests.agentproc import AgentProcess

NOW = 1_800_000_000.0


def stmt(queryid: int, seconds: float, calls: int = 10, total: float | None = None) -> StatementStats:
    return StatementStats(queryid=queryid, user="app", datname="shop", toplevel=True, query=f"SELECT {queryid}",
                          calls=calls, total_time_seconds=total if total is not None else seconds * 10,
                          max_time_seconds=1.0, rows=calls, shared_blks_hit=0, shared_blks_read=0,
                          temp_blks_written=0, delta_calls=calls, delta_time_seconds=seconds, delta_rows=calls,
                          delta_shared_blks_hit=0, delta_shared_blks_read=0, delta_temp_blks_written=0,
                          interval_seconds=60.0)


def snapshot(name: str, ok: bool = True, role: str = PRIMARY, connections: str = "10/100", lag: float | None = None,
             statements: tuple[StatementStats, ...] = (), disk: float | None = None, at: float = NOW) -> Snapshot:
    snap = Snapshot(target=name, engine="postgres", collector="postgres", started_at=at, ok=ok,
                    error=None if ok else "connection refused", version="15.6")
    if ok:
        snap.put(ReplicationLink(role=role, link_up=True if role == REPLICA else None, lag_seconds=lag),
                 Summary({"role": role, "connections": connections}))
        if statements:
            snap.put(Statements(statements))
        if disk is not None:
            family = gauge("dbwatch_host_filesystem_used_ratio", "used", ("mountpoint",))
            family.add(("/",), disk / 2)
            family.add(("/data",), disk)
            snap.families.append(family)
    return snap


def fleet(snapshots: list[Snapshot], alerts: list[Alert] = (), labels: dict[str, dict[str, str]] | None = None) -> Sources:
    store = SnapshotStore()
    targets = {}
    for snap in snapshots:
        store.put(snap)
        targets[snap.target] = Target(name=snap.target, engine=snap.engine, dsn="", labels=(labels or {}).get(snap.target, {}),
                                      collectors={"postgres": CollectorSettings(15, 10)})
    return Sources(store=store, targets=lambda: targets, up_collector=lambda name: "postgres",
                   alerts=lambda: list(alerts))


def alert(target: str, severity: str = "critical", state: AlertState = AlertState.FIRING, name: str = "X") -> Alert:
    return Alert(f"{target}-{name}-{state}", {"alertname": name, "target": target, "severity": severity},
                 {"summary": f"{name} on {target}"}, state, 1.0, active_since=NOW - 60)


def test_key_numbers_read_the_engine_neutral_facts():
    numbers = key_numbers([snapshot("a", role=REPLICA, connections="25/200", lag=3.5, disk=0.8,
                                    statements=(stmt(1, 3.0), stmt(2, 1.0)))])
    assert numbers == {"role": REPLICA, "connections_used": 0.125, "replication_lag_seconds": 3.5,
                       "top_statement_share": 0.75, "disk_used": 0.8}
    primary = key_numbers([snapshot("b", lag=9.0)])
    assert primary["replication_lag_seconds"] is None, "a primary has no lag of its own"
    assert key_numbers([snapshot("c", ok=False)]) == {"role": None, "connections_used": None,
                                                      "replication_lag_seconds": None, "top_statement_share": None,
                                                      "disk_used": None}


def test_the_overview_puts_problems_first_then_filters_sorts_and_pages_on_the_server():
    snaps = [snapshot("fine-1"), snapshot("fine-2", connections="90/100"), snapshot("gone", ok=False),
             snapshot("warned"), snapshot("paged"), snapshot("waiting")]
    sources = fleet(snaps, [alert("paged"), alert("warned", "warning"), alert("waiting", state=AlertState.PENDING)],
                    labels={"fine-1": {"env": "prod"}, "paged": {"env": "prod"}})
    rows = fleet_rows(sources)
    first = fleet_page(rows, Query())
    assert [r["name"] for r in first["rows"]] == ["gone", "paged", "warned", "waiting", "fine-1", "fine-2"]
    assert (first["total"], first["down"], first["alerting"]) == (6, 1, 2)
    assert [r["name"] for r in fleet_page(rows, Query(q="env=prod"))["rows"]] == ["paged", "fine-1"]
    assert [r["name"] for r in fleet_page(rows, Query(q="FINE"))["rows"]] == ["fine-1", "fine-2"]
    assert [r["name"] for r in fleet_page(rows, Query(state="down"))["rows"]] == ["gone"]
    by_connections = fleet_page(rows, Query(sort="connections"))["rows"]
    assert by_connections[0]["name"] == "fine-2" and by_connections[-1]["name"] == "gone", "unknown sorts last"
    assert by_connections[-1]["connections_used"] is None
    reversed_names = [r["name"] for r in fleet_page(rows, Query(sort="name", desc=True))["rows"]]
    assert reversed_names == sorted(reversed_names, reverse=True)
    page = fleet_page(rows, Query(sort="name", page=3, per=2))
    assert (page["page"], page["pages"], [r["name"] for r in page["rows"]]) == (3, 3, ["waiting", "warned"])
    assert fleet_page(rows, Query(page=99, per=4))["page"] == 2, "a page past the end shows the last"


def test_the_overview_query_string_reports_what_it_cannot_read_and_keeps_going():
    query, problems = parse_query({"sort": "size", "state": "sleepy", "page": "two", "per": "100000", "q": " a b "})
    assert problems == ["sort='size': expected one of problems, name, engine, role, alerts, connections, lag, "
                        "top_statement, disk", "state='sleepy': expected one of up, down, alerting, unknown",
                        "page='two': expected a whole number"]
    assert (query.sort, query.state, query.page, query.per, query.q) == ("problems", "", 1, 500, "a b")
    assert Query(q="x", sort="lag").params(page=2) == {"q": "x", "sort": "lag", "page": "2"}


def test_the_statement_history_keeps_an_hour_per_minute_and_stays_bounded():
    history = StatementHistory(per_target=3, buckets=60)
    for minute in range(90):
        snap = snapshot("t", statements=tuple(stmt(minute * 10 + i, 1.0 + i) for i in range(5)) + (stmt(1, 0.5),),
                        at=NOW + minute * 60)
        history.observe(snap)
        assert len(history._series["t"]) <= 6, "at most twice per_target statements per target"
    line = history.sparkline("t", "894:app:shop", NOW + 89 * 60)  # the top statement of the last reading
    assert line is not None and len(line) == 60 and line[-1] == 5.0 and sum(line) == 5.0
    assert history.sparkline("t", "1:app:shop", NOW + 89 * 60) is None, "never in the top: never kept"
    history.observe(snapshot("t", statements=(stmt(7, 2.0),), at=NOW + 200 * 60))
    assert list(history._series["t"]) == ["7:app:shop"], "an hour out of the top is forgotten"
    history.retain(set())
    assert history.targets() == set()


def test_a_notification_says_what_it_was_about_in_every_receivers_format():
    webhook = {"body": {"status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "TargetDown", "target": "pg1"}},
        {"status": "resolved", "labels": {"alertname": "LagHigh", "target": "pg2"}}]}}
    assert notification_summary(webhook) == "firing TargetDown on pg1; resolved LagHigh on pg2"
    alertmanager = {"body": [{"labels": {"alertname": "TargetDown", "target": "pg1"}, "endsAt": "2026-01-01T00:00:00Z"}]}
    assert notification_summary(alertmanager) == "resolved TargetDown on pg1"
    pagerduty = {"body": {"event_action": "trigger", "payload": {"summary": "[critical] TargetDown on pg1: down"}}}
    assert notification_summary(pagerduty) == "trigger: [critical] TargetDown on pg1: down"
    assert notification_summary({"body": {}}) == "(no alert in the body)"


def test_the_outbox_hands_its_newest_rows_first_without_reading_them_all(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        for i in range(30):
            outbox.enqueue("hook", {"body": {"n": i}}, NOW + i)
        first = outbox.next_pending("hook")
        outbox.mark_delivered(first.id, NOW + 100)
        recent = outbox.recent(5)
        assert [r["payload"]["body"]["n"] for r in recent] == [29, 28, 27, 26, 25]
        assert outbox.recent(100)[-1]["status"] == "delivered" and len(outbox.recent(100)) == 30
    finally:
        outbox.close()


async def serve(sources: Sources) -> TestClient:
    app = web.Application()
    app.add_routes(Console(sources, version="test").routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_the_pages_escape_what_targets_and_alerts_carry_and_the_api_pages_and_refuses_bad_parameters():
    evil = "<script>alert(1)</script>"
    sources = fleet([snapshot("pg1", statements=(stmt(1, 2.0),)), snapshot("pg2", ok=False)],
                    [alert("pg1", name="Evil")], labels={"pg1": {"team": evil}})
    sources.targets_info = lambda: [{"name": "pg1", "collectors": {}}, {"name": "pg2", "collectors": {}}]
    client = await serve(sources)
    try:
        overview = await client.get("/")
        html = await overview.text()
        assert overview.status == 200 and evil not in html and "&lt;script&gt;" in html
        assert "default-src 'self'" in overview.headers["Content-Security-Policy"]
        gzipped = await client.get("/", headers={"Accept-Encoding": "gzip"})
        assert gzipped.headers["Content-Encoding"] == "gzip" and "<h1>Fleet</h1>" in await gzipped.text()
        target = await client.get("/targets/pg1")
        assert target.status == 200 and "SELECT 1" in await target.text()
        assert (await client.get("/targets/nope")).status == 404
        api = await client.get("/api/v1/targets", params={"state": "down"})
        assert [t["name"] for t in await api.json()] == ["pg2"] and api.headers["X-Total-Count"] == "1"
        everything = await (await client.get("/api/v1/targets")).json()
        assert [t["name"] for t in everything] == ["pg1", "pg2"] and everything[0]["alerts_firing"] == 1
        bad = await client.get("/api/v1/targets", params={"sort": "size"})
        assert bad.status == 400 and "sort='size'" in (await bad.json())["error"]
        detail = await (await client.get("/api/v1/targets/pg1")).json()
        assert detail["statements"][0]["query"] == "SELECT 1" and detail["statements"][0]["mean_ms"] == 2000.0
        assert (await client.get("/api/v1/targets/nope")).status == 404
        alerts = await client.get("/alerts", params={"label.alertname": "Evil", "label.target": "pg1"})
        text = await alerts.text()
        assert "alertname=Evil\ntarget=pg1" in text, "the silence form prefilled from the query string"
        assert (await client.get("/static/console.css")).headers["Content-Type"].startswith("text/css")
        assert (await client.get("/static/../web.py")).status == 404
    finally:
        await client.close()


def test_the_overview_of_many_targets_renders_one_page_of_rows():
    sources = fleet([snapshot(f"t{i:04d}", connections=f"{i}/2000") for i in range(1400)])
    console = Console(sources, version="test")
    html = console.overview_html({"sort": "connections"})
    assert html.count("<tr class=\"rank") == 50 and "Page 1 of 28" in html and "t1399" in html


def test_with_the_console_turned_off_the_agent_serves_its_plain_index_and_jobs(tmp_path):
    agent = AgentProcess(tmp_path, {"targets": [], "server": {"console": {"enabled": False}}}).start()
    try:
        index = agent.get("/")
        assert "/metrics" in index and "Fleet" not in index
        assert agent.get("/api/v1/targets") == []
        assert agent.get("/alerts", check=False) == 404 and agent.get("/static/console.css", check=False) == 404
    finally:
        agent.stop()
