"""What the database server's own process uses on the machine, when dbwatch runs beside it
(collectors/server_process.py): CPU since the server started and the free space of its data directory's
filesystem. Put by the ``workload`` collectors for the strategy and capacity rules (ReadReplicasAdvised's CPU,
DatabaseWillFillDisk); absent when the server is remote or its process cannot be told apart.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerResources"]


@dataclass(frozen=True, slots=True)
class ServerResources:
    pid: int  # the server's main process (postmaster, mysqld)
    started_at: float  # the process's start, epoch seconds (the same server across readings when equal)
    cpu_seconds: float  # user + system CPU of the process and its children (live and ended) since the start
    cpus: int  # logical CPUs of the machine
    read_at: float  # epoch seconds of the reading
    data_path: str | None = None  # the data directory, when the server or the process said where
    filesystem_avail_bytes: int | None = None  # free to unprivileged users on the data directory's filesystem
    filesystem_bytes: int | None = None

    @property
    def cpu_share(self) -> float | None:
        """Average share of the machine's CPUs the server used since it started."""
        up = self.read_at - self.started_at
        return self.cpu_seconds / up / self.cpus if up > 0 and self.cpus > 0 else None

    def cpu_share_since(self, earlier: "ServerResources") -> float | None:
        """Average CPU share between an earlier reading of the same server process and this one."""
        span = self.read_at - earlier.read_at
        if earlier.pid != self.pid or abs(earlier.started_at - self.started_at) > 1 or span <= 0 or self.cpus <= 0:
            return None
        return max(0.0, self.cpu_seconds - earlier.cpu_seconds) / span / self.cpus
