"""The engines dbwatch knows, and for each its session type, its collectors and their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dbwatch.agent.model import Target
from dbwatch.collectors.base import Collector, Session


@dataclass(frozen=True, slots=True)
class CollectorDefaults:
    interval: float
    timeout: float
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Engine:
    name: str
    default_port: int
    session: Callable[[Target], Session]
    collectors: Mapping[str, type[Collector]]
    defaults: Mapping[str, CollectorDefaults]


def _postgres() -> Engine:
    from dbwatch.collectors import pg_statements, postgres, slowlog

    return Engine(
        name="postgres",
        default_port=5432,
        session=postgres.PostgresSession,
        collectors={"postgres": postgres.PostgresCollector, "statements": pg_statements.StatementsCollector,
                    "slowlog": slowlog.SlowLogCollector},
        defaults={
            "postgres": CollectorDefaults(interval=15.0, timeout=10.0),
            "statements": CollectorDefaults(
                interval=60.0, timeout=20.0, options={"top_n": 100, "query_text_length": 200}
            ),
            "slowlog": CollectorDefaults(
                interval=60.0, timeout=30.0, enabled=False, options=slowlog.DEFAULT_OPTIONS
            ),
        },
    )


def _mysql() -> Engine:
    from dbwatch.collectors import mysql, mysql_statements, slowlog

    return Engine(
        name="mysql",
        default_port=3306,
        session=mysql.MySQLSession,
        collectors={"mysql": mysql.MySQLCollector, "statements": mysql_statements.MySQLStatementsCollector,
                    "slowlog": slowlog.SlowLogCollector},
        defaults={
            "mysql": CollectorDefaults(
                interval=15.0, timeout=10.0,
                options={"heartbeat_table": "", "heartbeat_utc": False, "query_text_length": 200},
            ),
            "statements": CollectorDefaults(
                interval=60.0, timeout=20.0, options={"top_n": 100, "query_text_length": 200}
            ),
            "slowlog": CollectorDefaults(
                interval=60.0, timeout=30.0, enabled=False, options=slowlog.DEFAULT_OPTIONS
            ),
        },
    )


def _host() -> Engine:
    from dbwatch.collectors import host

    return Engine(
        name="host",
        default_port=0,
        session=host.HostSession,
        collectors={"host": host.HostCollector},
        defaults={"host": CollectorDefaults(interval=15.0, timeout=5.0, options={"paths": []})},
    )


def _redis() -> Engine:
    from dbwatch.collectors import redis, redis_slowlog

    return Engine(
        name="redis",
        default_port=6379,
        session=redis.RedisSession,
        collectors={"redis": redis.RedisCollector, "slowlog": redis_slowlog.SlowlogCollector},
        defaults={
            "redis": CollectorDefaults(interval=15.0, timeout=5.0),
            # Short enough that the server's ring (slowlog-max-len, 128 by default) rarely wraps in between.
            "slowlog": CollectorDefaults(
                interval=15.0, timeout=5.0, options={"max_entries": 1024, "max_series": 200}
            ),
        },
    )


_FACTORIES: dict[str, Callable[[], Engine]] = {"postgres": _postgres, "host": _host, "redis": _redis, "mysql": _mysql}
_cache: dict[str, Engine] = {}

ENGINE_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def engine(name: str) -> Engine:
    if name not in _cache:
        _cache[name] = _FACTORIES[name]()
    return _cache[name]
