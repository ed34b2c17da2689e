"""Helpers for the fault-injection tests (issue 15): a recording webhook, a real tmpfs, a full disk, a
systemd notify socket, and a lowered file limit for the agent the test starts."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator


class Hook:
    """A webhook receiver (a threaded HTTP server on loopback) that records every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str] = []  # the Idempotency-Key of every request, as it arrives
        self.delay = 0.0  # seconds each request is held before the answer
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                hook.keys.append(self.headers.get("Idempotency-Key", ""))
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                time.sleep(hook.delay)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    pass  # the client hung up meanwhile

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def alerts(self, name: str, status: str) -> list[dict[str, Any]]:
        return [a for body in self.bodies for a in body["alerts"]
                if a["labels"]["alertname"] == name and a["status"] == status]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def tmpfs(size: str = "4m") -> Iterator[Path]:
    """A real tmpfs of ``size`` on a fresh directory (root only), unmounted afterwards."""
    where = Path(tempfile.mkdtemp(prefix="dbwatch-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], check=True,
                   capture_output=True, timeout=30)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)
        os.rmdir(where)


def remount(where: Path, mode: str) -> None:
    """``mode`` "ro" or "rw": the filesystem becomes read-only (even for root) or writable again."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True, capture_output=True, timeout=30)


def fill(where: Path) -> Path:
    """Write a file until the filesystem has not one byte left (ENOSPC); remove it to free the space."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * size) == 0:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def file_limit(limit: int) -> Iterator[None]:
    """Processes started inside inherit a soft RLIMIT_NOFILE of ``limit`` (as systemd's LimitNOFILE sets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class NotifySocket:
    """systemd's notify socket: a unix datagram socket collecting what the agent sends."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return self.messages

    def close(self) -> None:
        self.sock.close()
