"""The database server's process on this machine, when dbwatch runs beside it: CPU used since it started and
the free space of its data directory (fact :class:`~dbwatch.model.facts.server_resources.ServerResources`).

The server names a process id (PostgreSQL: a backend's, whose parent is the postmaster; MySQL/MariaDB: the
pid file's) and its own start time. The reading is kept only when a local process of that id runs the
server's program and started within a second or two of when the server says it did: a remote server, one in another PID
namespace (a container) or a pid reused by something else gives no reading, never a wrong one. Blocking
(/proc and statvfs): run it in a thread.
"""

from __future__ import annotations

import os
import time

import psutil

from dbwatch.model.facts.server_resources import ServerResources

__all__ = ["find_server", "local_server", "read_server"]

#: how far the process's start may be from the server's own account of it (clock ticks, rounding)
START_TOLERANCE = 3.0


def find_server(names: tuple[str, ...], started_at: float, data_path: str | None = None) -> int | None:
    """The one local process running one of ``names`` that started at ``started_at`` (epoch), for servers that
    say when they started but not their process id to an unprivileged client (MySQL/MariaDB: ``Uptime``;
    the pid file is often readable by its group only). Servers started within the same second or two (a
    primary and its replica on one machine) are told apart by their working directory, which MySQL/MariaDB
    sets to ``data_path``. None when none, or more than one, fits."""
    found = [p for p in psutil.process_iter(["name", "create_time"])
             if p.info["name"] in names and p.info["create_time"] is not None
             and abs(p.info["create_time"] - started_at) <= START_TOLERANCE]
    if len(found) > 1 and data_path:
        found = [p for p in found if _runs_in(p, data_path)]
    return found[0].pid if len(found) == 1 else None


def _runs_in(process: psutil.Process, path: str) -> bool:
    try:
        return bool(os.path.realpath(process.cwd()) == os.path.realpath(path))
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
        return False


def read_server(pid: int, started_at: float, names: tuple[str, ...], *, parent: bool = False,
                data_path: str | None = None) -> ServerResources | None:
    """The server process ``pid`` (its parent when ``parent``), if its program is one of ``names`` and it
    started at ``started_at`` (epoch)."""
    try:
        process = psutil.Process(pid)
        if parent:
            found = process.parent()
            if found is None:
                return None
            process = found
        if process.name() not in names or abs(process.create_time() - started_at) > START_TOLERANCE:
            return None
        times = process.cpu_times()
        # ended children (PostgreSQL's backends, reaped by the postmaster) are in children_*; live ones not yet
        cpu = times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                t = child.cpu_times()
                cpu += t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        path = data_path
        if path is None:
            try:
                path = process.cwd()  # the postmaster runs in its data directory
            except (psutil.AccessDenied, psutil.NoSuchProcess, OSError):
                path = None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None
    avail = total = None
    if path:
        try:
            fs = os.statvfs(path)
            avail, total = fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize
        except OSError:
            pass
    return ServerResources(pid=process.pid, started_at=process.create_time(), cpu_seconds=cpu,
                           cpus=psutil.cpu_count() or 1, read_at=time.time(), data_path=path,
                           filesystem_avail_bytes=avail, filesystem_bytes=total)


def local_server(names: tuple[str, ...], started_at: float, data_path: str | None) -> ServerResources | None:
    """:func:`read_server` of the process :func:`find_server` finds, if any."""
    pid = find_server(names, started_at, data_path)
    return None if pid is None else read_server(pid, started_at, names, data_path=data_path)
