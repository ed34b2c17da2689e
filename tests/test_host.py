"""The host collector on the machine the tests run on (its real /proc and filesystems)."""

import time

from dbwatch.agent.config import parse_config
from dbwatch.agent.jobs import TargetJobs
from tests.helpers import assert_declared


async def test_host_reports_cpu_from_the_second_collection_and_each_filesystem(tmp_path):
    config = parse_config(f"targets:\n  - name: box\n    engine: host\n    collectors:\n"
                          f"      host: {{paths: ['{tmp_path}', /nonexistent/dir]}}\n", "c.yaml", {})
    jobs = TargetJobs(config.resolved_targets()[0])
    first = await jobs.collect("host")
    assert first.ok and not first.family("dbwatch_host_cpu_usage_ratio").samples
    sum(i * i for i in range(200_000))  # some CPU between the readings
    time.sleep(0.05)
    second = await jobs.collect("host")
    [(_, cpu)] = second.family("dbwatch_host_cpu_usage_ratio").samples
    assert 0 <= cpu <= 1
    assert_declared(first)
    assert_declared(second)
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


CHILD = """
import asyncio, json, subprocess, sys, time
from dbwatch.agent.config import parse_config
from dbwatch.agent.jobs import TargetJobs

async def main():
    busy = subprocess.Popen([sys.executable, "-c", "import time\\nend = time.time() + 4\\nwhile time.time() < end: pass"])
    jobs = TargetJobs(parse_config("targets: [{name: box, engine: host}]", "c.yaml", {}).resolved_targets()[0])
    await jobs.collect("host")
    time.sleep(1.5)
    second = await jobs.collect("host")
    busy.kill()
    print(json.dumps({f.name: f.samples[0][1] for f in second.families if f.samples and not f.labelnames}))

asyncio.run(main())
"""


def test_in_a_container_with_half_a_core_cpu_and_memory_are_measured_against_its_limits(tmp_path):
    """A real cgroup v1 (cpu, cpuacct, memory) limited to 0.5 core and 512 MiB; a busy loop inside it uses
    all of its quota, which is a quarter of a 2-core machine: CpuHigh must see 100 %, not 25 %."""
    import os
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    import pytest

    root = Path("/sys/fs/cgroup")
    if not all(os.access(root / c, os.W_OK) for c in ("cpu", "cpuacct", "memory")):
        pytest.skip("needs writable cgroup v1 hierarchies cpu, cpuacct and memory (root on a cgroup v1 host)")
    name = f"dbwatch-test-{uuid.uuid4().hex[:8]}"
    groups = [root / c / name for c in ("cpu", "cpuacct", "memory")]
    for group in groups:
        group.mkdir()
    try:
        (groups[0] / "cpu.cfs_period_us").write_text("100000")
        (groups[0] / "cpu.cfs_quota_us").write_text("50000")
        (groups[2] / "memory.limit_in_bytes").write_text(str(512 << 20))
        enter = "; ".join(f"echo $$ > {g}/cgroup.procs" for g in groups)
        out = subprocess.run(["sh", "-c", f"{enter}; exec {sys.executable} -c '{CHILD}'"], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        figures = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    finally:
        for group in groups:
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    __import__("time").sleep(0.1)
    assert figures["dbwatch_host_cpu_limit_cores"] == 0.5
    assert figures["dbwatch_host_cpu_usage_ratio"] > 0.6, figures  # the machine-wide figure would be near 0.25
    assert figures["dbwatch_host_memory_limit_bytes"] == 512 << 20
    assert 0 < figures["dbwatch_host_memory_used_ratio"] < 0.5
