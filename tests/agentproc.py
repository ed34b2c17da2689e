"""Runs a real ``dbwatch run`` process for tests and talks to it over HTTP, as a user would."""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from tests.helpers import free_port, wait_for


class AgentProcess:
    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None,
                 args: list[str] | None = None, ca_file: Path | None = None,
                 basic_auth: tuple[str, str] | None = None) -> None:
        """``ca_file``: talk https, trusting that CA; ``basic_auth``: (user, password) on every request."""
        self.workdir = workdir
        self.port = free_port()
        self.args = args or []
        self.scheme = "https" if ca_file else "http"
        self.ssl_context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        self.basic_auth = basic_auth
        self.config_path = workdir / "dbwatch.yaml"
        self.log_path = workdir / "dbwatch.log"
        self.env = {**os.environ, **(env or {})}
        self.write_config(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, config: dict[str, Any]) -> None:
        config = {"state_dir": str(self.workdir / "state"), **config}
        config.setdefault("server", {})["listen"] = f"127.0.0.1:{self.port}"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> "AgentProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dbwatch.agent.cli", "run", "-c", str(self.config_path), *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
        )
        wait_for(lambda: self.get("/healthz", check=False) == 200 or self._died(), 20, "the agent's /healthz")
        return self

    def _died(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"dbwatch exited with {self.proc.returncode}:\n{self.log()}")
        return False

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def get(self, path: str, check: bool = True, headers: dict[str, str] | None = None) -> Any:
        """The body (JSON decoded when it is JSON); with ``check=False``, the status code only."""
        headers = dict(headers or {})
        if self.basic_auth and "Authorization" not in headers:
            token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(self.url(path), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.ssl_context) as response:
                body = response.read()
                if not check:
                    return response.status
                if response.headers.get_content_type() == "application/json":
                    return json.loads(body)
                return body.decode()
        except urllib.error.HTTPError as exc:
            if not check:
                return exc.code
            raise
        except OSError:
            if not check:
                return None
            raise

    def metrics(self) -> str:
        return self.get("/metrics")

    def targets(self) -> dict[str, Any]:
        return {t["name"]: t for t in self.get("/api/v1/targets")}

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"dbwatch did not exit within {timeout}s of SIGTERM:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def sample_value(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of ``name`` whose labels include ``labels``."""
    for line in metrics.splitlines():
        if not line.startswith(name):
            continue
        # name{labels} value [timestamp]: the value is the first field after the labels (or the name)
        head, brace, rest = line.rpartition("}")
        metric, _, label_text = (head + brace).partition("{") if brace else (line.split(" ", 1)[0], "", "")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            return float((rest if brace else line).split()[1 if not brace else 0])
    return None
