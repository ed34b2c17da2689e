"""A restore drill: restore a backup source's newest backup into a throwaway server, check it, delete it.

:func:`run_drill` is the one entry point (the scheduled job in :mod:`restore_job` and
``dbwatch backup restore-test`` both call it). It picks the kind of restore from the source and the target's
engine, and hands a :class:`Drill` to that kind's module (:mod:`restore_pg`, :mod:`restore_basebackup`,
:mod:`restore_barman`, :mod:`restore_mariadb`, :mod:`restore_mariabackup`, :mod:`restore_redis`), which runs its steps through :meth:`Drill.step` so that every step is timed and named.

Safety, whatever the kind:

- one drill at a time on this machine: an exclusive ``flock`` on ``workdir/.dbwatch-drill.lock`` (a second
  drill, from the daemon or the command line, fails at once with "another drill is running");
- the workdir must have room for the backup's size plus a margin (and the size within ``max_disk``), or the
  drill refuses to start;
- every command runs under ``nice -n 19`` and ``ionice -c 3`` (idle I/O class), as an unprivileged user
  when the agent runs as root (``postgres``, ``mysql``, ``redis``);
- the throwaway server listens on a free loopback port and a socket in the drill's own directory, with its
  archiving off; nothing connects to the live server except the read-only row-count comparison;
- the drill's directory and its server are stopped and deleted in a ``finally``, on failure, timeout or
  cancellation alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import importlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

from dbwatch.collectors.backup_sources import SourceError, read_source, run_command
from dbwatch.model import BackupSpec, RestoreTestSpec, Target
from dbwatch.model.facts.restore import DrillStep, RestoreDrill, VerifyResult

__all__ = ["Drill", "DrillError", "Progress", "drill_kind", "free_port", "last_result", "low_priority", "newest_file",
           "run_as", "run_drill", "save_result", "tail", "wait_until"]

Progress = Callable[[str], None]
MARGIN = 0.2  # the workdir must hold the backup's size plus this fraction of it
MARGIN_MIN = 64 * 1024 * 1024  # ... and at least this much more
LOCK_NAME = ".dbwatch-drill.lock"
LOW_PRIORITY = ("nice", "-n", "19", "ionice", "-c", "3")


class DrillError(Exception):
    """The drill failed; the message says why in one line."""


def drill_kind(target: Target, spec: BackupSpec) -> str:
    """What a drill of this source restores: pgbackrest, pg_basebackup, barman, pg_dump, mariabackup,
    mariadb_dump or redis_rdb."""
    if spec.type == "pgbackrest":
        return "pgbackrest"
    directories = {("pg_basebackup", "postgres"): "pg_basebackup", ("mariabackup", "mysql"): "mariabackup",
                   ("barman", "postgres"): "barman"}
    if (spec.type, target.engine) in directories:
        return directories[(spec.type, target.engine)]
    if spec.type == "files":
        by_engine = {"postgres": "pg_dump", "mysql": "mariadb_dump", "redis": "redis_rdb"}
        if target.engine in by_engine:
            return by_engine[target.engine]
    raise DrillError(f"no restore drill for a {spec.type} source of a {target.engine} target")


async def run_drill(target: Target, spec: BackupSpec, progress: Progress | None = None) -> RestoreDrill:
    """Run one drill of ``spec`` (which must have ``restore_test``) and return its result; never raises for a
    failed drill (the result says why), only for a source without ``restore_test``."""
    test = spec.restore_test
    if test is None:
        raise ValueError(f"backup source {spec.name} has no restore_test")
    drill = Drill(target, spec, test, progress or (lambda line: None))
    try:
        kind = drill_kind(target, spec)
    except DrillError as exc:
        return drill.result("unknown", str(exc))
    error: str | None = None
    try:
        await asyncio.wait_for(drill.run(kind), test.timeout)
    except TimeoutError:
        error = f"the drill did not finish within its timeout of {test.timeout:g}s"
    except (DrillError, SourceError, OSError) as exc:
        error = str(exc)
    finally:
        await drill.cleanup()
    if error:
        drill.say(f"FAILED: {error}")
    result = drill.result(kind, error)
    save_result(target, spec, result)
    return result


def save_result(target: Target, spec: BackupSpec, drill: RestoreDrill) -> None:
    """Keep the last drill of a source in its workdir: the agent picks its schedule up after a restart and
    ``dbwatch runbook`` quotes its measured restore time. A workdir that cannot be written loses only that."""
    assert spec.restore_test is not None
    path = _result_path(target, spec)
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(dataclasses.asdict(drill), fh)
        os.replace(path + ".tmp", path)
    except OSError:
        pass


def last_result(target: Target, spec: BackupSpec) -> RestoreDrill | None:
    """The last drill of this source recorded in its workdir, if any (and readable)."""
    if spec.restore_test is None:
        return None
    try:
        with open(_result_path(target, spec), encoding="utf-8") as fh:
            data = json.load(fh)
        data["steps"] = tuple(DrillStep(**step) for step in data["steps"])
        data["verified"] = tuple(VerifyResult(**v) for v in data["verified"])
        data["compared"] = tuple(tuple(c) for c in data["compared"])
        return RestoreDrill(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _result_path(target: Target, spec: BackupSpec) -> str:
    assert spec.restore_test is not None
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{target.name}--{spec.name}")
    return os.path.join(spec.restore_test.workdir, f".dbwatch-last-drill-{name}.json")


@dataclass
class Drill:
    """One drill's state: its directory, what it restored, its timed steps and results."""

    target: Target
    spec: BackupSpec
    test: RestoreTestSpec
    progress: Progress
    started_at: float = field(default_factory=time.time)
    directory: str | None = None
    backup: str = ""
    backup_finished_at: float | None = None
    restored_to: float | None = None
    steps: list[DrillStep] = field(default_factory=list)
    verified: list[VerifyResult] = field(default_factory=list)
    compared: list[tuple[str, int, int | None]] = field(default_factory=list)
    #: called in cleanup, newest first: stop the throwaway server(s)
    stoppers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _lock_fd: int | None = None

    def say(self, line: str) -> None:
        self.progress(line)

    @asynccontextmanager
    async def step(self, name: str, detail: str = "") -> AsyncIterator[None]:
        """Time one step; a step that raises is recorded as failed and the error goes on."""
        self.say(f"{name}: {detail}..." if detail else f"{name}...")
        began = time.monotonic()
        try:
            yield
        except BaseException as exc:
            self.steps.append(DrillStep(name, time.monotonic() - began, False, str(exc) or type(exc).__name__))
            raise
        seconds = time.monotonic() - began
        self.steps.append(DrillStep(name, seconds, True, detail))
        self.say(f"{name}: done in {seconds:.1f}s")

    async def run(self, kind: str) -> None:
        self._take_lock()
        module = {"pgbackrest": "restore_pg", "pg_dump": "restore_pg", "mariadb_dump": "restore_mariadb",
                  "redis_rdb": "restore_redis", "pg_basebackup": "restore_basebackup",
                  "mariabackup": "restore_mariabackup", "barman": "restore_barman"}[kind]
        await importlib.import_module(f"dbwatch.collectors.{module}").restore(self, kind)

    def make_directory(self, owner: str | None) -> str:
        """The drill's own directory in workdir (owned by ``owner`` when running as root)."""
        self.directory = tempfile.mkdtemp(prefix="dbwatch-drill-", dir=self.test.workdir)
        os.chmod(self.directory, 0o700)
        if owner and os.geteuid() == 0:
            shutil.chown(self.directory, owner, owner)
        return self.directory

    def check_space(self, size: float | None) -> None:
        """Refuse when the workdir cannot hold ``size`` bytes plus the margin (or ``max_disk`` is smaller)."""
        if size is None:
            raise DrillError("the size of the backup is unknown, so the space it needs cannot be checked")
        needed = size + max(MARGIN * size, MARGIN_MIN)
        free = shutil.disk_usage(self.test.workdir).free
        if self.test.max_disk is not None and needed > self.test.max_disk:
            raise DrillError(f"the restore needs about {_mib(needed)} (backup {_mib(size)} plus margin), "
                             f"more than max_disk {_mib(self.test.max_disk)}")
        if needed > free:
            raise DrillError(f"refused: the restore needs about {_mib(needed)} (backup {_mib(size)} plus margin) "
                             f"and {self.test.workdir} has {_mib(free)} free")

    async def verify_all(self, run: Callable[[str], Awaitable[str]]) -> None:
        """Run every verification statement on the restored copy; any failure fails the drill."""
        if not self.test.verify:
            return
        async with self.step("verify", f"{len(self.test.verify)} statement(s)"):
            for statement in self.test.verify:
                try:
                    out = (await run(statement)).strip()
                    self.verified.append(VerifyResult(statement, True, out.splitlines()[0] if out else ""))
                    self.say(f"verify: {statement} -> {self.verified[-1].result}")
                except DrillError as exc:
                    self.verified.append(VerifyResult(statement, False, str(exc)))
            failed = [v for v in self.verified if not v.ok]
            if failed:
                raise DrillError(f"verification failed: {failed[0].statement}: {failed[0].result}")

    async def command(self, argv: list[str], user: str | None = None, stdin_path: str | None = None,
                      env: dict[str, str] | None = None) -> str:
        """Run a command at low priority (as ``user`` when root; reading ``stdin_path``; with ``env`` added to
        the environment); its stdout, or DrillError."""
        environment = {**os.environ, **env} if env else None
        try:
            if stdin_path is None:
                out = await run_command(low_priority(argv, user), self.test.timeout, environment)
            else:
                with open(stdin_path, "rb") as fh:
                    out = await run_command(low_priority(argv, user), self.test.timeout, environment, stdin=fh)
        except SourceError as exc:  # named after the tool, not the nice in front of it
            raise DrillError(str(exc).replace(LOW_PRIORITY[0], os.path.basename(argv[0]), 1)) from None
        return out.decode(errors="replace")

    async def spawn(self, argv: list[str], user: str | None, name: str) -> asyncio.subprocess.Process:
        """Start a throwaway server in the foreground of its own process group; cleanup kills the group."""
        proc = await asyncio.create_subprocess_exec(
            *low_priority(argv, user), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)

        async def stop() -> None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), 10.0)

        self.stoppers.append(stop)
        return proc

    async def cleanup(self) -> None:
        began = time.monotonic()
        problems = []
        for stop in reversed(self.stoppers):
            try:
                await asyncio.shield(stop())
            except Exception as exc:  # cleanup goes on whatever one stopper did
                problems.append(str(exc))
        if self.directory:
            await asyncio.to_thread(shutil.rmtree, self.directory, True)
            if os.path.exists(self.directory):
                problems.append(f"could not delete {self.directory}")
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.steps.append(DrillStep("cleanup", time.monotonic() - began, not problems, "; ".join(problems)))

    def result(self, kind: str, error: str | None) -> RestoreDrill:
        return RestoreDrill(
            source=self.spec.name, kind=kind, started_at=self.started_at, finished_at=time.time(),
            ok=error is None, rto_seconds=self.test.rto, every_seconds=self.test.every, error=error,
            backup=self.backup, backup_finished_at=self.backup_finished_at, restored_to=self.restored_to,
            steps=tuple(self.steps), verified=tuple(self.verified), compared=tuple(self.compared),
        )

    def _take_lock(self) -> None:
        if not os.path.isdir(self.test.workdir):
            raise DrillError(f"workdir {self.test.workdir} does not exist")
        fd = os.open(os.path.join(self.test.workdir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DrillError(f"another restore drill is running in {self.test.workdir}") from None
        self._lock_fd = fd


async def newest_file(spec: BackupSpec) -> tuple[str, float, float | None]:
    """A files source's newest backup: its path, mtime and size."""
    try:
        entries = (await read_source(spec)).entries
    except SourceError as exc:
        raise DrillError(str(exc)) from None
    if not entries:
        raise DrillError(f"no backup file matches {spec.path}")
    newest = max(entries, key=lambda e: e.finished_at)
    return newest.label, newest.finished_at, newest.size_bytes


def low_priority(argv: list[str], user: str | None = None) -> list[str]:
    """``argv`` under nice/ionice, and as ``user`` when the agent is root and that user exists."""
    prefix: list[str] = []
    if user and os.geteuid() == 0 and _user_exists(user):
        prefix = ["runuser", "-u", user, "--"]
    return [*LOW_PRIORITY, *prefix, *argv]


def run_as(user: str) -> str | None:
    """The user a throwaway server runs as: ``user`` when root (and it exists), else whoever we are."""
    return user if os.geteuid() == 0 and _user_exists(user) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise DrillError(f"{what} within {timeout:g}s")
        await asyncio.sleep(every)


def tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return " | ".join(line.strip() for line in fh.readlines()[-lines:])
    except OSError:
        return "no log"


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _mib(size: float) -> str:
    return f"{size / 2**20:.0f} MiB" if size < 2**30 else f"{size / 2**30:.1f} GiB"
