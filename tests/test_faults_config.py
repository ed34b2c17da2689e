"""Issue 15, items 2, 3 and 9: bad config files given to the real `dbwatch validate` and `dbwatch run`
commands (subprocesses, real files): one line per problem, every problem at once, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from dbwatch.agent.config import parse_config


def dbwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", *args], capture_output=True, text=True,
                          timeout=60)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dbwatch.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_validate_reports_every_problem_of_the_file_in_one_run(tmp_path):
    path = write(tmp_path, f"""\
        state_dir: {tmp_path}/state
        targets:
          - name: db1
            engine: postgres
            dsn: postgresql://monitor@127.0.0.1:5432/postgres
            interval: fast
            colour: blue
          - name: db1
            engine: postgres
            dsn: postgresql://monitor@127.0.0.1:5432/postgres
            collectors:
              statements: {{top_n: many}}
        rules:
          overrides:
            ReplicatonLagHigh: {{threshold: 5}}
        """)
    result = dbwatch("validate", "-c", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    expected = [
        "targets[0].interval: expected a duration",
        "targets[0].colour: unknown key",
        "targets[1].collectors.statements.top_n:",
        "targets[1].name: 'db1' is already the name of another target",
        "rules.overrides.ReplicatonLagHigh: no rule of that name",
    ]
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    assert len(lines) == len(expected), lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_a_targets_own_checks_are_reported_beside_its_field_errors(tmp_path):
    path = write(tmp_path, """\
        targets:
          - name: db1
            engine: postgres
            interval: fast
          - name: cache
            engine: redis
            dsn: postgresql://monitor@127.0.0.1/0
            timeout: nope
        receivers:
          - {name: oncall, type: webhook, url: "http://127.0.0.1:9/"}
          - {name: oncall, type: webhook, url: "http://127.0.0.1:9/", timeout: bad}
        """)
    result = dbwatch("validate", "-c", str(path))
    assert result.returncode == 2
    assert sorted(line.removeprefix(f"{path}: ") for line in result.stderr.splitlines()) == sorted([
        'targets[0].interval: expected a duration like "15s", got "fast"',
        "targets[0]: needs a dsn or a host",
        'targets[1].timeout: expected a duration like "15s", got "nope"',
        "targets[1]: dsn scheme 'postgresql' does not match engine 'redis'",
        'receivers[1].timeout: expected a duration like "15s", got "bad"',
        "receivers[1].name: 'oncall' is already the name of another receiver",
    ])


def test_a_quoted_number_of_seconds_is_a_duration(tmp_path):
    config = parse_config(textwrap.dedent("""\
        targets:
          - name: db1
            engine: postgres
            dsn: postgresql://monitor@127.0.0.1:5432/postgres
            timeout: "10"
            interval: "2.5"
        """))
    [target] = config.resolved_targets()
    assert {s.timeout for s in target.collectors.values()} == {10.0}
    assert target.collectors["postgres"].interval == 2.5


def test_a_custom_rule_without_summary_gets_a_default_one(tmp_path):
    path = write(tmp_path, f"""\
        state_dir: {tmp_path}/state
        rules:
          custom:
            - alert: TooManyConnections
              metric: pg_stat_activity_count
              op: ">"
              threshold: 100
        """)
    assert dbwatch("validate", "-c", str(path)).returncode == 0
    exported = dbwatch("rules", "export", "-c", str(path))
    assert exported.returncode == 0, exported.stderr
    block = exported.stdout[exported.stdout.index("alert: TooManyConnections"):]
    summary = next(line for line in block.splitlines() if "summary:" in line)
    assert "TooManyConnections" in summary and "$labels.target" in summary and "100" in summary


def test_an_empty_config_file_is_refused_by_validate_and_run(tmp_path):
    for text in ("", "# only a comment\n"):
        path = write(tmp_path, text)
        for command in ("validate", "run"):
            result = dbwatch(command, "-c", str(path))
            assert result.returncode == 2, (command, result.stdout, result.stderr)
            assert result.stderr == f"{path}: (top level): the file is empty; write at least one section (targets, ...)\n"


def test_a_config_that_is_not_utf8_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "dbwatch.yaml"
    data = f"state_dir: {tmp_path}/state\ntargets: []\n# caf\xe9 au lait\n".encode("latin-1")
    path.write_bytes(data)
    for command in ("validate", "run", "check"):
        result = dbwatch(command, "-c", str(path))
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == f"{path}: line 3: not UTF-8 text (byte 0xe9 at offset {data.index(0xe9)}); " \
                                "save the file as UTF-8\n"
