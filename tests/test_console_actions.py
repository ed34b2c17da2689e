"""The console's actions (cancel, terminate a backend) through a real `dbwatch run` with basic auth.

Starts: the session's throwaway PostgreSQL 15 primary and MariaDB 10.11 (tests/conftest.py,
tests/mariadbserver.py) with long statements of the test's own running on them (`pg_sleep`, `SLEEP()`) through
their command-line clients, and agents watching them: one with `server.console.actions: true` behind basic
auth, one with actions off.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

import bcrypt
import pytest
import yaml

from dbwatch.agent.config import ConfigError, parse_config
from tests.agentproc import AgentProcess
from tests.helpers import wait_for
from tests.mariadbserver import CLIENT, mariadb_primary  # noqa: F401  (a fixture: a throwaway MariaDB)
from tests.pgcluster import BIN

USER, PASSWORD = "dba", "correct horse battery staple"


def web_config(tmp_path) -> str:
    path = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(yaml.safe_dump({"basic_auth_users": {USER: hashed}}))
    return str(path)


def config(tmp_path, pg_dsn: str, my_dsn: str, actions: bool = True) -> dict:
    return {
        "server": {"web_config_file": web_config(tmp_path), "console": {"actions": actions}},
        "targets": [
            {"name": "pg", "engine": "postgres", "dsn": pg_dsn, "interval": "2s",
             "collectors": {"statements": {"enabled": False}}},
            {"name": "maria", "engine": "mysql", "dsn": my_dsn, "interval": "2s",
             "collectors": {"statements": {"enabled": False}}},
        ],
    }


def post(agent: AgentProcess, path: str, body: object = None, auth: tuple[str, str] | None = (USER, PASSWORD),
         content_type: str = "application/json") -> tuple[int, object]:
    headers = {"Content-Type": content_type}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    data = json.dumps(body if body is not None else {"confirm": True}).encode()
    request = urllib.request.Request(agent.url(path), data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def agent(tmp_path, pg_primary, mariadb_primary):  # noqa: F811
    process = AgentProcess(tmp_path, config(tmp_path, pg_primary.dsn(), mariadb_primary.dsn()),
                           basic_auth=(USER, PASSWORD)).start()
    wait_for(lambda: process.get("/readyz", check=False) == 200, 30, "both targets collected")
    yield process
    process.stop()


class Sleeper:
    """A client of the test's own running one long statement."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, out.strip(), err.strip()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def pg_sleeper(server, name: str) -> tuple[Sleeper, int]:
    sleeper = Sleeper([str(BIN / "psql"), "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(server.port),
                       "-U", "postgres", "-c", "SELECT pg_sleep(120)"], env={"PGAPPNAME": name})
    pid = wait_for(lambda: server.psql(f"SELECT pid FROM pg_stat_activity WHERE application_name = '{name}' "
                                       "AND query LIKE 'SELECT pg_sleep%' AND state = 'active'"), 20, f"{name} asleep")
    return sleeper, int(pid)


def maria_sleeper(server, seconds: int) -> tuple[Sleeper, int]:
    sleeper = Sleeper([CLIENT, "--no-defaults", "-h", "127.0.0.1", "-P", str(server.port), "-u", "root", "-N", "-B",
                       "-e", f"SELECT SLEEP({seconds})"])
    thread = wait_for(lambda: server.sql("SELECT ID FROM information_schema.PROCESSLIST "
                                         f"WHERE INFO = 'SELECT SLEEP({seconds})'"), 20, "the MariaDB sleeper")
    return sleeper, int(thread)


def test_cancel_and_terminate_a_postgresql_backend_with_an_audit_line(agent, pg_primary):
    sleeper, pid = pg_sleeper(pg_primary, "sleeper-cancel")
    try:
        status, answer = post(agent, f"/api/v1/targets/pg/backends/{pid}/cancel")
        assert (status, answer) == (200, {"target": "pg", "pid": pid, "action": "cancel", "ok": True,
                                          "outcome": "cancelled"})
        code, _, err = sleeper.finish()
        assert code != 0 and "canceling statement due to user request" in err
    finally:
        sleeper.kill()
    sleeper, pid = pg_sleeper(pg_primary, "sleeper-terminate")
    try:
        status, answer = post(agent, f"/api/v1/targets/pg/backends/{pid}/terminate")
        assert status == 200 and answer["outcome"] == "terminated"
        code, _, err = sleeper.finish()
        assert code != 0 and "terminating connection due to administrator command" in err
        wait_for(lambda: pg_primary.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}") == "0", 10,
                 "the terminated backend gone")
    finally:
        sleeper.kill()
    audit = [line for line in agent.log().splitlines() if "console action:" in line]
    assert any(f"user={USER} from=127.0.0.1 target=pg pid={pid} action=terminate outcome=terminated" in line
               for line in audit), audit
    assert PASSWORD not in agent.log()


def test_kill_query_and_kill_a_mariadb_thread(agent, mariadb_primary):  # noqa: F811
    sleeper, thread = maria_sleeper(mariadb_primary, 121)
    try:
        status, answer = post(agent, f"/api/v1/targets/maria/backends/{thread}/cancel")
        assert status == 200 and answer["outcome"] == "cancelled", answer
        code, _, err = sleeper.finish()
        assert code != 0 and "Query execution was interrupted" in err
    finally:
        sleeper.kill()
    sleeper, thread = maria_sleeper(mariadb_primary, 122)
    try:
        status, answer = post(agent, f"/api/v1/targets/maria/backends/{thread}/terminate")
        assert status == 200 and answer["outcome"] == "terminated", answer
        code, _, err = sleeper.finish()
        assert code != 0 and "Lost connection" in err
    finally:
        sleeper.kill()


def test_dbwatchs_own_sessions_unknown_pids_and_bad_requests_are_refused(agent, pg_primary, mariadb_primary):  # noqa: F811
    own = pg_primary.psql("SELECT pid FROM pg_stat_activity WHERE application_name = 'dbwatch' LIMIT 1")
    assert post(agent, f"/api/v1/targets/pg/backends/{own}/terminate") == (
        409, f"pid: backend {own} is dbwatch's own session\n")
    checkpointer = pg_primary.psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
    assert post(agent, f"/api/v1/targets/pg/backends/{checkpointer}/terminate") == (
        409, f"pid: backend {checkpointer} is a checkpointer, not a client session\n")
    mine = mariadb_primary.sql("SELECT PROCESSLIST_ID FROM performance_schema.session_connect_attrs "
                               "WHERE ATTR_NAME = 'program_name' AND ATTR_VALUE = 'dbwatch' LIMIT 1")
    assert post(agent, f"/api/v1/targets/maria/backends/{mine}/cancel") == (
        409, f"pid: thread {mine} is dbwatch's own session\n")
    assert post(agent, "/api/v1/targets/pg/backends/2147000000/cancel") == (
        404, "pid: no backend 2147000000 on this server\n")
    assert post(agent, "/api/v1/targets/maria/backends/2147000000/cancel") == (
        404, "pid: no thread 2147000000 on this server\n")
    assert post(agent, "/api/v1/targets/nope/backends/1/cancel") == (
        404, "target: 'nope' is not watched by this agent\n")
    assert post(agent, "/api/v1/targets/pg/backends/12ab/cancel") == (
        400, "pid: expected a process id (a positive integer), got '12ab'\n")
    assert post(agent, f"/api/v1/targets/pg/backends/{own}/cancel", {"confirm": "yes"}) == (
        400, 'body: expected {"confirm": true} to confirm the action\n')
    assert post(agent, f"/api/v1/targets/pg/backends/{own}/cancel", content_type="text/plain") == (
        400, "body: expected JSON with Content-Type: application/json, got text/plain\n")
    # The listener asks for the password before any handler runs.
    assert post(agent, f"/api/v1/targets/pg/backends/{own}/cancel", auth=None)[0] == 401
    assert post(agent, f"/api/v1/targets/pg/backends/{own}/cancel", auth=(USER, "wrong"))[0] == 401


def test_actions_are_off_by_default_and_need_authentication(tmp_path, pg_primary, mariadb_primary):  # noqa: F811
    process = AgentProcess(tmp_path, config(tmp_path, pg_primary.dsn(), mariadb_primary.dsn(), actions=False),
                           basic_auth=(USER, PASSWORD)).start()
    try:
        status, answer = post(process, "/api/v1/targets/pg/backends/1/cancel")
        assert (status, answer) == (403, "console actions are off: set server.console.actions: true (with basic "
                                          "auth) to allow cancel and terminate\n")
        assert "console action: user=dba from=127.0.0.1 target=pg pid=1 action=cancel outcome=refused (403)" \
            in process.log()
    finally:
        process.stop()
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump({"targets": [], "server": {"console": {"actions": True}}}))
    assert caught.value.problems == [
        "server.console.actions: true needs authentication: set server.web_config_file to a web config with "
        "basic_auth_users (docs/console.md#actions)"]
