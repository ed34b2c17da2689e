"""The engine registry (collectors/engines.py) as data: what every engine declares, that its classes load and
fit, and that reading the registry imports no database driver (``dbwatch validate`` and ``--version`` stay fast)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dbwatch.collectors.base import Collector, Session
from dbwatch.collectors.engines import ENGINE_NAMES, engine

DRIVERS = ("asyncpg", "aiomysql", "pymysql", "redis", "psycopg", "pymongo", "psutil", "pglast", "sqlglot")


def test_reading_every_engines_data_imports_no_driver():
    probe = ("import sys\n"
             "from dbwatch.collectors.engines import ENGINE_NAMES, engine\n"
             "for name in ENGINE_NAMES:\n"
             "    spec = engine(name)\n"
             "    spec.schemes, spec.default_port, spec.main_collector, list(spec.collectors), dict(spec.defaults)\n"
             f"print(sorted(m for m in {DRIVERS!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_an_engine_names_its_session_collectors_defaults_and_main_collector_consistently(name):
    spec = engine(name)
    assert spec.name == name
    assert set(spec.collectors) == set(spec.defaults) and spec.main_collector in spec.collectors
    for key in spec.collectors:
        collector = spec.collectors[key]
        assert issubclass(collector, Collector) and collector.name == key
    up_metric = spec.collectors[spec.main_collector].up_metric
    assert up_metric is None or up_metric.endswith("_up")  # the main collector says whether the target is up
    assert all(scheme == scheme.lower() for scheme in spec.schemes)


@pytest.mark.parametrize("name", [n for n in ENGINE_NAMES if engine(n).promote_action])
def test_an_engine_with_a_promote_action_has_a_session_that_overrides_promote(name):
    from dbwatch.model import CollectorSettings, Target

    spec = engine(name)
    target = Target(name="t", engine=name, dsn=f"{spec.schemes[0]}://u@127.0.0.1:1/db", labels={},
                    collectors={spec.main_collector: CollectorSettings(15, 5)})
    session = spec.session(target)
    assert isinstance(session, Session) and type(session).promote is not Session.promote
