"""Start-up stays light: ``dbwatch --version`` and ``dbwatch validate`` import no driver, no HTTP client and no
SQL parser (those are imported where they are used), checked with ``python -X importtime`` in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("aiohttp", "asyncpg", "aiomysql", "redis", "pymongo", "pglast", "sqlglot", "cassandra", "neo4j", "jinja2")


def _imported(*args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    code = "import sys; from dbwatch.agent.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", proc.stderr, re.MULTILINE))
    return {n.split(".")[0] for n in names}, proc


@pytest.mark.parametrize("args", [("--version",), ("validate", "-c", "config.example.yaml")])
def test_start_up_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    top, proc = _imported(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dbwatch" in top  # the parse of -X importtime's output found the package's own imports
    assert sorted(top.intersection(HEAVY)) == []


FLEET = """\
targets:
  - {name: pg, engine: postgres, dsn: "postgresql://dbwatch@127.0.0.1:5432/postgres", collectors: {statements: {top_n: 10}}}
  - {name: redis, engine: redis, dsn: "redis://127.0.0.1:6379/0"}
  - {name: mysql, engine: mysql, dsn: "mysql://dbwatch@127.0.0.1:3306/"}
  - {name: bouncer, engine: pgbouncer, dsn: "postgresql://dbwatch@127.0.0.1:6432/pgbouncer"}
  - {name: mongo, engine: mongodb, dsn: "mongodb://127.0.0.1:27017/"}
  - {name: ring, engine: cassandra, dsn: "cassandra://127.0.0.1:9042/"}
  - {name: graph, engine: neo4j, dsn: "bolt://127.0.0.1:7687"}
"""


def test_validate_of_every_engine_imports_no_driver(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(FLEET)
    top, proc = _imported("validate", "-c", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(top.intersection(HEAVY)) == []


def test_version_imports_no_configuration_model() -> None:
    top, proc = _imported("--version")
    assert proc.stdout.startswith("dbwatch ")
    assert "pydantic" not in top and "yaml" not in top
