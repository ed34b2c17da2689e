"""The host collector on the machine the tests run on (its real /proc and filesystems)."""

import time

from dbwatch.agent.config import parse_config
from dbwatch.agent.jobs import TargetJobs


async def test_host_reports_cpu_from_the_second_collection_and_each_filesystem(tmp_path):
    config = parse_config(f"targets:\n  - name: box\n    engine: host\n    collectors:\n"
                          f"      host: {{paths: ['{tmp_path}', /nonexistent/dir]}}\n", "c.yaml", {})
    jobs = TargetJobs(config.resolved_targets()[0])
    first = await jobs.collect("host")
    assert first.ok and first.family("dbwatch_host_cpu_usage_ratio").samples == []
    sum(i * i for i in range(200_000))  # some CPU between the readings
    time.sleep(0.05)
    second = await jobs.collect("host")
    [(_, cpu)] = second.family("dbwatch_host_cpu_usage_ratio").samples
    assert 0 <= cpu <= 1
    used = {labels[0]: value for labels, value in second.family("dbwatch_host_filesystem_used_ratio").samples}
    assert set(used) == {"/", str(tmp_path)} and all(0 <= v <= 1 for v in used.values())
    assert second.notes == ["cannot read the filesystem of /nonexistent/dir: it does not exist or is not readable"]


def test_host_engine_takes_no_dsn():
    import pytest

    from dbwatch.agent.config import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config("targets:\n  - {name: box, engine: host, host: db1}\n", "c.yaml", {})
    assert info.value.problems == ["targets[0]: the host engine watches the machine dbwatch runs on; "
                                   "it takes no dsn or host"]
