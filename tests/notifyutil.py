"""Helpers for the notification tests: a recording HTTP receiver, a settable clock, alerts."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from dbwatch.model import Alert, AlertState, fingerprint

T0 = 1_700_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def make_alert(
    name: str = "TargetDown",
    target: str = "pg1",
    severity: str = "critical",
    state: AlertState = AlertState.FIRING,
    fired_at: float = T0,
    resolved_at: float | None = None,
    summary: str | None = None,
    **labels: str,
) -> Alert:
    all_labels = {"alertname": name, "severity": severity, "target": target, **labels}
    return Alert(
        fingerprint=fingerprint(name, target, labels),
        labels=all_labels,
        annotations={"summary": summary or f"{target} is not answering", "description": "details"},
        state=state,
        value=1.0,
        active_since=fired_at,
        fired_at=fired_at,
        resolved_at=resolved_at,
        last_seen=fired_at,
    )


def resolved(alert: Alert, at: float) -> Alert:
    return Alert(alert.fingerprint, dict(alert.labels), dict(alert.annotations), AlertState.RESOLVED, alert.value,
                 alert.active_since, alert.fired_at, at, alert.last_seen)



@dataclass
class Request:
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float  # time.monotonic() when it arrived

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


Behaviour = Callable[[Request], "int | str | Awaitable[int]"]


@dataclass
class Recorder:
    """A real HTTP server on loopback that records every request and answers as the test says.

    ``respond`` returns a status code, or ``"hang"``: hold the request open until :meth:`release`.
    """

    respond: Behaviour = lambda request: 200
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "Recorder":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def release(self) -> None:
        self._release.set()

    def unique(self) -> list[Request]:
        """The requests as a receiver that deduplicates by Idempotency-Key sees them."""
        seen: dict[str | None, Request] = {}
        for request in self.requests:
            seen.setdefault(request.key, request)
        return list(seen.values())

    async def _handle(self, request: web.Request) -> web.Response:
        record = Request(request.path, dict(request.headers), await request.read(), time.monotonic())
        self.requests.append(record)
        action = self.respond(record)
        if action == "hang":
            try:
                await asyncio.wait_for(self._release.wait(), timeout=30)
            except asyncio.TimeoutError:
                pass
            return web.Response(status=200)
        if not isinstance(action, int):
            action = await action  # type: ignore[misc]
        return web.Response(status=action, text="{}", content_type="application/json")
