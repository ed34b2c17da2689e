"""The CPU and memory limits of the container (cgroup) dbwatch runs in, v1 or v2.

Inside a container /proc/stat and /proc/meminfo describe the whole machine: a container limited to half a
core that uses all of it shows 25 % on a 2-core host. When the cgroup sets a CPU quota or a memory limit,
the host collector measures against it instead, so CpuHigh fires when the container is starved, not only
when the machine is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupReading", "read_cgroup"]

ROOT = Path("/sys/fs/cgroup")
_UNLIMITED_V1 = 1 << 60  # memory.limit_in_bytes without a limit is 2^63 rounded down to the page size


@dataclass(frozen=True, slots=True)
class CgroupReading:
    cpu_limit_cores: float | None  # None: no quota
    cpu_usage_seconds: float | None  # cumulative CPU time of the cgroup
    memory_limit_bytes: int | None  # None: no limit
    memory_used_bytes: int | None


def read_cgroup(proc_self_cgroup: str = "/proc/self/cgroup", root: Path = ROOT) -> CgroupReading:
    """What the cgroup of this process allows and uses; every figure None where the kernel tells nothing."""
    try:
        lines = Path(proc_self_cgroup).read_text().splitlines()
    except OSError:
        return CgroupReading(None, None, None, None)
    paths: dict[str, str] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path.lstrip("/")
    if "cpu" in paths or "memory" in paths:
        return _v1(root, paths)
    if "" in paths:
        return _v2(root / paths[""])
    return CgroupReading(None, None, None, None)


def _v1(root: Path, paths: dict[str, str]) -> CgroupReading:
    limit = None
    cpu = root / "cpu" / paths.get("cpu", "")
    quota, period = _int(cpu / "cpu.cfs_quota_us"), _int(cpu / "cpu.cfs_period_us")
    if quota is not None and period and quota > 0:
        limit = quota / period
    usage_ns = _int(root / "cpuacct" / paths.get("cpuacct", paths.get("cpu", "")) / "cpuacct.usage")
    memory = root / "memory" / paths.get("memory", "")
    mem_limit = _int(memory / "memory.limit_in_bytes")
    return CgroupReading(
        cpu_limit_cores=limit,
        cpu_usage_seconds=usage_ns / 1e9 if usage_ns is not None else None,
        memory_limit_bytes=mem_limit if mem_limit is not None and mem_limit < _UNLIMITED_V1 else None,
        memory_used_bytes=_int(memory / "memory.usage_in_bytes"),
    )


def _v2(group: Path) -> CgroupReading:
    limit = None
    try:
        quota, period = (group / "cpu.max").read_text().split()
        if quota != "max":
            limit = int(quota) / int(period)
    except (OSError, ValueError):
        pass
    usage = None
    try:
        for line in (group / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                usage = int(value) / 1e6
    except (OSError, ValueError):
        pass
    try:
        text = (group / "memory.max").read_text().strip()
        mem_limit = None if text == "max" else int(text)
    except (OSError, ValueError):
        mem_limit = None
    return CgroupReading(limit, usage, mem_limit, _int(group / "memory.current"))


def _int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
