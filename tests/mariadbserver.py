"""Throwaway MariaDB servers for tests: a primary with the binary log and replicas of it (GTID).

Each server gets its own data directory (mariadb-install-db), a free loopback port and its own socket, and
never touches the machine's default instance. As root, mariadbd runs with ``--user=root`` (it refuses to
run as root otherwise); root@127.0.0.1 has no password. Servers are small (16 MB buffer pool) and fast to
start (about a second).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from tests.helpers import free_port
from tests.serverproc import wait_listening

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"
START_TIMEOUT = 30.0



class MariaDBServer:
    def __init__(self, server_id: int = 1, performance_schema: bool = True,
                 settings: dict[str, str] | None = None) -> None:
        for binary in (MARIADBD, INSTALL_DB, CLIENT):
            if not Path(binary).exists():
                raise RuntimeError(f"{binary} not found (apt-get install mariadb-server mariadb-client)")
        self.root = Path(tempfile.mkdtemp(prefix="dbwatch-mariadb-"))
        self.data = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.port = free_port()
        self.server_id = server_id
        self.options = {
            "performance-schema": "ON" if performance_schema else "OFF",
            "innodb-buffer-pool-size": "16M",
            "innodb-log-file-size": "16M",
            "log-bin": "mysql-bin",
            "binlog-format": "ROW",
            "log-slave-updates": "ON",
            "max-connections": "60",
            **(settings or {}),
        }
        self.process: subprocess.Popen | None = None
        self._installed = False

    def start(self) -> "MariaDBServer":
        if not self._installed:
            result = subprocess.run(
                [INSTALL_DB, "--no-defaults", f"--datadir={self.data}", f"--user={_os_user()}",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                capture_output=True, text=True, timeout=120,
            )
            if result.returncode != 0:
                raise RuntimeError(f"mariadb-install-db failed: {result.stderr.strip()}")
            self._installed = True
        args = [MARIADBD, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
                f"--socket={self.socket}", "--bind-address=127.0.0.1", f"--server-id={self.server_id}",
                f"--pid-file={self.root / 'mysqld.pid'}", f"--log-error={self.root / 'error.log'}",
                "--skip-name-resolve", f"--user={_os_user()}",
                *(f"--{key}={value}" for key, value in self.options.items())]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.process, self.port, "mariadbd", self.log_tail, START_TIMEOUT)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: a clean shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, user: str = "root", database: str = "") -> str:
        return f"mysql://{user}@127.0.0.1:{self.port}/{database}"

    def sql(self, query: str, user: str = "root", password: str | None = None, database: str = "") -> str:
        args = [CLIENT, "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port), "-u", user, "-N", "-B"]
        if password is not None:
            args.append(f"-p{password}")
        if database:
            args.append(database)
        result = subprocess.run(args, input=query, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"mariadb failed on port {self.port}: {result.stderr.strip()}")
        return result.stdout.strip()

    def replica(self, server_id: int) -> "MariaDBServer":
        """A new server replicating from this one with GTID (MASTER_USE_GTID=slave_pos), started."""
        self.sql("CREATE USER IF NOT EXISTS repl@'%' IDENTIFIED BY 'repl'; "
                 "GRANT REPLICATION SLAVE ON *.* TO repl@'%'")
        replica = MariaDBServer(server_id=server_id, settings={"read-only": "ON"}).start()
        replica.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.port}, MASTER_USER='repl', "
                    f"MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE")
        return replica

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "error.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _os_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


# -- pytest fixtures (imported by the test modules that use them) --------------------------------------

@pytest.fixture(scope="session")
def mariadb_primary():
    """A MariaDB with performance_schema ON and the binary log, for the whole test session."""
    server = MariaDBServer(server_id=1).start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def mariadb_replica(mariadb_primary):
    """A GTID replica of mariadb_primary (CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos; START SLAVE)."""
    server = mariadb_primary.replica(server_id=2)
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def mariadb_scratch():
    """A MariaDB of the test's own with performance_schema OFF, to stop or break without disturbing others."""
    server = MariaDBServer(server_id=3, performance_schema=False).start()
    try:
        yield server
    finally:
        server.destroy()
