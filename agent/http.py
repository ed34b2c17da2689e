"""The HTTP endpoints: /metrics, /healthz, /readyz, /api/v1/targets (aiohttp).

Nothing here computes: /metrics serves the exposition's cached body, the JSON endpoints read the store.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from aiohttp import web

from dbwatch.agent.store import SnapshotStore
from dbwatch.exporters.prometheus import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Exposition,
    wants_openmetrics,
)

logger = logging.getLogger(__name__)

JobList = Callable[[], list[tuple[str, str]]]
TargetInfo = Callable[[], list[dict[str, Any]]]


def parse_listen(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9847"`` or ``"[::1]:9847"`` → (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class HttpServer:
    def __init__(self, exposition: Exposition, store: SnapshotStore, expected_jobs: JobList,
                 targets: TargetInfo) -> None:
        self.exposition = exposition
        self.store = store
        self.expected_jobs = expected_jobs
        self.targets_info = targets
        self.app = web.Application()
        self.app.add_routes([
            web.get("/", self._index),
            web.get("/metrics", self._metrics),
            web.get("/healthz", self._healthz),
            web.get("/readyz", self._readyz),
            web.get("/api/v1/targets", self._targets),
        ])
        self._runner: web.AppRunner | None = None
        self.address = ""

    def add_json(self, path: str, provider: Callable[[], Any]) -> None:
        """Serve ``provider()`` as JSON at ``path`` (routes must be added before :meth:`start`)."""

        async def handler(request: web.Request) -> web.Response:
            return web.json_response(provider())

        self.app.router.add_get(path, handler)

    async def start(self, listen: str) -> None:
        host, port = parse_listen(listen)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # the bound port, when 0 was asked
        bound = sockets[0].getsockname()[1] if sockets else port
        self.address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _index(self, request: web.Request) -> web.Response:
        links = "".join(f'<li><a href="{p}">{p}</a></li>' for p in ("/metrics", "/healthz", "/readyz", "/api/v1/targets"))
        return web.Response(text=f"<html><body><h1>dbwatch</h1><ul>{links}</ul></body></html>",
                            content_type="text/html")

    async def _metrics(self, request: web.Request) -> web.Response:
        openmetrics = wants_openmetrics(request.headers.get("Accept"))
        body = self.exposition.render(openmetrics)
        response = web.Response(body=body)
        response.headers["Content-Type"] = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        if "gzip" in request.headers.get("Accept-Encoding", "") and len(body) > 4096:
            response.enable_compression()
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        waiting = [f"{t}/{c}" for t, c in self.expected_jobs() if self.store.latest(t, c) is None]
        if waiting:
            return web.json_response({"ready": False, "not_yet_collected": waiting}, status=503)
        return web.json_response({"ready": True})

    async def _targets(self, request: web.Request) -> web.Response:
        return web.json_response(self.targets_info())
