"""The console's actions: cancel a backend's statement or end its session, opt-in and audited.

``POST /api/v1/targets/{target}/backends/{pid}/cancel`` and ``.../terminate`` with the JSON body
``{"confirm": true}``:

- PostgreSQL: ``pg_cancel_backend(pid)`` / ``pg_terminate_backend(pid)``;
- MySQL/MariaDB: ``KILL QUERY id`` / ``KILL id``;

through the target's own monitoring session (the one its collectors use, in its turn), so no other
credentials are needed; the monitoring role needs the right to signal others' sessions (``pg_signal_backend``;
``CONNECTION ADMIN`` or ``SUPER`` on MySQL/MariaDB), and the server's refusal is reported as it is.

Off unless ``server.console.actions: true``, which the configuration accepts only with basic auth; a request
then needs a user (403 otherwise, or when actions are off). Refused: dbwatch's own sessions (this agent's or
another's, ``application_name``/``program_name`` ``dbwatch``), server threads that are not client sessions
(PostgreSQL's background workers and WAL senders, MariaDB's system threads and binlog dumps), a pid the
server does not know (404). Every request that gets as far as naming a target writes one audit log line:
who (the basic auth user), from where, the target, pid, action and outcome — never a password or a statement.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from dbwatch.collectors.base import CollectorError, Session
from dbwatch.collectors.engines import engine

if TYPE_CHECKING:
    from dbwatch.agent.daemon import Daemon

__all__ = ["ACTIONS", "actions_enabled", "add_routes", "basic_auth_user", "read_json"]

logger = logging.getLogger(__name__)

ACTIONS = ("cancel", "terminate")
TIMEOUT = 15.0  # seconds an action may wait for the session (a collection holding it) and the server

PG_BACKEND = """
SELECT pid, backend_type, coalesce(application_name, '') AS application_name, pid = pg_backend_pid() AS mine
FROM pg_stat_activity WHERE pid = $1
"""
PG_SIGNAL = {"cancel": "SELECT pg_cancel_backend($1)", "terminate": "SELECT pg_terminate_backend($1)"}

MY_THREAD = """
SELECT ID AS id, USER AS user, COMMAND AS command, ID = CONNECTION_ID() AS mine
FROM information_schema.PROCESSLIST WHERE ID = %s
"""
# Another dbwatch's session, told by the connection attribute it sets (performance_schema only).
MY_DBWATCH = """
SELECT count(*) AS n FROM performance_schema.session_connect_attrs
WHERE PROCESSLIST_ID = %s AND ATTR_NAME = 'program_name' AND ATTR_VALUE = 'dbwatch'
"""
MY_SIGNAL = {"cancel": "KILL QUERY %s", "terminate": "KILL %s"}
_MY_SYSTEM_COMMANDS = {"daemon", "binlog dump", "binlog dump gtid", "slave_io", "slave_sql", "slave_worker"}


class Refused(Exception):
    """The action is not done; ``status`` and the one-line reason go back to the caller."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Done:
    ok: bool
    outcome: str


Signal = Callable[[Session, int, str], Awaitable[Done]]


def actions_enabled(daemon: Daemon) -> bool:
    """Whether the console may offer its actions: configured on, with basic auth on the listener."""
    console = daemon.config.server.console
    return bool(console.enabled and console.actions and daemon.web_config is not None and daemon.web_config.users)


def add_routes(app: web.Application, daemon: Daemon) -> None:
    handler = _Actions(daemon)
    for action in ACTIONS:
        app.router.add_post(f"/api/v1/targets/{{target}}/backends/{{pid}}/{action}", handler.route(action))


def basic_auth_user(request: web.Request) -> str | None:
    """The user name of the request's basic auth (checked by the listener before any handler runs)."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        user, sep, _ = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8", "replace").partition(":")
    except (binascii.Error, ValueError):
        return None
    return user if sep and user else None


class _Actions:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def route(self, action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self.handle(request, action)

        return handle

    async def handle(self, request: web.Request, action: str) -> web.Response:
        target, pid_text = request.match_info["target"], request.match_info["pid"]
        user = basic_auth_user(request)
        try:
            pid = await self._check(request, target, pid_text, user)
            done = await asyncio.wait_for(self._signal(target, pid, action), TIMEOUT)
        except Refused as exc:
            self._audit(request, user, target, pid_text, action, f"refused ({exc.status}): {exc.reason}")
            return web.Response(status=exc.status, text=" ".join(exc.reason.split()) + "\n")
        except TimeoutError:
            reason = f"{target}: no answer within {TIMEOUT:g}s (a collection holds the session, or the server hangs)"
            self._audit(request, user, target, pid_text, action, f"failed: {reason}")
            return web.Response(status=504, text=reason + "\n")
        self._audit(request, user, target, pid_text, action, done.outcome)
        return web.json_response({"target": target, "pid": pid, "action": action, "ok": done.ok,
                                  "outcome": done.outcome})

    async def _check(self, request: web.Request, target: str, pid_text: str, user: str | None) -> int:
        console = self.daemon.config.server.console
        if not (console.enabled and console.actions):
            raise Refused(403, "console actions are off: set server.console.actions: true (with basic auth) "
                               "to allow cancel and terminate")
        # The listener checks the password before any handler runs; actions also need it to be checking one
        # (a reload could have emptied the users) and a user to write in the audit line.
        if not actions_enabled(self.daemon) or self.daemon.http._auth is None or user is None:
            raise Refused(403, "console actions need an authenticated user (basic auth in server.web_config_file)")
        body, error = await read_json(request)
        if error is not None:
            raise Refused(400, error)
        if not isinstance(body, dict) or body.get("confirm") is not True:
            raise Refused(400, 'body: expected {"confirm": true} to confirm the action')
        if not pid_text.isdigit() or not 0 < int(pid_text) < 2**31:
            raise Refused(400, f"pid: expected a process id (a positive integer), got {pid_text!r}")
        configured = self.daemon.target_map().get(target)
        if configured is None:
            raise Refused(404, f"target: {target!r} is not watched by this agent")
        if _SIGNALS.get(engine(configured.engine).dialect or "") is None:
            raise Refused(400, f"target: {target} is a {configured.engine} target; cancel and terminate are for "
                               "PostgreSQL and MySQL/MariaDB targets")
        return int(pid_text)

    async def _signal(self, target: str, pid: int, action: str) -> Done:
        configured = self.daemon.target_map().get(target)
        session = self.daemon.session_of(target)
        if configured is None or session is None:
            raise Refused(404, f"target: {target!r} is not watched by this agent")
        signal = _SIGNALS[engine(configured.engine).dialect or ""]
        try:
            async with session.lock:
                return await signal(session, pid, action)
        except CollectorError as exc:  # the message is the session's: scrubbed of secrets
            raise Refused(502, f"{target}: {exc}") from None

    def _audit(self, request: web.Request, user: str | None, target: str, pid: str, action: str,
               outcome: str) -> None:
        logger.warning("console action: user=%s from=%s target=%s pid=%s action=%s outcome=%s",
                       user or "-", request.remote or "-", target, pid, action, outcome, extra={"target": target})


async def read_json(request: web.Request) -> tuple[Any, str | None]:
    """The request's JSON body, or the one-line reason it is refused. A change must come as
    ``Content-Type: application/json``: another site's page cannot send that without the browser asking the
    agent first (CORS, which it never allows), so a logged-in browser cannot be made to act by a link or form."""
    if request.content_type != "application/json":
        return None, f"body: expected JSON with Content-Type: application/json, got {request.content_type or 'none'}"
    try:
        return json.loads(await request.text()), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"body: not valid JSON ({exc})"


async def _postgres(session: Session, pid: int, action: str) -> Done:
    run: Any = getattr(session, "run")
    rows = await run(PG_BACKEND, pid)
    if not rows:
        raise Refused(404, f"pid: no backend {pid} on this server")
    row = rows[0]
    if row["mine"] or row["application_name"] == "dbwatch":
        raise Refused(409, f"pid: backend {pid} is dbwatch's own session")
    if row["backend_type"] != "client backend":
        raise Refused(409, f"pid: backend {pid} is a {row['backend_type']}, not a client session")
    [result] = await run(PG_SIGNAL[action], pid)
    if result[0]:
        return Done(True, "cancelled" if action == "cancel" else "terminated")
    return Done(False, f"not signalled: backend {pid} had already ended")


async def _mysql(session: Session, pid: int, action: str) -> Done:
    run: Any = getattr(session, "run")
    rows = await run(MY_THREAD, (pid,))
    if not rows:
        raise Refused(404, f"pid: no thread {pid} on this server")
    row = rows[0]
    if row["mine"] or await _other_dbwatch(run, pid):
        raise Refused(409, f"pid: thread {pid} is dbwatch's own session")
    if str(row["user"]).lower() in ("system user", "event_scheduler") or \
            str(row["command"]).lower() in _MY_SYSTEM_COMMANDS:
        raise Refused(409, f"pid: thread {pid} is a server thread ({row['command']}), not a client session")
    try:
        await run(MY_SIGNAL[action], (pid,))
    except CollectorError as exc:
        if getattr(exc, "errno", 0) == 1094:  # unknown thread id: it ended meanwhile
            return Done(False, f"not signalled: thread {pid} had already ended")
        raise
    return Done(True, "cancelled" if action == "cancel" else "terminated")


async def _other_dbwatch(run: Any, pid: int) -> bool:
    try:
        rows = await run(MY_DBWATCH, (pid,))
    except CollectorError:  # performance_schema off or not readable: only this agent's own session is known
        return False
    return bool(rows and rows[0]["n"])


#: by the engine's SQL dialect (collectors/engines.py), so an engine speaking one of them gets the actions
_SIGNALS: dict[str, Signal] = {"postgres": _postgres, "mysql": _mysql}
