"""What every throwaway server of the tests needs besides a free port (tests.helpers): a bounded wait until it
listens (failing with its own words when it dies), and a stop that cannot hang."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import Callable


def wait_listening(proc: subprocess.Popen, port: int, name: str, log_tail: Callable[[], str],
                   timeout: float = 10.0) -> None:
    """Return once ``port`` accepts connections; raise with the server's stderr and log if it exits or stalls."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{name} on port {port} exited with {proc.returncode}:\n{stderr}\n{log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} on port {port} not ready:\n{log_tail()}") from None
            time.sleep(0.02)


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal, wait (bounded), kill if need be, and close the pipe."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr:
        proc.stderr.close()
