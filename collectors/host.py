"""The machine (or container) dbwatch runs on: CPU, memory, load and the filesystems that matter.

Configured as a target of engine ``host``; ``paths`` adds filesystems to watch besides ``/`` — the
database's data directory when it is local. CPU use is measured between two collections (psutil keeps
the previous reading), so the first collection after start reports no CPU figure rather than a wrong one.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psutil

from dbwatch.model import Snapshot, Target, gauge
from dbwatch.collectors.base import Collector, CollectorError, Session
from dbwatch.collectors.cgroup import read_cgroup
from dbwatch.model.facts.common import Summary
from dbwatch.model.options import CollectorOptions, Texts


class HostSession(Session):
    """Nothing to connect to: the host is read through /proc and statvfs."""

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.primed = False
        self.cgroup_cpu: tuple[float, float] | None = None  # (monotonic time, cgroup CPU seconds) last read

    async def close(self) -> None:
        return None

    async def invalidate(self) -> None:
        return None


class HostOptions(CollectorOptions):
    paths: Texts = ()  # filesystems to report besides / (a database's data directory)


class HostCollector(Collector[HostSession, HostOptions]):
    name = "host"
    up_metric = None
    options_model = HostOptions

    async def collect(self, snapshot: Snapshot) -> None:
        paths = ["/", *self.options.paths]
        readings = await asyncio.to_thread(_read, paths)
        session = self.session
        cpu = gauge("dbwatch_host_cpu_usage_ratio", "Share of the CPU capacity available to dbwatch busy since the "
                    "previous collection: the container's CPU quota when one is set, else all CPUs.")
        limit = gauge("dbwatch_host_cpu_limit_cores", "The container's CPU quota in cores (absent without a quota).")
        group = readings["cgroup"]
        if group.cpu_limit_cores is not None and group.cpu_usage_seconds is not None:
            limit.add((), group.cpu_limit_cores)
            now, previous = time.monotonic(), session.cgroup_cpu
            session.cgroup_cpu = (now, group.cpu_usage_seconds)
            if previous is not None and now > previous[0]:
                used = (group.cpu_usage_seconds - previous[1]) / ((now - previous[0]) * group.cpu_limit_cores)
                cpu.add((), min(1.0, max(0.0, used)))
        elif session.primed:
            cpu.add((), readings["cpu"])
        session.primed = True
        if group.memory_limit_bytes is not None and group.memory_used_bytes is not None:
            readings["memory"] = min(1.0, group.memory_used_bytes / group.memory_limit_bytes)
        memory_limit = gauge("dbwatch_host_memory_limit_bytes",
                             "The container's memory limit (absent without one).")
        memory_limit.add((), group.memory_limit_bytes)
        cpus = gauge("dbwatch_host_cpus", "Logical CPUs.")
        cpus.add((), readings["cpus"])
        load = gauge("dbwatch_host_load1", "One-minute load average.")
        load.add((), readings["load1"])
        memory = gauge("dbwatch_host_memory_used_ratio",
                       "Share of memory in use: of the container's limit when one is set, else of the machine's.")
        memory.add((), readings["memory"])
        labels = ("path", "mountpoint")
        used = gauge("dbwatch_host_filesystem_used_ratio", "Share of the filesystem's space in use.", labels)
        size = gauge("dbwatch_host_filesystem_size_bytes", "Filesystem size.", labels)
        avail = gauge("dbwatch_host_filesystem_avail_bytes", "Space available to unprivileged users.", labels)
        for path, fs in readings["filesystems"].items():
            if fs is None:
                snapshot.notes.append(f"cannot read the filesystem of {path}: it does not exist or is not readable")
                continue
            key = (path, fs["mountpoint"])
            used.add(key, fs["used_ratio"])
            size.add(key, fs["size"])
            avail.add(key, fs["avail"])
        snapshot.families.extend([cpu, limit, cpus, load, memory, memory_limit, used, size, avail])
        busy = f"{cpu.samples[0][1]:.0%}" if cpu.samples else "measured from the second collection"
        snapshot.put(Summary({"cpu": busy, "memory": f"{readings['memory']:.0%}"}))


def _read(paths: list[str]) -> dict[str, Any]:
    try:
        filesystems: dict[str, dict[str, Any] | None] = {}
        for path in paths:
            try:
                stat = os.statvfs(path)
            except OSError:
                filesystems[path] = None
                continue
            total = stat.f_blocks * stat.f_frsize
            free = stat.f_bfree * stat.f_frsize
            filesystems[path] = {
                "size": total,
                "avail": stat.f_bavail * stat.f_frsize,
                # As df counts it: used over what users can have (reserved blocks excluded).
                "used_ratio": (total - free) / ((total - free) + stat.f_bavail * stat.f_frsize) if total else 0.0,
                "mountpoint": _mountpoint(path),
            }
        return {
            "cpu": psutil.cpu_percent(interval=None) / 100,
            "cpus": psutil.cpu_count() or 1,
            "load1": os.getloadavg()[0],
            "memory": psutil.virtual_memory().percent / 100,
            "filesystems": filesystems,
            "cgroup": read_cgroup(),
        }
    except OSError as exc:
        raise CollectorError(f"cannot read host statistics: {exc}") from None


def _mountpoint(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path
