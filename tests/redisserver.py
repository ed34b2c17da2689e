"""Throwaway Redis servers for tests: ``redis-server`` on a free loopback port, its own directory, no
persistence unless asked, and never the machine's default instance.

``RedisServer(*args)`` passes ``args`` to redis-server as command-line configuration (``--requirepass x``,
``--replicaof 127.0.0.1 6380``, ``--rename-command CONFIG ""``...); ``tls=True`` serves TLS only, with a
self-signed certificate for 127.0.0.1 made by openssl.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.helpers import free_port
from tests.serverproc import stop_process, wait_listening

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0



class RedisServer:
    def __init__(self, *args: str, tls: bool = False) -> None:
        if not os.path.exists(REDIS_SERVER):
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        self.root = Path(tempfile.mkdtemp(prefix="dbwatch-redis-"))
        self.port = free_port()
        self.args = list(args)
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        if tls:
            self.ca = self.root / "cert.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(self.root / "key.pem"),
                 "-out", str(self.ca)],
                check=True, capture_output=True, timeout=60,
            )

    def command_line(self) -> list[str]:
        ports = (["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.ca),
                  "--tls-key-file", str(self.root / "key.pem"), "--tls-ca-cert-file", str(self.ca),
                  "--tls-auth-clients", "no"] if self.tls else ["--port", str(self.port)])
        return [REDIS_SERVER, *ports, "--bind", "127.0.0.1", "--dir", str(self.root), "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.root / "redis.log"), *self.args]

    def start(self) -> "RedisServer":
        """Start and wait until the port accepts connections (bounded); a failure carries the log's tail."""
        self.proc = subprocess.Popen(self.command_line(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_listening(self.proc, self.port, "redis-server", self.log_tail, START_TIMEOUT)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server would not see SIGTERM
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, user: str | None = None, db: int = 0) -> str:
        who = f"{user}@" if user else ""
        if self.tls:
            return f"rediss://{who}127.0.0.1:{self.port}/{db}?ssl_ca_certs={self.ca}"
        return f"redis://{who}127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0, password: str | None = None, username: str | None = None) -> redis.Redis:
        """A plain client for the test's own commands (no HELLO, no CLIENT SETINFO: the slow log holds only them).

        Over TLS the client keeps CLIENT SETINFO: without a first command redis-py 8 finds the TLS 1.3 session
        tickets still unread on a new connection and refuses it as "not ready"."""
        quiet = {} if self.tls else {"driver_info": None}
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=password, username=username,
                           decode_responses=True, protocol=2, socket_timeout=10,
                           ssl=self.tls, ssl_ca_certs=str(self.ca) if self.tls else None, **quiet)

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "redis.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"
