"""The HTTP endpoints: /metrics, /healthz, /readyz, /api/v1/targets, /api/v1/sd (aiohttp).

Nothing here computes: /metrics serves the exposition's cached body (``?target=NAME``: one target's,
``?collected=false``: the agent's own metrics only), the JSON endpoints read the store, /api/v1/sd lists the
targets for Prometheus' HTTP service discovery.

The listener runs on a thread of its own (agent/httpthread.py): a scrape whose body was made ahead of it (one
target's, or the whole one) is answered there, every body is written from there, and every other handler runs
on the agent's event loop.

With ``server.web_config_file`` (agent/webconfig.py) the listener speaks TLS and every path but
``/healthz`` needs basic auth. ``/healthz`` stays open so that liveness probes and the container's
HEALTHCHECK need no password; it says "ok" and nothing else. A SIGHUP reload re-reads the file: new
certificates (a rotated cert_file) and users apply to new connections without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import Histogram

from dbwatch.agent.httpconn import REQUEST_LOGGER, CappedSite, ConnectionCap, Handler, connection_cap
from dbwatch.agent.httpthread import ServingThread, dispatch, on_loop, on_serving_thread
from dbwatch.agent.loophealth import BUCKETS
from dbwatch.agent.webconfig import BasicAuth, WebConfig, load_web_config

from dbwatch.agent.store import SnapshotStore
from dbwatch.exporters.joined import coalesced
from dbwatch.exporters.target_exposition import TargetScrapes
from dbwatch.model import MetricFamily
from dbwatch.exporters.prometheus import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Exposition,
    wants_openmetrics,
)

logger = logging.getLogger(__name__)

JobList = Callable[[], list[tuple[str, str]]]
TargetInfo = Callable[[], list[dict[str, Any]]]
OPEN_PATHS = frozenset({"/healthz"})  # served without basic auth
_LISTED = ("/metrics", "/healthz", "/readyz", "/api/v1/targets", "/api/v1/sd")  # on the index page
#: bytes of /metrics handed to the socket at a time. Each write waits until the transport sent the last, and each
#: wait is a round of the listener's loop that needs the interpreter's lock back, which the agent's loop may hold
#: for up to the switch interval: a fleet's gzip body (4 MB at 1,400 targets) in 256 KiB writes waited 29 times
#: (a scrape's writes took 5-30 ms), now four. Small pieces are joined into a write (a copy, freed once sent: a
#: plain body of 68 MB in 4 MiB writes held a few MiB more at the agent's peak); uvloop's transport sends a write
#: from its bytes (libuv, without the lock), asyncio's copies what the socket does not take at once.
_SEND_SLICE = 1024 * 1024


def parse_listen(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9847"`` or ``"[::1]:9847"`` → (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _slices(chunks: Iterable[bytes]) -> Iterator[bytes | memoryview]:
    """A body's chunks as writes of at most ``_SEND_SLICE`` bytes: small ones joined (a gzip body's deflated
    pieces, thousands of a few KiB, each write costing a round of the listener's loop), larger ones in slices
    (written whole, the socket's send buffer would take a copy of the megabytes it cannot send at once)."""
    for piece in coalesced(chunks, _SEND_SLICE):
        if len(piece) <= _SEND_SLICE:
            yield piece
            continue
        view = memoryview(piece)
        for start in range(0, len(view), _SEND_SLICE):
            yield view[start:start + _SEND_SLICE]


class HttpServer:
    def __init__(self, exposition: Exposition, store: SnapshotStore, expected_jobs: JobList,
                 targets: TargetInfo) -> None:
        self.exposition = exposition
        self.store = store
        self.expected_jobs = expected_jobs
        self.targets_info = targets
        self.targets = TargetScrapes(exposition)
        self.app = web.Application()
        self.app.add_routes([
            web.get("/metrics", self._metrics),
            web.get("/healthz", self._healthz),
            web.get("/readyz", self._readyz),
            web.get("/api/v1/sd", self._service_discovery),
        ])
        self._runner: web.AppRunner | None = None
        self.address = ""
        self.scheme = "http"
        self._ssl_context: Any = None
        self._auth: BasicAuth | None = None
        self._cap: ConnectionCap | None = None
        self._serving: ServingThread | None = None
        self._main: asyncio.AbstractEventLoop | None = None
        #: the state files that cannot be written now, and why (the daemon sets it: agent/statefile.py)
        self.degraded_state: Callable[[], dict[str, str]] = dict
        # How each /metrics scrape was answered and how long it took to the last byte handed to the socket: a
        # body made ahead of it or standing in (answered on the listener's thread), or made on the agent's loop.
        self._scrape_seconds = Histogram(
            "dbwatch_scrape_seconds", "/metrics scrapes by body (whole, target, agent) and how each was answered "
            "(ahead: made before it came; stand_in: a young whole body; loop: made on the agent's event loop) and "
            "encoding (gzip, identity), from the request read to the last byte handed to the socket",
            ("body", "served", "encoding"), buckets=BUCKETS,
            registry=exposition.registry)

    def add_json(self, path: str, provider: Callable[[], Any]) -> None:
        """Serve ``provider()`` as JSON at ``path`` (routes must be added before :meth:`start`)."""

        async def handler(request: web.Request) -> web.Response:
            return web.json_response(provider())

        self.app.router.add_get(path, handler)

    async def start(self, listen: str, web_config: WebConfig | None = None, idle_timeout: float = 30.0,
                    max_connections: int | None = None) -> None:
        """``idle_timeout``: a connection without a complete request for that long is closed;
        ``max_connections``: open connections allowed (by default a share of the file limit)."""
        host, port = parse_listen(listen)
        # The web console (agent/console/) serves these when mounted; without it, a list of links and the jobs.
        routed = {resource.canonical for resource in self.app.router.resources()}
        self.app.router.add_routes([web.get(path, handler) for path, handler in
                                    (("/", self._index), ("/api/v1/targets", self._targets)) if path not in routed])
        if web_config is not None:
            self._ssl_context = web_config.ssl_context()
            self._auth = web_config.basic_auth()
            self.scheme = "https" if self._ssl_context else "http"
        self._cap = ConnectionCap(max_connections or connection_cap(),
                                  pending_for=idle_timeout + 1.0 if self._ssl_context else 2.0)
        self._main = asyncio.get_running_loop()
        self.app.middlewares.append(self._cap.middleware)
        self.app.middlewares.append(self._require_auth)
        self.app.middlewares.append(dispatch(self._main))  # innermost: the handler itself on the agent's loop
        self._serving = ServingThread("dbwatch-http", type(self._main))
        try:
            bound = await self._serving.run(self._listen(host, port, idle_timeout))
        except BaseException:
            await self._serving.stop()
            self._serving = None
            raise
        self.exposition.ahead.start()
        self.exposition.process.start()
        self.address = f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"

    async def _listen(self, host: str, port: int, idle_timeout: float) -> int:
        """Start listening (on the serving thread); the port bound, when 0 was asked."""
        assert self._cap is not None
        self._runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=idle_timeout, logger=REQUEST_LOGGER)
        await self._runner.setup()
        site = CappedSite(self._runner, host, port, cap=self._cap, ssl_context=self._ssl_context,
                          handshake_timeout=idle_timeout)
        await site.start()
        return site.bound_port

    def reload_web_config(self, path: str) -> None:
        """Re-read the web config: users and certificates change; TLS cannot be turned on or off."""
        web_config = load_web_config(path)  # WebConfigError: the caller logs it, the old settings stay
        if (web_config.tls is None) != (self._ssl_context is None):
            raise ValueError("turning TLS on or off takes a restart")
        if web_config.tls is not None:
            tls = web_config.tls
            self._ssl_context.load_cert_chain(tls.cert_file, tls.key_file)
            if tls.client_ca_file is not None:
                self._ssl_context.load_verify_locations(cafile=tls.client_ca_file)
        self._auth = web_config.basic_auth()

    @web.middleware
    async def _require_auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._auth is None or request.path in OPEN_PATHS:
            return await handler(request)
        if await self._auth.check(request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(status=401, text="Unauthorized\n",
                            headers={"WWW-Authenticate": 'Basic realm="dbwatch", charset="UTF-8"'})

    def connection_metrics(self) -> list[MetricFamily]:
        """The listener's open connections, its cap and what the cap closed."""
        if self._cap is None or self._runner is None or self._runner.server is None:
            return []
        return self._cap.metrics(self._runner.server)

    async def stop(self) -> None:
        await self.exposition.ahead.stop()
        self.exposition.process.stop()
        if self._serving is not None:
            if self._runner is not None:
                await self._serving.run(self._runner.cleanup())
                self._runner = None
            await self._serving.stop()
            self._serving = None

    async def _index(self, request: web.Request) -> web.Response:
        links = "".join(f'<li><a href="{p}">{p}</a></li>' for p in _LISTED)
        return web.Response(text=f"<html><body><h1>dbwatch</h1><ul>{links}</ul></body></html>",
                            content_type="text/html")

    @on_serving_thread
    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        """On the serving thread: a per-target or whole body made ahead of its scrape (or a young whole one standing
        in) is answered here; anything else is made on the agent's loop; the body is written from here."""
        assert self._main is not None
        main = self._main
        openmetrics = wants_openmetrics(request.headers.get("Accept"))
        gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        # Who scrapes: one connection per Prometheus scrape loop. Vanished series stay (untimestamped) until
        # every active scraper has fetched them once (exporters/staleness.py).
        peer = request.transport.get_extra_info("peername") if request.transport else None
        scraper = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else None
        query = request.query
        started = time.perf_counter()
        chunks: Iterable[bytes]
        if "target" in query:  # one target's series: the multi-target pattern (exporters/target_exposition.py)
            names = query.getall("target")
            if len(names) != 1:
                return web.Response(status=400, text=f"target= given {len(names)} times: give one target's name\n")
            target = names[0]
            if not self.exposition.has_target(target):
                return web.Response(status=404, text=f"target={target!r}: no target of that name in the "
                                    "configuration\n")
            body, served = self.targets.ready(target, openmetrics, gzip), ("target", "ahead")
            if body is not None:  # made ahead of this scrape: the event loop is told, not waited for
                self.targets.served(target, openmetrics, gzip, scraper, time.time(), main)
            else:
                body, served = await on_loop(main, self.targets.scrape(target, openmetrics, gzip=gzip,
                                                                     scraper=scraper)), ("target", "loop")
            length, chunks = len(body), [body]
        elif query.get("collected") == "false":  # the agent's own metrics only
            body, served = await on_loop(main, self._agent_body(openmetrics, gzip)), ("agent", "loop")
            length, chunks = len(body), [body]
        elif (prepared := self.exposition.prepared_scrape(scraper, openmetrics, gzip)) is not None:
            length, chunks, tell, stood_in = prepared  # made ahead of this scrape (exporters/prepared.py)
            main.call_soon_threadsafe(tell)
            served = ("whole", "stand_in" if stood_in else "ahead")
        else:
            length, chunks = await on_loop(main, self.exposition.scrape_chunks(openmetrics, gzip=gzip,
                                                                                scraper=scraper))
            served = ("whole", "loop")
        headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE,
                   "Vary": "Accept-Encoding"}
        if gzip:  # compressed by the exposition, its snapshot part once per change, not per scrape
            headers["Content-Encoding"] = "gzip"
        timed = self._scrape_seconds.labels(*served, "gzip" if gzip else "identity")
        if isinstance(chunks, list) and len(chunks) == 1 and length <= _SEND_SLICE:
            timed.observe(time.perf_counter() - started)
            return web.Response(body=chunks[0], headers=headers)  # a target's body: one write
        response = web.StreamResponse(headers=headers)
        response.content_length = length
        await response.prepare(request)
        for piece in _slices(chunks):
            await response.write(piece)
        await response.write_eof()
        timed.observe(time.perf_counter() - started)
        return response

    async def _agent_body(self, openmetrics: bool, gzip: bool) -> bytes:
        return self.exposition.scrape_agent(openmetrics, gzip=gzip)

    @on_serving_thread
    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _service_discovery(self, request: web.Request) -> web.Response:
        """Prometheus' HTTP service discovery (``http_sd_configs``): one scrape target per watched target,
        each this agent's address as Prometheus reached it with ``?target=NAME`` (deploy/prometheus/)."""
        return web.json_response([{"targets": [request.host], "labels": {"__param_target": name, "instance": name}}
                                  for name in self.exposition.target_names()])

    async def _readyz(self, request: web.Request) -> web.Response:
        waiting = [f"{t}/{c}" for t, c in self.expected_jobs() if self.store.latest(t, c) is None]
        # A state file that cannot be written does not make the agent unready (it collects, alerts and
        # delivers from memory), but it is said here: {"state_degraded": {file: why}}.
        degraded = {"state_degraded": problems} if (problems := self.degraded_state()) else {}
        if waiting:
            return web.json_response({"ready": False, "not_yet_collected": waiting, **degraded}, status=503)
        return web.json_response({"ready": True, **degraded})

    async def _targets(self, request: web.Request) -> web.Response:
        return web.json_response(self.targets_info())
