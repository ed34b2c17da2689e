"""The engines dbwatch knows, and for each its session type, its collectors and their defaults."""

from __future__ import annotations

import importlib
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Protocol

from dbwatch.model import Target
from dbwatch.collectors.base import Collector, Session


@dataclass(frozen=True, slots=True)
class CollectorDefaults:
    """A collector's schedule by default; its options and their defaults are its ``options_model``."""

    interval: float
    timeout: float
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Engine:
    """One engine as data: how its targets are written in the config and checked, how they are reached, what
    collects them. Adding an engine is one collectors module, one entry in ``_FACTORIES`` and its tests."""

    name: str
    default_port: int
    session: Callable[[Target], Session]
    collectors: Mapping[str, type[Collector[Any, Any]]]
    defaults: Mapping[str, CollectorDefaults]
    #: the collector whose success means "up" (``<engine>_up``): a cluster member's probe
    main_collector: str
    #: DSN schemes it accepts; the first one writes a DSN from host/port/user/database. Empty: there is nothing
    #: to connect to (the target takes no dsn or host)
    schemes: tuple[str, ...] = ()
    #: engine-specific checks of a target's configuration, after the common ones: one line per problem
    validate: Callable[[TargetFields], list[str]] = field(default=lambda target: [])
    #: the SQL dialect of its statements, for statement analysis (None: it speaks no SQL)
    dialect: str | None = None
    #: the failover action that promotes one of its replicas through the session (:meth:`Session.promote`)
    promote_action: str | None = None


class TargetFields(Protocol):
    """What an engine's ``validate`` reads of a target's configuration (the agent's ``TargetConfig``)."""

    @property
    def dsn(self) -> str | None: ...
    @property
    def host(self) -> str | None: ...
    @property
    def user(self) -> str | None: ...
    @property
    def database(self) -> str | None: ...
    @property
    def sslmode(self) -> str | None: ...
    @property
    def password_env(self) -> str | None: ...
    @property
    def password_file(self) -> str | None: ...


class LazyClasses(Mapping[str, type[Collector[Any, Any]]]):
    """Collector classes by name, each imported from ``"module:Class"`` (a module of dbwatch.collectors) when
    first used: the registry's data costs no driver import, and a configuration loads only what it runs."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        self.paths = dict(paths)
        self._loaded: dict[str, type[Collector[Any, Any]]] = {}

    def __getitem__(self, name: str) -> type[Collector[Any, Any]]:
        if name not in self._loaded:
            self._loaded[name] = _load(self.paths[name])
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self.paths  # Mapping's default would import the class to answer

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


class LazySession:
    """An engine's session class, imported from ``"module:Class"`` when the first target of the engine starts."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, target: Target) -> Session:
        session: Session = _load(self.path)(target)
        return session


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(f"dbwatch.collectors.{module}"), name)


def _postgres() -> Engine:
    return Engine(
        name="postgres",
        default_port=5432,
        main_collector="postgres",
        schemes=("postgresql", "postgres"),
        dialect="postgres",
        promote_action="pg_promote",
        session=LazySession("postgres:PostgresSession"),
        collectors=LazyClasses({
            "postgres": "postgres:PostgresCollector",
            "statements": "pg_statements:StatementsCollector",
            "slowlog": "slowlog:SlowLogCollector",
            "advisor": "pg_advisor:AdvisorCollector",
            "audit": "pg_audit:PgAuditCollector",
            "workload": "pg_workload:PgWorkloadCollector",
            "schema_design": "pg_schema_design:PgSchemaDesignCollector",
            "ha": "pg_ha_review:PgHaReviewCollector",
            "tables": "pg_tables:TablesCollector",
            "settings": "pg_settings:SettingsCollector",
            "stats": "pg_stats_more:MoreStatsCollector",
            "custom": "pg_custom:CustomQueriesCollector",
            "queries": "pg_queries:PgQueriesCollector",
            "migrations": "pg_migrations:PgMigrationsCollector",
            "schema": "pg_schema:PgSchemaCollector",
            "timescaledb": "timescale:TimescaleCollector",
        }),
        defaults={
            "postgres": CollectorDefaults(interval=15.0, timeout=10.0),
            # On by default: it exports nothing (one query per database) where the extension is not installed.
            "timescaledb": CollectorDefaults(interval=60.0, timeout=30.0),
            # postgres_exporter's per-table, settings and other default collectors, under its names.
            "tables": CollectorDefaults(interval=30.0, timeout=20.0),
            "settings": CollectorDefaults(interval=60.0, timeout=10.0),
            "stats": CollectorDefaults(interval=15.0, timeout=10.0),
            # A postgres_exporter queries.yaml: on when enabled with a queries_file.
            "custom": CollectorDefaults(interval=15.0, timeout=10.0, enabled=False),
            # dbwatch's own custom queries (collectors/custom_queries.py): on when enabled with queries.
            "queries": CollectorDefaults(interval=60.0, timeout=10.0, enabled=False),
            # Schema changes while they run: lock queues behind DDL, index builds, invalid indexes.
            "migrations": CollectorDefaults(interval=15.0, timeout=10.0),
            "statements": CollectorDefaults(interval=60.0, timeout=20.0),
            # On for a target with a schema_group (SchemaDrift), off otherwise (agent/config.py).
            "schema": CollectorDefaults(interval=300.0, timeout=30.0, enabled=False),
            "slowlog": CollectorDefaults(interval=60.0, timeout=30.0, enabled=False),
            # Off in the daemon unless enabled: it plans the application's statements (EXPLAIN, HypoPG), and
            # its answers change over days; `dbwatch advise` runs it on demand whatever this says.
            "advisor": CollectorDefaults(interval=3600.0, timeout=120.0, enabled=False),
            # Roles, pg_hba, settings and schema change with deployments: hourly (catalogs only), when enabled.
            "audit": CollectorDefaults(interval=3600.0, timeout=30.0, enabled=False),
            # The workload profile for the strategy advice (rules/strategy*.py): statistics views; on demand.
            "workload": CollectorDefaults(interval=3600.0, timeout=60.0, enabled=False),
            # The schema designer (rules/schema_design.py): catalog, pg_stats and bounded checks; on demand.
            "schema_design": CollectorDefaults(interval=3600.0, timeout=60.0, enabled=False),
            # The replication and HA review's settings (rules/ha_review.py): one catalog query; on demand.
            "ha": CollectorDefaults(interval=3600.0, timeout=10.0, enabled=False),
        },
    )


def _mysql() -> Engine:
    return Engine(
        name="mysql",
        default_port=3306,
        main_collector="mysql",
        schemes=("mysql", "mariadb"),
        dialect="mysql",
        session=LazySession("mysql:MySQLSession"),
        collectors=LazyClasses({
            "mysql": "mysql:MySQLCollector",
            "statements": "mysql_statements:MySQLStatementsCollector",
            "slowlog": "slowlog:SlowLogCollector",
            "audit": "mysql_audit:MySQLAuditCollector",
            "advisor": "mysql_advisor:MySQLAdvisorCollector",
            "workload": "mysql_workload:MySQLWorkloadCollector",
            "migrations": "mysql_migrations:MySQLMigrationsCollector",
            "schema": "mysql_schema:MySQLSchemaCollector",
            "ha": "mysql_ha_review:MySQLHaReviewCollector",
            "schema_design": "mysql_schema_design:MySQLSchemaDesignCollector",
            "queries": "mysql_custom:MySQLQueriesCollector",
        }),
        defaults={
            "mysql": CollectorDefaults(interval=15.0, timeout=10.0),
            "statements": CollectorDefaults(interval=60.0, timeout=20.0),
            "slowlog": CollectorDefaults(interval=60.0, timeout=30.0, enabled=False),
            "audit": CollectorDefaults(interval=3600.0, timeout=30.0, enabled=False),
            # Off in the daemon unless enabled, like PostgreSQL's: it EXPLAINs the application's statements.
            "advisor": CollectorDefaults(interval=3600.0, timeout=120.0, enabled=False),
            # The workload profile for the strategy advice (rules/strategy*.py): performance_schema; on demand.
            "workload": CollectorDefaults(interval=3600.0, timeout=60.0, enabled=False),
            # Metadata-lock queues behind DDL, gh-ost and pt-online-schema-change runs.
            "migrations": CollectorDefaults(interval=15.0, timeout=10.0),
            # On for a target with a schema_group (SchemaDrift), off otherwise (agent/config.py).
            "schema": CollectorDefaults(interval=300.0, timeout=30.0, enabled=False),
            # The replication and HA review's settings (rules/ha_review.py); on demand.
            "ha": CollectorDefaults(interval=3600.0, timeout=10.0, enabled=False),
            # The schema designer (rules/schema_design.py): information_schema and bounded checks; on demand.
            "schema_design": CollectorDefaults(interval=3600.0, timeout=60.0, enabled=False),
            # dbwatch's own custom queries (collectors/custom_queries.py): on when enabled with queries.
            "queries": CollectorDefaults(interval=60.0, timeout=10.0, enabled=False),
        },
    )


def _host() -> Engine:
    return Engine(
        name="host",
        default_port=0,
        main_collector="host",
        validate=_host_problems,
        session=LazySession("host:HostSession"),
        collectors=LazyClasses({
            "host": "host:HostCollector",
        }),
        defaults={"host": CollectorDefaults(interval=15.0, timeout=5.0)},
    )


def _redis() -> Engine:
    return Engine(
        name="redis",
        default_port=6379,
        main_collector="redis",
        schemes=("redis", "rediss"),
        validate=_redis_problems,
        session=LazySession("redis:RedisSession"),
        collectors=LazyClasses({
            "redis": "redis:RedisCollector",
            "slowlog": "redis_slowlog:SlowlogCollector",
            "audit": "redis_audit:RedisAuditCollector",
        }),
        defaults={
            "redis": CollectorDefaults(interval=15.0, timeout=5.0),
            # Short enough that the server's ring (slowlog-max-len, 128 by default) rarely wraps in between.
            "slowlog": CollectorDefaults(interval=15.0, timeout=5.0),
            "audit": CollectorDefaults(interval=3600.0, timeout=10.0, enabled=False),
        },
    )


def _pgbouncer() -> Engine:
    return Engine(
        name="pgbouncer",
        default_port=6432,
        main_collector="pgbouncer",
        schemes=("postgresql", "postgres"),
        validate=_pgbouncer_problems,
        session=LazySession("pgbouncer:PgBouncerSession"),
        collectors=LazyClasses({
            "pgbouncer": "pgbouncer:PgBouncerCollector",
        }),
        defaults={"pgbouncer": CollectorDefaults(interval=15.0, timeout=5.0)},
    )


def _mongodb() -> Engine:
    return Engine(
        name="mongodb",
        default_port=27017,
        main_collector="mongodb",
        schemes=("mongodb", "mongodb+srv"),
        validate=_mongodb_problems,
        session=LazySession("mongodb:MongoSession"),
        collectors=LazyClasses({
            "mongodb": "mongodb:MongoCollector",
            "profiler": "mongodb_profiler:ProfilerCollector",
            "indexstats": "mongodb_profiler:IndexStatsCollector",
            "schema_design": "mongo_schema_design:MongoSchemaDesignCollector",
            "ha": "mongo_ha_review:MongoHaReviewCollector",
        }),
        defaults={
            "mongodb": CollectorDefaults(interval=15.0, timeout=10.0),
            "profiler": CollectorDefaults(interval=60.0, timeout=20.0),
            "indexstats": CollectorDefaults(interval=300.0, timeout=30.0),
            # The schema designer (validators, shape drift of a $sample per collection); on demand.
            "schema_design": CollectorDefaults(interval=3600.0, timeout=60.0, enabled=False),
            # The HA review's votes, arbiters and default write concern; on demand.
            "ha": CollectorDefaults(interval=3600.0, timeout=10.0, enabled=False),
        },
    )


def _neo4j() -> Engine:
    return Engine(
        name="neo4j",
        default_port=7687,
        main_collector="neo4j",
        schemes=("bolt", "neo4j", "bolt+s", "bolt+ssc", "neo4j+s", "neo4j+ssc"),
        validate=_neo4j_problems,
        session=LazySession("neo4j:Neo4jSession"),
        collectors=LazyClasses({"neo4j": "neo4j:Neo4jCollector", "slowlog": "slowlog:SlowLogCollector"}),
        defaults={"neo4j": CollectorDefaults(interval=15.0, timeout=10.0),
                  # query.log, when the agent can read it (docs/neo4j.md)
                  "slowlog": CollectorDefaults(interval=60.0, timeout=30.0, enabled=False)},
    )


def _neo4j_problems(target: TargetFields) -> list[str]:
    if target.sslmode:
        return ["sslmode is for postgres; for TLS to neo4j use a bolt+s:// or neo4j+s:// dsn"]
    return []


def _cassandra() -> Engine:
    return Engine(
        name="cassandra",
        default_port=9042,
        main_collector="cassandra",
        schemes=("cassandra",),
        validate=_cassandra_problems,
        session=LazySession("cassandra:CassandraSession"),
        collectors=LazyClasses({"cassandra": "cassandra:CassandraCollector"}),
        defaults={"cassandra": CollectorDefaults(interval=15.0, timeout=10.0)},
    )


def _cassandra_problems(target: TargetFields) -> list[str]:
    if target.sslmode:
        return ["sslmode is for postgres; dbwatch connects to cassandra without TLS"]
    return []


_FACTORIES: dict[str, Callable[[], Engine]] = {"postgres": _postgres, "host": _host, "redis": _redis, "mysql": _mysql,
                                               "pgbouncer": _pgbouncer,
                                               "mongodb": _mongodb,
                                               "neo4j": _neo4j,
                                               "cassandra": _cassandra}
_cache: dict[str, Engine] = {}

ENGINE_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def engine(name: str) -> Engine:
    if name not in _cache:
        _cache[name] = _with_backup(_FACTORIES[name]())
    return _cache[name]


def _host_problems(target: TargetFields) -> list[str]:
    if target.dsn or target.host:
        return ["the host engine watches the machine dbwatch runs on; it takes no dsn or host"]
    return []


def _redis_problems(target: TargetFields) -> list[str]:
    problems = []
    if target.sslmode:
        problems.append("sslmode is for postgres; for TLS to redis use a rediss:// dsn")
    if target.database and not target.database.isdigit():
        problems.append(f"database: expected a redis database number like 0, got {target.database!r}")
    return problems


def _mongodb_problems(target: TargetFields) -> list[str]:
    problems = []
    if target.sslmode:
        problems.append("sslmode is for postgres; for TLS to mongodb put tls=true in a mongodb:// dsn")
    if (target.password_env or target.password_file) and not (
            target.user or target.dsn and urllib.parse.urlsplit(target.dsn).username):
        problems.append("a password is configured but no user: name it in the dsn (mongodb://user@host/)")
    return problems


def _pgbouncer_problems(target: TargetFields) -> list[str]:
    if target.dsn:
        database = urllib.parse.unquote(urllib.parse.urlsplit(target.dsn).path.lstrip("/"))
    else:
        database = target.database or ""
    if database != "pgbouncer":
        return ["the pgbouncer engine reads PgBouncer's admin console: the database must be pgbouncer "
                '(dsn "postgresql://user@host:6432/pgbouncer")']
    return []


def _with_backup(spec: Engine) -> Engine:
    """Every engine offers the backup collector; it is on when the target configures ``backups:``. The
    restore drill collector only starts drills in the background and reports them: quick, every minute,
    on when a source has ``restore_test:``."""
    assert isinstance(spec.collectors, LazyClasses)
    return replace(
        spec,
        collectors=LazyClasses({**spec.collectors.paths, "backup": "backup:BackupCollector",
                                "restore_drill": "restore_job:RestoreDrillCollector"}),
        defaults={**spec.defaults, "backup": CollectorDefaults(interval=300.0, timeout=65.0, enabled=False),
                  "restore_drill": CollectorDefaults(interval=60.0, timeout=10.0, enabled=False)},
    )
