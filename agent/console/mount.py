"""Put the console on the daemon's listener (before it starts): the one place that knows the daemon's objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbwatch.agent import __version__
from dbwatch.agent.console.sources import Sources
from dbwatch.agent.console.web import Console
from dbwatch.collectors.pg_backends import live_backends

if TYPE_CHECKING:
    from dbwatch.agent.daemon import Daemon

__all__ = ["mount_console"]


def mount_console(daemon: Daemon) -> Console | None:
    """The console's pages and JSON on ``daemon.http``; None when ``server.console.enabled`` is false."""
    settings = getattr(daemon.config.server, "console", None)
    if settings is not None and not getattr(settings, "enabled", True):
        return None
    alerting = daemon.alerting

    def up_collector(name: str) -> str | None:
        jobs = daemon.targets.get(name)
        return jobs.up_collector if jobs is not None else None

    async def live_sessions(name: str) -> list[dict[str, Any]] | None:
        jobs = daemon.targets.get(name)
        return None if jobs is None else await live_backends(jobs.session)

    sources = Sources(
        store=daemon.store,
        targets=daemon.target_map,
        up_collector=up_collector,
        alerts=alerting.tracker.alerts,
        recommendations=alerting.recommendations,
        clusters=alerting.clusters.as_json,
        notifications=alerting.notifier.outbox.recent,
        silences=lambda: getattr(alerting, "silences", None),
        targets_info=daemon.targets_info,
        live_sessions=live_sessions,
        # cancel/terminate buttons: only when opted in and the listener asks for a password (agent/console_actions.py)
        actions_enabled=bool(getattr(settings, "actions", False)) and daemon.web_config is not None
        and daemon.web_config.basic_auth() is not None,
    )
    console = Console(sources, version=__version__)
    daemon.http.app.add_routes(console.routes())
    return console
