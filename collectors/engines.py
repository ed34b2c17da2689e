"""The engines dbwatch knows, and for each its session type, its collectors and their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dbwatch.model import Target
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
    from dbwatch.collectors import pg_advisor, pg_audit, pg_statements, postgres, slowlog

    return Engine(
        name="postgres",
        default_port=5432,
        session=postgres.PostgresSession,
        collectors={"postgres": postgres.PostgresCollector, "statements": pg_statements.StatementsCollector,
                    "slowlog": slowlog.SlowLogCollector, "advisor": pg_advisor.AdvisorCollector,
                    "audit": pg_audit.PgAuditCollector},
        defaults={
            "postgres": CollectorDefaults(interval=15.0, timeout=10.0),
            "statements": CollectorDefaults(
                interval=60.0, timeout=20.0, options={"top_n": 100, "query_text_length": 200}
            ),
            "slowlog": CollectorDefaults(
                interval=60.0, timeout=30.0, enabled=False, options=slowlog.DEFAULT_OPTIONS
            ),
            # Off in the daemon unless enabled: it plans the application's statements (EXPLAIN, HypoPG), and
            # its answers change over days; `dbwatch advise` runs it on demand whatever this says.
            "advisor": CollectorDefaults(
                interval=3600.0, timeout=120.0, enabled=False, options=pg_advisor.DEFAULT_OPTIONS
            ),
            # Roles, pg_hba, settings and schema change with deployments: hourly (catalogs only), when enabled.
            "audit": CollectorDefaults(
                interval=3600.0, timeout=30.0, enabled=False, options=pg_audit.DEFAULT_OPTIONS
            ),
        },
    )


def _mysql() -> Engine:
    from dbwatch.collectors import mysql, mysql_advisor, mysql_audit, mysql_statements, slowlog

    return Engine(
        name="mysql",
        default_port=3306,
        session=mysql.MySQLSession,
        collectors={"mysql": mysql.MySQLCollector, "statements": mysql_statements.MySQLStatementsCollector,
                    "slowlog": slowlog.SlowLogCollector, "audit": mysql_audit.MySQLAuditCollector,
                    "advisor": mysql_advisor.MySQLAdvisorCollector},
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
            "audit": CollectorDefaults(
                interval=3600.0, timeout=30.0, enabled=False, options=mysql_audit.DEFAULT_OPTIONS
            ),
            # Off in the daemon unless enabled, like PostgreSQL's: it EXPLAINs the application's statements.
            "advisor": CollectorDefaults(
                interval=3600.0, timeout=120.0, enabled=False, options=mysql_advisor.DEFAULT_OPTIONS
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
    from dbwatch.collectors import redis, redis_audit, redis_slowlog

    return Engine(
        name="redis",
        default_port=6379,
        session=redis.RedisSession,
        collectors={"redis": redis.RedisCollector, "slowlog": redis_slowlog.SlowlogCollector,
                    "audit": redis_audit.RedisAuditCollector},
        defaults={
            "redis": CollectorDefaults(interval=15.0, timeout=5.0),
            # Short enough that the server's ring (slowlog-max-len, 128 by default) rarely wraps in between.
            "slowlog": CollectorDefaults(
                interval=15.0, timeout=5.0, options={"max_entries": 1024, "max_series": 200}
            ),
            "audit": CollectorDefaults(
                interval=3600.0, timeout=10.0, enabled=False, options=redis_audit.DEFAULT_OPTIONS
            ),
        },
    )


def _pgbouncer() -> Engine:
    from dbwatch.collectors import pgbouncer

    return Engine(
        name="pgbouncer",
        default_port=6432,
        session=pgbouncer.PgBouncerSession,
        collectors={"pgbouncer": pgbouncer.PgBouncerCollector},
        defaults={"pgbouncer": CollectorDefaults(interval=15.0, timeout=5.0)},
    )


def _mongodb() -> Engine:
    from dbwatch.collectors import mongodb, mongodb_profiler

    return Engine(
        name="mongodb",
        default_port=27017,
        session=mongodb.MongoSession,
        collectors={"mongodb": mongodb.MongoCollector, "profiler": mongodb_profiler.ProfilerCollector,
                    "indexstats": mongodb_profiler.IndexStatsCollector},
        defaults={
            "mongodb": CollectorDefaults(interval=15.0, timeout=10.0, options={"long_op_seconds": 60.0}),
            "profiler": CollectorDefaults(
                interval=60.0, timeout=20.0, options={"databases": [], "max_entries": 1000, "max_series": 200}
            ),
            "indexstats": CollectorDefaults(
                interval=300.0, timeout=30.0, options={"databases": [], "max_collections": 200}
            ),
        },
    )


_FACTORIES: dict[str, Callable[[], Engine]] = {"postgres": _postgres, "host": _host, "redis": _redis, "mysql": _mysql,
                                               "pgbouncer": _pgbouncer,
                                               "mongodb": _mongodb}
_cache: dict[str, Engine] = {}

ENGINE_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def engine(name: str) -> Engine:
    if name not in _cache:
        _cache[name] = _with_backup(_FACTORIES[name]())
    return _cache[name]


def _with_backup(spec: Engine) -> Engine:
    """Every engine offers the backup collector; it is on when the target configures ``backups:``."""
    from dataclasses import replace

    from dbwatch.collectors import backup

    return replace(
        spec,
        collectors={**spec.collectors, "backup": backup.BackupCollector},
        defaults={**spec.defaults, "backup": CollectorDefaults(interval=300.0, timeout=65.0, enabled=False)},
    )
