"""The silences API on the agent's listener (same TLS and basic auth as ``/metrics``), Alertmanager v2's shape:

- ``GET /api/v1/silences``: every silence kept (active, pending, expired), as Alertmanager's ``gettableSilences``;
- ``GET /api/v1/silence/{id}``: one;
- ``POST /api/v1/silences``: ``{matchers, startsAt?, endsAt? | duration?, createdBy, comment}`` → ``{"silenceID": id}``;
- ``DELETE /api/v1/silence/{id}``: expire it now.

Bad input is a 400 whose body is one line naming every field that is wrong. A request that changes something
must be ``Content-Type: application/json`` (agent/console_actions.py, ``read_json``: no cross-site forms).
:func:`add_routes` also registers the console's actions (agent/console_actions.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from dbwatch.agent import console_actions
from dbwatch.agent.silences import SilenceError, SilenceStore

if TYPE_CHECKING:
    from dbwatch.agent.daemon import Daemon

__all__ = ["add_routes", "bad_request"]

_POST_FIELDS = {"matchers", "startsAt", "endsAt", "duration", "createdBy", "comment"}


def add_routes(app: web.Application, daemon: Daemon) -> None:
    """The silences and console action routes (before the listener starts)."""
    api = _SilencesApi(daemon.alerting.silences)
    app.add_routes([
        web.get("/api/v1/silences", api.list),
        web.post("/api/v1/silences", api.create),
        web.get("/api/v1/silence/{id}", api.get),
        web.delete("/api/v1/silence/{id}", api.expire),
    ])
    console_actions.add_routes(app, daemon)


def bad_request(message: str, status: int = 400) -> web.Response:
    """One line, no trace: what was wrong and where."""
    return web.Response(status=status, text=" ".join(message.split()) + "\n")


class _SilencesApi:
    def __init__(self, store: SilenceStore) -> None:
        self.store = store

    async def list(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.as_json())

    async def get(self, request: web.Request) -> web.Response:
        silence = self.store.get(request.match_info["id"])
        if silence is None:
            return bad_request(f"id: no silence {request.match_info['id']!r}", 404)
        return web.json_response(silence.as_json(self.store.clock()))

    async def create(self, request: web.Request) -> web.Response:
        body, error = await console_actions.read_json(request)
        if error is not None:
            return bad_request(error)
        if not isinstance(body, dict):
            return bad_request("body: expected an object {matchers, endsAt or duration, createdBy, comment}")
        problems = []
        if "id" in body:
            problems.append("id: a silence cannot be changed; expire it and create a new one")
        unknown = sorted(set(body) - _POST_FIELDS - {"id"})
        if unknown:
            problems.append(f"body: unknown field(s) {', '.join(unknown)}")
        created_by = body.get("createdBy")
        if created_by in (None, "") and (user := console_actions.basic_auth_user(request)):
            created_by = user  # who is logged in, when the form leaves it empty
        try:
            silence = self.store.prepare(body.get("matchers"), body.get("endsAt"),
                                         created_by if created_by is not None else "", body.get("comment", ""),
                                         body.get("startsAt"), duration=body.get("duration"))
        except SilenceError as exc:
            problems.extend(exc.problems)
        if problems:
            return bad_request("; ".join(problems))
        self.store.put(silence)
        return web.json_response({"silenceID": silence.id})

    async def expire(self, request: web.Request) -> web.Response:
        id = request.match_info["id"]
        try:
            silence = self.store.expire(id)
        except KeyError:
            return bad_request(f"id: no silence {id!r}", 404)
        except SilenceError as exc:
            return bad_request("; ".join(exc.problems))
        return web.json_response(silence.as_json(self.store.clock()))
