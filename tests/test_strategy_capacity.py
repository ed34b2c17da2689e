"""Capacity: DiskWillFillIn, the early warning (a straight line through the free space, read a horizon ahead),
evaluated by dbwatch on recorded host history; its Prometheus twin is in deploy/prometheus/tests.yml."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dbwatch.model import gauge
from dbwatch.rules.spec import RulesConfig, RulesError, load_rules
from tests.test_rules import T0, History, fire, shipped

GB = 1e9


def _free(values: list[float], step: float = 60.0, mount: str = "/data") -> History:
    h = History()
    for i, value in enumerate(values):
        family = gauge("dbwatch_host_filesystem_avail_bytes", "help", ("mountpoint", "path"))
        family.add((mount, mount + "/pg"), value)
        h.add(T0 + step * i, family, collector="host", target="db1")
    return h


def _rule(config: dict | None = None):
    [found] = [r for r in load_rules(RulesConfig.model_validate(config or {})) if r.alert == "DiskWillFillIn"]
    return found


def test_fires_when_the_line_reaches_zero_within_the_horizon():
    # 100 GB free, 1 GB less each minute for ten minutes: empty in about an hour and a half
    history = _free([100 * GB - i * GB for i in range(11)])
    [f] = fire([shipped("DiskWillFillIn", "host")], history, T0 + 600, engine="host")
    assert f.labels["mountpoint"] == "/data"
    # the forecast 24 h ahead: 90 GB now, minus 1 GB a minute for 1,440 minutes
    assert f.value == pytest.approx(90 * GB - 1440 * GB, rel=1e-6)


def test_silent_on_slow_growth_and_on_a_flat_filesystem():
    slow = _free([100 * GB - i * 10e6 for i in range(11)])  # 10 MB a minute: 14 GB a day of 100 GB
    flat = _free([50 * GB] * 11)
    assert fire([shipped("DiskWillFillIn", "host")], slow, T0 + 600, engine="host") == []
    assert fire([shipped("DiskWillFillIn", "host")], flat, T0 + 600, engine="host") == []


def test_the_horizon_is_configurable():
    # 1 GB an hour from 30 GB free: a day and a quarter to go; the default 24 h horizon is silent, 48 h fires
    history = _free([30 * GB - i * GB / 60 for i in range(11)])
    assert fire([_rule()], history, T0 + 600, engine="host") == []
    longer = _rule({"overrides": {"DiskWillFillIn": {"horizon": "48h"}}})
    assert longer.horizon == 48 * 3600
    [f] = fire([longer], history, T0 + 600, engine="host")
    assert f.value < 0


def test_a_horizon_without_predict_linear_is_refused_naming_the_rule():
    with pytest.raises(ValidationError) as err:
        RulesConfig.model_validate({"custom": [{"alert": "X", "metric": "m", "function": "avg",
                                                "horizon": "1h", "op": ">", "threshold": 1}]})
    assert "horizon: given with function predict_linear, and only with it" in str(err.value)
    with pytest.raises(RulesError) as bad:  # an override on a rule that forecasts nothing
        load_rules(RulesConfig.model_validate({"overrides": {"DiskAlmostFull": {"horizon": "1h"}}}))
    assert "rules.overrides.DiskAlmostFull" in str(bad.value) and "horizon" in str(bad.value)
