"""The console's routes: three pages rendered on the server, their JSON, and the two static files.

Served by the agent's own listener (agent/http.py), so TLS and basic auth are the same as for ``/metrics``.
Nothing is fetched from elsewhere at run time: the stylesheet and script are read from the package once.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from dbwatch.agent.console.alertsview import alerts_page
from dbwatch.agent.console.fleet import SORTS, fleet_page, fleet_rows, parse_query
from dbwatch.agent.console.format import FILTERS
from dbwatch.agent.console.sources import Sources
from dbwatch.agent.console.target import target_detail
from dbwatch.collectors.base import CollectorError

if TYPE_CHECKING:
    import jinja2

__all__ = ["Console", "PAGE_PARAMS"]

HERE = Path(__file__).parent
STATIC_TYPES = {"console.css": "text/css", "console.js": "text/javascript"}
#: query parameters that make /api/v1/targets filter, sort and page (without them it lists every target)
PAGE_PARAMS = frozenset({"q", "state", "engine", "sort", "desc", "page", "per"})
_SECURITY_HEADERS = {
    # Everything is served from here: no other origin, no inline script, no framing by another site.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Console:
    def __init__(self, sources: Sources, version: str = "") -> None:
        self.sources = sources
        self.version = version
        self.static = {name: (HERE / "static" / name).read_bytes() for name in STATIC_TYPES}
        sources.store.subscribe(sources.history.observe)

    @functools.cached_property
    def env(self) -> jinja2.Environment:
        """The pages' templates, loaded on the first page asked for: jinja2 takes 9 MiB that an agent whose console
        nobody opens (a fleet's, scraped by Prometheus) need not hold."""
        import jinja2

        env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                 autoescape=jinja2.select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True)
        env.filters.update(FILTERS)
        return env

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.overview),
            web.get("/targets/{name}", self.target),
            web.get("/alerts", self.alerts),
            web.get("/static/{file}", self.static_file),
            web.get("/api/v1/targets", self.api_targets),
            web.get("/api/v1/targets/{name}", self.api_target),
            web.get("/api/v1/notifications", self.api_notifications),
        ]

    # -- pages ------------------------------------------------------------------------------------------

    def overview_html(self, args: dict[str, str]) -> str:
        """The overview page for query string ``args`` (what the bench times)."""
        query, problems = parse_query(args)
        watched = set(self.sources.targets())
        self.sources.history.retain(watched)
        for gone in set(self.sources.numbers_cache) - watched:
            del self.sources.numbers_cache[gone]
        page = fleet_page(fleet_rows(self.sources), query)
        return self._render("overview.html", title="Fleet", nav="fleet", page=page, query=query,
                            problems=problems, sorts=SORTS)

    async def overview(self, request: web.Request) -> web.Response:
        return self._html(self.overview_html(dict(request.query)))

    async def target(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        detail = await self._detail(name)
        if detail is None:
            return self._html(self._render("missing.html", title="Unknown target", nav="fleet", name=name), 404)
        return self._html(self._render("target.html", title=name, nav="fleet", t=detail,
                                       actions=self.sources.actions_enabled))

    async def alerts(self, request: web.Request) -> web.Response:
        data = alerts_page(self.sources)
        prefill = {k[len("label."):]: v for k, v in request.query.items() if k.startswith("label.")}
        return self._html(self._render("alerts.html", title="Alerts", nav="alerts", data=data, prefill=prefill))

    async def static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        body = self.static.get(name)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type=STATIC_TYPES[name],
                            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})

    # -- JSON -------------------------------------------------------------------------------------------

    async def api_targets(self, request: web.Request) -> web.Response:
        """Every target: its jobs (as before the console) and its overview row; filtered, sorted and paged
        when the query string asks (``X-Total-Count``: how many matched)."""
        rows = {r["name"]: r for r in fleet_rows(self.sources)}
        info = {t["name"]: t for t in self.sources.targets_info()}
        if not PAGE_PARAMS & set(request.query):
            return web.json_response([{**rows.get(name, {}), **item} for name, item in info.items()])
        query, problems = parse_query(dict(request.query))
        if problems:
            return web.json_response({"error": "; ".join(problems)}, status=400)
        page = fleet_page(list(rows.values()), query)
        body = [{**row, **info.get(row["name"], {})} for row in page["rows"]]
        return web.json_response(body, headers={"X-Total-Count": str(page["matched"]),
                                                "X-Page": str(page["page"]), "X-Pages": str(page["pages"])})

    async def api_target(self, request: web.Request) -> web.Response:
        detail = await self._detail(request.match_info["name"])
        if detail is None:
            return web.json_response({"error": f"no target {request.match_info['name']!r} is watched here"},
                                     status=404)
        return web.json_response(detail)

    async def api_notifications(self, request: web.Request) -> web.Response:
        return web.json_response(alerts_page(self.sources)["notifications"])

    # -- helpers ----------------------------------------------------------------------------------------

    async def _detail(self, name: str) -> dict[str, Any] | None:
        """The target page's data, with the live sessions read from the server now (where the engine has them)."""
        detail = target_detail(self.sources, name)
        if detail is None or self.sources.live_sessions is None or detail["up"] is not True:
            return detail
        try:
            live = await self.sources.live_sessions(name)
        except CollectorError as exc:
            detail["sessions"]["live_error"] = str(exc)
        else:
            if live is not None:
                detail["sessions"]["live"] = live
        return detail

    def _render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(version=self.version, now=time.time(), **context)

    def _html(self, text: str, status: int = 200) -> web.Response:
        response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                                headers=_SECURITY_HEADERS)
        response.enable_compression()  # gzip or deflate when the browser accepts it (a page of rows: ~10x smaller)
        return response
