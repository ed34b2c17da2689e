"""The host a database runs on, for the tuning rules: RAM, CPUs and whether its data sits on a spinning disk.

Read from this machine (psutil, /sys) only when the target is local (a loopback address or a Unix socket);
a remote target's host is whatever the audit collector's options say (``ram: 16GiB``, ``cpus: 8``,
``disk: ssd|hdd``), and unknown otherwise: the tuning rules that need it then stay silent.
Configured values win over measured ones (a container sees the host's RAM, not its own limit).
"""

from __future__ import annotations

import os
import re
from typing import Any

import psutil

from dbwatch.collectors.options import AuditHostOptions
from dbwatch.model.facts.audit import HostFacts

__all__ = ["host_facts", "is_local", "parse_size"]

_LOOPBACK = ("localhost", "127.", "::1", "[::1]")
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def is_local(host: str | None) -> bool:
    """A Unix socket (empty host or a path) or a loopback address."""
    return not host or host.startswith("/") or host.startswith(_LOOPBACK)


def parse_size(value: Any) -> int:
    """``"16GiB"``, ``"512MB"``, ``1073741824`` → bytes (units are powers of 1024, as PostgreSQL's are)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    match = _SIZE.match(str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f'expected a size like "16GiB", got {value!r}')
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def host_facts(options: AuditHostOptions, local: bool, data_path: str | None) -> HostFacts:
    """Blocking (reads /sys): run it in a worker thread."""
    ram = parse_size(options.ram) if options.ram else None
    cpus = options.cpus or None
    disk = (options.disk or "auto").lower()
    rotational = {"ssd": False, "hdd": True}.get(disk)
    configured = ram is not None or cpus is not None or rotational is not None
    if local:
        ram = ram if ram is not None else psutil.virtual_memory().total
        cpus = cpus if cpus is not None else psutil.cpu_count()
        if rotational is None and data_path:
            rotational = _rotational(data_path)
        return HostFacts(ram_bytes=ram, cpus=cpus, rotational=rotational, source="local")
    return HostFacts(ram_bytes=ram, cpus=cpus, rotational=rotational, source="configured" if configured else "unknown")


def _rotational(path: str) -> bool | None:
    """/sys/dev/block/MAJ:MIN/queue/rotational of the path's device (a partition's parent disk's)."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    base = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    for candidate in (f"{base}/queue/rotational", f"{base}/../queue/rotational"):
        try:
            with open(candidate, encoding="ascii") as fh:
                return fh.read().strip() == "1"
        except OSError:
            continue
    return None  # overlay, tmpfs, a device-mapper stack we do not follow: unknown
