"""Configuration: the example is valid, bad configs give one named line each, secrets never shown.

Pure parsing tests: no server is started.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from dbwatch.agent.config import ConfigError, load_config, parse_config
from dbwatch.model.configtypes import format_duration, parse_duration

ROOT = Path(__file__).resolve().parent.parent

GOOD_TARGET = """
targets:
  - name: pg
    engine: postgres
    dsn: postgresql://postgres@127.0.0.1:5432/postgres
"""


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml", environ or {})
    return info.value.problems


def test_example_config_is_valid_and_complete():
    config = load_config(ROOT / "config.example.yaml")
    target, host = config.resolved_targets()
    assert target.name == "local-postgres" and host.engine == "host"
    assert set(target.collectors) == {"postgres", "statements", "tables", "settings", "stats", "migrations",
                                      "timescaledb"}
    assert target.collectors["statements"].interval == 60
    assert target.collectors["statements"].options.top_n == 100
    assert target.labels == {"env": "dev"}


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    interval: fast"),
         'targets[0].interval: expected a duration like "15s", got "fast"'),
        (GOOD_TARGET.replace("engine: postgres", "engine: postgress"),
         "targets[0].engine: expected one of"),
        (GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    pasword_env: X"),
         "targets[0].pasword_env: unknown key"),
        ("servr: {}\n" + GOOD_TARGET, "servr: unknown key"),
        (GOOD_TARGET + "server: {listen: nowhere}\n", 'server.listen: expected "host:port"'),
        (GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    collectors: {statement: {}}"),
         "targets[0].collectors.statement: unknown collector for engine 'postgres'"),
        (GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    collectors: {statements: {top_n: many}}"),
         "targets[0].collectors.statements.top_n: expected int, got 'many'"),
        (GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    collectors: {statements: {topn: 3}}"),
         "targets[0].collectors.statements.topn: unknown key"),
        (GOOD_TARGET + GOOD_TARGET.replace("targets:\n", ""),
         "targets[1].name: 'pg' is already the name of another target"),
        (GOOD_TARGET.replace("    dsn: postgresql://postgres@127.0.0.1:5432/postgres\n", ""),
         "targets[0]: needs a dsn or a host"),
        (GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    labels: {target: x}"),
         "targets[0].labels: 'target' is set by dbwatch"),
        (GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    labels: {bad-name: x}"),
         "targets[0].labels: expected Prometheus label names"),
        (GOOD_TARGET.replace("dsn: postgresql", "dsn: mysql"), "targets[0]: dsn scheme 'mysql' does not match"),
        ("targets: [\n", "line "),
        ("- just\n- a list\n", "(top level): expected a mapping"),
        (GOOD_TARGET.replace("dsn: postgresql://postgres@127", "dsn: ${PGHOSTURI}"),
         "targets[0].dsn: environment variable PGHOSTURI is not set"),
        (GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    timeout: -5s"),
         'targets[0].timeout: expected a duration like "15s", got "-5s"'),
    ],
)
def test_bad_config_names_the_path_and_the_expectation(text, expected):
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_not_just_the_first():
    text = GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    interval: fast\n    colour: red")
    found = problems(text)
    assert len(found) == 2, found


def test_password_in_dsn_is_rejected_without_echoing_it():
    found = problems(GOOD_TARGET.replace("postgres@127", "postgres:hunter2secret@127"))
    assert found == ["targets[0].dsn: holds a password; put it in password_env or password_file instead"]
    assert not any("hunter2secret" in p for p in found)


def test_env_interpolation_with_default_and_value():
    text = GOOD_TARGET.replace("dsn: postgresql://postgres@127.0.0.1:5432/postgres",
                               "dsn: ${PGURI:-postgresql://x@127.0.0.1/db}\n    labels:\n      env: ${ENV_NAME}")
    config = parse_config(text, "cfg.yaml", {"ENV_NAME": "prod"})
    assert config.targets[0].dsn == "postgresql://x@127.0.0.1/db"
    assert config.targets[0].labels == {"env": "prod"}


def test_host_port_parts_build_a_dsn_without_password():
    text = """
targets:
  - name: pg
    engine: postgres
    host: ::1
    user: dbwatch
    database: app db
    sslmode: require
    password_env: PGPW
"""
    [target] = parse_config(text, "cfg.yaml", {}).resolved_targets()
    assert target.dsn == "postgresql://dbwatch@[::1]:5432/app%20db?sslmode=require"
    assert target.password_env == "PGPW"


def test_per_collector_settings_override_target_defaults():
    text = GOOD_TARGET.replace(
        "engine: postgres",
        "engine: postgres\n    interval: 5s\n    timeout: 2s\n    collectors: {statements: {interval: 30s, top_n: 7}}",
    )
    [target] = parse_config(text, "cfg.yaml", {}).resolved_targets()
    assert target.collectors["postgres"].interval == 5 and target.collectors["postgres"].timeout == 2
    assert target.collectors["statements"].interval == 30 and target.collectors["statements"].options.top_n == 7


def test_disabled_collector_is_not_scheduled():
    text = GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    collectors: {statements: {enabled: false}}")
    [target] = parse_config(text, "cfg.yaml", {}).resolved_targets()
    assert set(target.collectors) == {"postgres", "tables", "settings", "stats", "migrations", "timescaledb"}


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), (10, 10)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_duration_formatting_round_trips():
    for seconds in (0, 0.5, 15, 90, 7200, 3661):
        assert parse_duration(format_duration(seconds)) == seconds


def test_validate_command_exits_2_with_one_line_per_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_TARGET.replace("engine: postgres", "engine: postgres\n    interval: fast\n    colour: red")
                   .replace("postgres@127", "postgres:s3cr3tpw@127"))
    result = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "validate", "-c", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith(f"{bad}: targets[0]") for line in lines), lines
    assert "Traceback" not in result.stderr and "s3cr3tpw" not in result.stderr


def test_validate_command_accepts_the_example():
    result = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "validate", "-c",
                             str(ROOT / "config.example.yaml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ok (2 target(s))" in result.stdout
