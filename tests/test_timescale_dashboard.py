"""deploy/grafana/timescaledb.json against a real Prometheus scraping a real `dbwatch run` watching a real
TimescaleDB 2.28.3 (tests/timescaleserver.py: built once when missing; skipped, with the reason, where
../shared is absent).

The database holds a hypertable with compressed chunks and a compression policy, a continuous aggregate
refreshed in the foreground and one never refreshed (both with refresh policies), and a user-defined action
that raises (a failing job). The agent collects every second; Prometheus scrapes it every second. Every
panel query must return data, except the one listed with its reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
from typing import Any, Iterator

import pytest
import yaml

from tests import timescaleserver
from tests.agentproc import AgentProcess
from tests.helpers import free_port, wait_for
from tests.pgcluster import PostgresServer
from tests.test_deploy_grafana import ROOT, dashboard_queries
from tests.test_deploy_grafana_engines import PrometheusAPI, resolve_variables, substitute

DASHBOARD = ROOT / "deploy" / "grafana" / "timescaledb.json"
EMPTY_HERE = {
    "Since last success": "no background job can succeed on this machine's PostgreSQL 15.20 build "
                          "(../shared/vendor/README.md); policies here run in the foreground, which records no run",
}
SETUP = """
CREATE EXTENSION timescaledb;
CREATE TABLE metrics (time timestamptz NOT NULL, device int NOT NULL, value float8);
SELECT create_hypertable('metrics', by_range('time', INTERVAL '1 day'));
INSERT INTO metrics SELECT t, d, random()
    FROM generate_series(now() - interval '10 days', now(), interval '5 minutes') t, generate_series(1, 3) d;
ALTER TABLE metrics SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');
SELECT add_compression_policy('metrics', INTERVAL '3 days', initial_start => now() + interval '1 day');
SELECT count(compress_chunk(c)) FROM show_chunks('metrics', older_than => INTERVAL '3 days') c;
CREATE MATERIALIZED VIEW metrics_hourly WITH (timescaledb.continuous) AS
    SELECT time_bucket('1 hour', time) AS bucket, device, avg(value) FROM metrics GROUP BY 1, 2 WITH NO DATA;
SELECT add_continuous_aggregate_policy('metrics_hourly', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', initial_start => now() + interval '1 day');
CREATE MATERIALIZED VIEW metrics_daily WITH (timescaledb.continuous) AS
    SELECT time_bucket('1 day', time) AS bucket, device, max(value) FROM metrics GROUP BY 1, 2 WITH NO DATA;
SELECT add_continuous_aggregate_policy('metrics_daily', start_offset => INTERVAL '30 days',
    end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour', initial_start => now() + interval '1 day');
CREATE PROCEDURE raising_action(job_id int, config jsonb) LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'dbwatch test: this action always fails'; END $$;
SELECT add_job('raising_action', '1 hour', job_name => 'failing action');
"""
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    reason = timescaleserver.unavailable()
    if reason:
        pytest.skip(reason)
    timescaleserver.ensure_installed()
    pg = timescaleserver.timescale_server()
    try:
        pg.psql("CREATE DATABASE tsdb")
        pg.psql(SETUP, database="tsdb")
        pg.psql("CALL refresh_continuous_aggregate('metrics_daily', NULL, now() - interval '1 day')", database="tsdb")
        yield pg
    finally:
        pg.destroy()


def test_every_panel_listed_as_empty_here_exists():
    titles = {panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    assert set(EMPTY_HERE) <= titles


@pytest.mark.skipif(shutil.which("prometheus") is None,
                    reason="prometheus is not installed (Debian package prometheus)")
def test_every_timescaledb_panel_returns_data_from_a_real_prometheus_scraping_an_agent_watching_timescaledb(
        tmp_path, server):
    prometheus = agent = None
    try:
        agent = AgentProcess(tmp_path, {"targets": [
            {"name": "tsdb", "engine": "postgres", "dsn": server.dsn(database="tsdb"), "interval": "1s",
             "labels": {"cluster": "ts1"}, "collectors": {"timescaledb": {"interval": "1s"}}},
        ]}).start()
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "dbwatch", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{agent.port}"]}]}],
        }))
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = PrometheusAPI(port)
        dashboard = json.loads(DASHBOARD.read_text())
        without_data: list[str] = []
        values: dict[str, str] = {}

        def every_panel_has_data() -> bool:
            assert prometheus is not None and prometheus.poll() is None, "prometheus exited"
            without_data.clear()
            try:
                values.update(resolve_variables(api, dashboard))
            except urllib.error.URLError:  # not listening yet
                return False
            if "$target" not in values:
                without_data.append("a variable offers no value")
                return False
            for where, expr in dashboard_queries(dashboard):
                title = re.match(r"panel '(.*)' [A-Z]$", where)
                if not api.query(substitute(expr, values)) and not (title and title.group(1) in EMPTY_HERE):
                    without_data.append(where)
            return not without_data

        try:
            wait_for(every_panel_has_data, TIMEOUT, "every TimescaleDB panel to return data", interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still without data: {without_data}\n{agent.log()[-3000:]}") from None
        assert values["$target"] == "(tsdb)" and values["$cluster"] == "(ts1)"
        failing: list[dict[str, Any]] = api.query(
            'dbwatch_timescaledb_job_consecutive_failures{target="tsdb", scheduled="true"} >= 1')
        assert any(s["metric"]["application_name"].startswith("failing action [") for s in failing)
        lagging = api.query('dbwatch_timescaledb_continuous_aggregate_lag_seconds{target="tsdb"} / '
                            'dbwatch_timescaledb_continuous_aggregate_expected_lag_seconds{target="tsdb"} > 2')
        assert [s["metric"]["view"] for s in lagging] == ["public.metrics_hourly"]
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(15)
        if agent is not None:
            agent.stop()
