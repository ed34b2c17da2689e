"""Throwaway PostgreSQL 15 servers for tests and benchmarks: a primary and streaming standbys.

PostgreSQL refuses to run as root, so the servers run as the `postgres` OS user (`runuser`) when the
tests run as root. Each server gets its own directory, a free loopback port and its own socket directory,
and never touches the machine's default instance.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers import free_port

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "postgres" if os.geteuid() == 0 else None
BINARIES = ("initdb", "pg_ctl", "postgres", "pg_isready", "psql", "pg_basebackup")
START_TIMEOUT = 30.0


def _cmd(*args: str) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *args] if RUN_AS else list(args)


class PostgresServer:
    def __init__(self, directory: Path | None = None, settings: dict[str, str] | None = None,
                 primary: "PostgresServer | None" = None) -> None:
        missing = [name for name in BINARIES if not (BIN / name).exists()]
        if missing:
            raise RuntimeError(f"PostgreSQL binaries {', '.join(missing)} not found in {BIN} "
                               "(apt-get install postgresql-15 postgresql-contrib, or set PG_BIN)")
        self.root = Path(directory or tempfile.mkdtemp(prefix="dbwatch-pg-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.data = self.root / "data"
        self.port = free_port()
        self.settings = settings or {}
        self.primary = primary
        self.standbys = 0
        if RUN_AS:
            shutil.chown(self.root, RUN_AS, RUN_AS)
            os.chmod(self.root, 0o755)
        self._created = False

    def _create(self) -> None:
        if self.primary is None:
            self._run(BIN / "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--locale=C.UTF-8", "-N")
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write("host replication all 127.0.0.1/32 trust\n")
        else:
            self.primary.standbys += 1
            self.slot = f"standby{self.primary.standbys}"
            self._run(BIN / "pg_basebackup", "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.primary.port),
                      "-U", "postgres", "-X", "stream", "-c", "fast", "-R", "-C", "-S", self.slot)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "all",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "hot_standby": "on",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            **self.settings,
        }
        with open(self.data / "postgresql.auto.conf", "a") as fh:
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")
        self._created = True

    def start(self) -> "PostgresServer":
        """Start and wait until it accepts connections (bounded); a failure carries the server log's tail."""
        if not self._created:
            self._create()
        result = subprocess.run(
            _cmd(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                 "-t", str(int(START_TIMEOUT)), "start"),
            capture_output=True, text=True, timeout=START_TIMEOUT + 10,
        )
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL on port {self.port} did not start: {result.stderr.strip()}\n"
                               f"{self.log_tail()}")
        deadline = time.monotonic() + START_TIMEOUT
        while subprocess.run([str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", "postgres"],
                             capture_output=True, timeout=10).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} not ready after {START_TIMEOUT:g}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(BIN / "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def restart(self, mode: str = "fast") -> "PostgresServer":
        self.stop(mode)
        return self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def standby(self) -> "PostgresServer":
        return PostgresServer(settings=self.settings, primary=self).start()

    def dsn(self, user: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def psql(self, query: str, database: str = "postgres", user: str = "postgres") -> str:
        result = subprocess.run(
            [str(BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", user, "-d", database],
            input=query, capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed on port {self.port}: {result.stderr.strip()}")
        return result.stdout.strip()

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

    def _run(self, *args: object, check: bool = True) -> None:
        result = subprocess.run(_cmd(*map(str, args)), capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr.strip()}\n{self.log_tail()}")
