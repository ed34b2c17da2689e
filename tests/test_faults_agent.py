"""Issue 15: faults injected into a real running agent, as an SRE would (items 1, 2, 3, 5, 6 and 11).

Starts: real `dbwatch run` processes (tests/agentproc.py), throwaway redis-servers (tests/redisserver.py)
that are stopped, started again and frozen under the agent, a recording webhook, a unix datagram socket as
systemd's notify socket, and plain TCP sockets that connect and say nothing (or half a request, or garbage).
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import bcrypt
import pytest
import yaml

from tests.agentproc import AgentProcess, sample_value
from tests.faultutil import Hook, NotifySocket, file_limit
from tests.helpers import wait_for
from tests.redisserver import RedisServer


def redis_target(name: str, server: RedisServer, **extra) -> dict:
    return {"name": name, "engine": "redis", "dsn": server.dsn(), "interval": "1s", "timeout": "2s", **extra}


@pytest.fixture
def agent(tmp_path):
    started: list[AgentProcess] = []

    def start(config: dict, **kwargs) -> AgentProcess:
        process = AgentProcess(tmp_path, config, **kwargs).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def redis_server():
    server = RedisServer()
    yield server
    server.destroy()


@pytest.fixture
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


def runs(proc: AgentProcess, target: str, collector: str = "redis") -> float:
    return sample_value(proc.metrics(), "dbwatch_collector_runs_total", target=target, collector=collector) or 0


def lines(proc: AgentProcess, text: str) -> list[str]:
    return [line for line in proc.log().splitlines() if text in line]


# -- 1: one line when a collector starts failing, one when it recovers ----------------------------------------

def test_a_down_target_logs_one_line_when_it_starts_failing_and_one_when_it_recovers(agent, redis_server):
    proc = agent({"targets": [redis_target("cache", redis_server)]})  # the server is not started yet
    wait_for(lambda: runs(proc, "cache") >= 6, 30, "six failed collections")  # reconnect backoff counting down
    assert len(lines(proc, "collector redis failed")) == 1, proc.log()
    redis_server.start()
    wait_for(lambda: sample_value(proc.metrics(), "redis_up", target="cache") == 1, 60, "the target back up")
    before = runs(proc, "cache")
    wait_for(lambda: runs(proc, "cache") >= before + 2, 20, "two more collections")
    assert len(lines(proc, "collector redis recovered")) == 1, proc.log()
    assert len(lines(proc, "collector redis failed")) == 1, proc.log()


# -- 2 and 3: a reload that must be refused -------------------------------------------------------------------

def test_an_empty_config_on_sighup_is_refused_and_firing_alerts_are_not_resolved(agent, redis_server, hook):
    proc = agent({
        "targets": [redis_target("cache", redis_server)],  # down: TargetDown fires at once
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url, "group_wait": "0s"}],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
    })
    wait_for(lambda: hook.alerts("TargetDown", "firing"), 30, "TargetDown at the webhook")
    proc.config_path.write_text("")
    proc.signal(signal.SIGHUP)
    wait_for(lambda: lines(proc, "reload rejected"), 20, "the reload refused")
    [refused] = [line for line in proc.log().splitlines() if " error " in line]  # one line, nothing more
    assert "reload rejected, the running configuration stays" in refused and "the file is empty" in refused
    before = runs(proc, "cache")
    wait_for(lambda: runs(proc, "cache") >= before + 3, 20, "collections going on with the old config")
    assert set(proc.targets()) == {"cache"}
    assert [a["state"] for a in proc.get("/api/v1/alerts") if a["labels"]["alertname"] == "TargetDown"] == ["firing"]
    assert hook.alerts("TargetDown", "resolved") == []
    assert "Traceback" not in proc.log()


def test_a_reload_during_a_delivery_lets_it_finish_and_it_is_sent_once(agent, redis_server, hook):
    hook.delay = 3.0  # the receiver holds the request while the agent reloads
    config = {
        "targets": [redis_target("cache", redis_server)],  # down: TargetDown fires at once
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url, "group_wait": "0s", "timeout": "10s"}],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
    }
    proc = agent(config)
    wait_for(lambda: hook.keys, 30, "the first notification's request")
    config["receivers"][0]["timeout"] = "9s"  # the receiver changes: its delivery task is replaced
    proc.write_config(config)
    proc.signal(signal.SIGHUP)
    wait_for(lambda: lines(proc, "reloaded: "), 20, "the reload")
    wait_for(lambda: sample_value(proc.metrics(), "dbwatch_notifications_total", receiver="oncall",
                                  result="sent") == 1, 20, "the delivery counted")
    before = runs(proc, "cache")
    wait_for(lambda: runs(proc, "cache") >= before + 3, 20, "a few more collections")
    assert len(hook.keys) == len(set(hook.keys)) == 1, hook.keys


def test_a_non_utf8_config_on_sighup_is_refused_in_one_line_and_systemd_hears_ready_again(tmp_path, redis_server):
    notify = NotifySocket(tmp_path / "notify.sock")
    redis_server.start()
    proc = AgentProcess(tmp_path, {"targets": [redis_target("cache", redis_server)]},
                        env={"NOTIFY_SOCKET": notify.path}).start()
    try:
        wait_for(lambda: any("READY=1" in m for m in notify.drain()), 20, "READY=1")
        notify.messages.clear()
        proc.config_path.write_bytes(proc.config_path.read_bytes().replace(b"cache", b"caf\xe9"))  # Latin-1
        proc.signal(signal.SIGHUP)
        wait_for(lambda: any("READY=1" in m for m in notify.drain()), 20, "READY=1 after the refused reload")
        reloading = next(i for i, m in enumerate(notify.messages) if "RELOADING=1" in m)
        assert any("READY=1" in m for m in notify.messages[reloading + 1:])
        [refused] = lines(proc, "reload rejected")
        assert "not UTF-8" in refused and "line " in refused
        assert "Traceback" not in proc.log()
        assert set(proc.targets()) == {"cache"}
    finally:
        assert proc.stop() == 0
        notify.close()


# -- 5: a password bcrypt refuses -----------------------------------------------------------------------------

def test_a_basic_auth_password_over_72_bytes_is_refused_with_401_not_500(agent, redis_server, tmp_path):
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"right-password", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    redis_server.start()
    proc = agent({"targets": [redis_target("cache", redis_server)], "server": {"web_config_file": str(web)}},
                 basic_auth=("prometheus", "right-password"))
    assert proc.get("/metrics", check=False) == 200
    proc.basic_auth = ("prometheus", "x" * 73)
    assert proc.get("/metrics", check=False) == 401
    proc.basic_auth = ("nobody", "é" * 100)
    assert proc.get("/metrics", check=False) == 401
    assert "Traceback" not in proc.log() and "password cannot be longer" not in proc.log()


# -- 6: idle and half-sent connections; a cap below the file limit ---------------------------------------------

def test_idle_connections_are_closed_and_capped_below_the_file_limit_and_metrics_stay_reachable(tmp_path,
                                                                                                 redis_server):
    redis_server.start()
    config = {"targets": [redis_target("cache", redis_server)], "server": {"idle_timeout": "3s"}}
    with file_limit(256):  # as LimitNOFILE=256 would: the cap is a quarter of it, 64
        proc = AgentProcess(tmp_path, config).start()
    try:
        assert sample_value(proc.metrics(), "dbwatch_http_connections_max") == 64
        idle = [socket.create_connection(("127.0.0.1", proc.port), timeout=5) for _ in range(300)]
        half = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        # with 301 connections held open, /metrics still answers: the longest idle ones make room
        assert proc.get("/metrics", check=False) == 200
        assert sample_value(proc.metrics(), "dbwatch_http_connections") <= 64
        began = time.monotonic()
        for sock in [*idle, half]:
            assert closed_by_peer(sock, deadline=began + 15), "the agent closes every idle connection"
        assert time.monotonic() - began < 15
        assert proc.get("/healthz", check=False) == 200
        log = proc.log()
        assert "Too many open files" not in log and "Traceback" not in log
        assert len(log.splitlines()) < 20, log
        assert sample_value(proc.metrics(), "dbwatch_http_connections_closed_total", reason="idle_evicted") > 0
    finally:
        assert proc.stop() == 0


def closed_by_peer(sock: socket.socket, deadline: float) -> bool:
    """Read until the agent hangs up (whatever it said first); False if it has not by ``deadline``."""
    try:
        while True:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            if sock.recv(65536) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    finally:
        sock.close()


# -- 11: malformed requests and a hanging target, in the log --------------------------------------------------

def test_malformed_http_requests_are_answered_400_and_logged_in_one_line_without_a_traceback(agent, redis_server):
    redis_server.start()
    proc = agent({"targets": [redis_target("cache", redis_server)], "logging": {"level": "debug"}})
    for garbage in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS spoken to HTTP
                    b"GET / HTTP/1.1\r\nHost: a\r\nNot a header line\r\n\r\n",
                    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
            sock.sendall(garbage)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0] or answer == b""
    wait_for(lambda: len(lines(proc, "malformed HTTP request from 127.0.0.1")) >= 2, 10, "the debug lines")
    assert "Traceback" not in proc.log()
    assert proc.get("/healthz", check=False) == 200


def test_runs_skipped_while_a_target_hangs_name_the_target(agent, redis_server):
    redis_server.start()
    proc = agent({"targets": [redis_target("frozen-cache", redis_server, timeout="6s")]})
    wait_for(lambda: sample_value(proc.metrics(), "redis_up", target="frozen-cache") == 1, 20, "the target up")
    redis_server.pause()
    try:
        wait_for(lambda: lines(proc, "skipped"), 30, "a skipped run")
        before = runs(proc, "frozen-cache")
        wait_for(lambda: runs(proc, "frozen-cache") >= before + 2, 30, "two more timed-out collections")
        skipped = lines(proc, "skipped")
        assert all('"frozen-cache/' in line for line in skipped), skipped
        # one line per job (the redis and slowlog collectors), not one per interval
        assert len(skipped) == len({line.split('"')[1].split(" (")[0] for line in skipped}) <= 2, skipped
    finally:
        redis_server.resume()
