"""Throwaway PgBouncer servers for tests: Debian's ``pgbouncer`` on a free loopback port, its own directory,
in front of a throwaway PostgreSQL (tests/pgcluster.py), never the machine's default instance.

PgBouncer refuses to run as root, so it runs as the ``postgres`` OS user when the tests run as root. Clients
authenticate to PgBouncer with SCRAM against its own ``userlist.txt``; PgBouncer logs in to PostgreSQL as
``postgres`` (trust on loopback). Users: ``dbwatch`` (in ``stats_users``: the console's read-only SHOW
commands), ``admin`` (in ``admin_users``) and ``app`` (an ordinary client), passwords in :data:`PASSWORDS`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import free_port
from tests.serverproc import stop_process, wait_listening

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
RUN_AS = "postgres" if os.geteuid() == 0 else None
START_TIMEOUT = 10.0
PASSWORDS = {"dbwatch": "mon-s3cret", "admin": "adm-s3cret", "app": "app-s3cret"}



class PgBouncerServer:
    """``databases`` maps a PgBouncer database name to ``(postgres port, pool_size or None)``."""

    def __init__(self, databases: dict[str, tuple[int, int | None]], default_pool_size: int = 20,
                 max_client_conn: int = 100, pool_mode: str = "session", extra: tuple[str, ...] = ()) -> None:
        if not os.path.exists(PGBOUNCER):
            raise RuntimeError("pgbouncer not found (apt-get install pgbouncer)")
        self.root = Path(tempfile.mkdtemp(prefix="dbwatch-pgbouncer-"))
        self.port = free_port()
        self.databases = databases
        self.default_pool_size = default_pool_size
        self.max_client_conn = max_client_conn
        self.pool_mode = pool_mode
        self.extra = extra  # more [pgbouncer] settings, "name = value"
        self.proc: subprocess.Popen | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = ["[databases]"]
        for name, (pg_port, pool_size) in self.databases.items():
            extra = f" pool_size={pool_size}" if pool_size is not None else ""
            lines.append(f"{name} = host=127.0.0.1 port={pg_port} dbname=postgres user=postgres{extra}")
        lines += [
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = scram-sha-256",
            f"auth_file = {self.root / 'userlist.txt'}",
            "admin_users = admin",
            "stats_users = dbwatch",
            f"pool_mode = {self.pool_mode}",
            f"default_pool_size = {self.default_pool_size}",
            f"max_client_conn = {self.max_client_conn}",
            f"logfile = {self.root / 'pgbouncer.log'}",
            f"pidfile = {self.root / 'pgbouncer.pid'}",
            "ignore_startup_parameters = extra_float_digits",
            *self.extra,
        ]
        (self.root / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        (self.root / "userlist.txt").write_text("".join(f'"{u}" "{p}"\n' for u, p in PASSWORDS.items()))
        if RUN_AS:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, RUN_AS, RUN_AS)

    def start(self) -> "PgBouncerServer":
        """Start in the foreground and wait until the port accepts connections (bounded)."""
        self.proc = subprocess.Popen(
            [PGBOUNCER, str(self.root / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            **({"user": RUN_AS, "group": RUN_AS, "extra_groups": []} if RUN_AS else {}),
        )
        wait_listening(self.proc, self.port, "pgbouncer", self.log_tail, START_TIMEOUT)
        return self

    def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT: PgBouncer's immediate shutdown (SIGTERM waits for clients to leave on newer versions)."""
        stop_process(self.proc, sig)
        self.proc = None

    def destroy(self) -> None:
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, user: str = "dbwatch", database: str = "pgbouncer") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, user: str = "app", database: str = "app") -> str:
        """A libpq connection string with the user's password, for the test's own clients."""
        return (f"host=127.0.0.1 port={self.port} dbname={database} user={user} password={PASSWORDS[user]} "
                f"connect_timeout=5")

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "pgbouncer.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"
