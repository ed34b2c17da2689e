"""The configuration file: YAML, ``${ENV}`` interpolation, a strict typed model, errors that name their path.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError` whose ``problems`` are one
line each, ``targets[1].interval: expected a duration like "15s", got "fast"``. Passwords are never part of
the model: a target names where its password lives (``password_env`` / ``password_file``) and the
collector reads it when it connects.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import re
import urllib.parse
from pathlib import Path
from typing import Any, Literal, Mapping, cast

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails

from dbwatch.agent.backupconfig import BackupConfig, check_backup_names, to_specs
from dbwatch.model.configtypes import Duration, StrictModel, format_validation_error
from dbwatch.model import CollectorSettings, Target
from dbwatch.model.options import CollectorOptions, option_problems
from dbwatch.agent.sharding import ShardingConfig
from dbwatch.agent.webconfig import WebConfigError, load_web_config
from dbwatch.collectors.session import DEFAULT_CONNECT_SLOTS
from dbwatch.collectors.engines import ENGINE_NAMES, engine
from dbwatch.exporters.receivers import NotificationsConfig, ReceiverConfig, check_unique_names
from dbwatch.rules.clusterconfig import ClusterConfig
from dbwatch.rules.spec import RulesConfig, RulesError, load_rules

__all__ = ["Config", "ConfigError", "TargetConfig", "load_config", "parse_config"]

DEFAULT_LISTEN = "127.0.0.1:9847"


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: {len(problems)} problem(s)")
        self.source = source
        self.problems = problems


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


class CollectorConfig(StrictModel):
    """Per-collector settings; keys other than these are the collector's own options."""

    model_config = StrictModel.model_config | {"extra": "allow"}

    enabled: bool | None = None
    interval: Duration | None = Field(default=None, gt=0)
    timeout: Duration | None = Field(default=None, gt=0)


class TargetConfig(StrictModel):
    name: str
    engine: str
    dsn: str | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    database: str | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    password_env: str | None = None
    password_file: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    interval: Duration | None = Field(default=None, gt=0)
    timeout: Duration | None = Field(default=None, gt=0)
    collectors: dict[str, CollectorConfig] = Field(default_factory=dict)
    cluster: str | None = None  # replication cluster (see the top-level ``clusters:``)
    schema_group: str | None = None  # targets whose schemas must match (SchemaDrift when they differ)
    backups: list[BackupConfig] = Field(default_factory=list)  # backup sources (agent/backupconfig.py)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TARGET_NAME.match(value):
            raise ValueError(f"expected a name of letters, digits and _.:@- , got {value!r}")
        return value

    @field_validator("cluster", "schema_group")
    @classmethod
    def _cluster(cls, value: str | None) -> str | None:
        if value is not None and not _TARGET_NAME.match(value):
            raise ValueError(f"expected a name of letters, digits and _.:@- , got {value!r}")
        return value

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value not in ENGINE_NAMES:
            raise ValueError(f"expected one of {', '.join(ENGINE_NAMES)}, got {value!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"expected Prometheus label names ([a-zA-Z_][a-zA-Z0-9_]*), got {name!r}")
            if name == "target":
                raise ValueError("'target' is set by dbwatch from the target's name; choose another label")
        return value

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urllib.parse.urlsplit(value)
        if not parsed.scheme or not parsed.netloc and not parsed.query:
            raise ValueError('expected a URI like "postgresql://user@host:5432/dbname"')
        if parsed.password is not None or "password=" in parsed.query:
            raise ValueError("holds a password; put it in password_env or password_file instead")
        return value

    @model_validator(mode="after")
    def _connection(self) -> "TargetConfig":
        spec = engine(self.engine)
        if spec.schemes:  # something to connect to: the checks every such engine shares come first
            scheme = urllib.parse.urlsplit(self.dsn).scheme if self.dsn else None
            if self.dsn and (self.host or self.port or self.user or self.database):
                raise ValueError("give either dsn or host/port/user/database, not both")
            if self.dsn and scheme not in spec.schemes:
                raise ValueError(f"dsn scheme {scheme!r} does not match engine {self.engine!r}")
            if not self.dsn and not self.host:
                raise ValueError("needs a dsn or a host")
            if self.password_env and self.password_file:
                raise ValueError("give either password_env or password_file, not both")
        for problem in spec.validate(self):
            raise ValueError(problem)  # the first one: a model validator reports one error
        return self

    @field_validator("collectors")
    @classmethod
    def _collectors(cls, value: dict[str, CollectorConfig], info: ValidationInfo) -> dict[str, CollectorConfig]:
        """Every collector named is the engine's, and its options fit its options model: all problems at once."""
        if "engine" not in info.data:
            return value  # an unknown engine is reported on its own; its collectors cannot be judged
        spec = engine(info.data["engine"])
        problems: list[InitErrorDetails] = []
        for name, settings in value.items():
            if name not in spec.collectors:
                message = (f"unknown collector for engine {spec.name!r}; "
                           f"expected one of {', '.join(spec.collectors)}")
                problems.append(_problem((name,), "value_error", message, settings))
                continue
            extra = settings.model_extra or {}
            found = option_problems(spec.collectors[name].options_model, extra)
            for loc, kind, message in found:
                problems.append(_problem((name, *loc), kind, message, extra.get(str(loc[0])) if loc else None))
            # Options that name a file (a queries.yaml) say what is wrong inside it, one line per problem.
            checker = getattr(spec.collectors[name].options_model, "file_problems", None)
            if not found and checker is not None:
                options = spec.collectors[name].options_model.model_validate(extra)
                for key, message in checker(options):
                    problems.append(_problem((name, key), "value_error", message, None))
        if problems:
            raise ValidationError.from_exception_data("collectors", problems)
        return value

    def collector_options(self, name: str) -> CollectorOptions:
        """The options of collector ``name`` as configured, defaults filled in (validated when the config loaded)."""
        own = self.collectors.get(name)
        model: type[CollectorOptions] = engine(self.engine).collectors[name].options_model
        return model.model_validate(own.model_extra or {} if own else {})

    def connection_dsn(self) -> str:
        """The DSN to connect with, without any password."""
        if self.dsn:
            return self.dsn
        spec = engine(self.engine)
        port = self.port or spec.default_port
        user = urllib.parse.quote(self.user, safe="") + "@" if self.user else ""
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        database = urllib.parse.quote(self.database or "", safe="")
        query = f"?sslmode={self.sslmode}" if self.sslmode else ""
        return f"{spec.schemes[0]}://{user}{host}:{port}/{database}{query}"

    def to_target(self) -> Target:
        spec = engine(self.engine)
        collectors: dict[str, CollectorSettings] = {}
        for name, defaults in spec.defaults.items():
            own = self.collectors.get(name, CollectorConfig())
            enabled = own.enabled if own.enabled is not None else defaults.enabled
            if name == "backup" and own.enabled is None:
                enabled = bool(self.backups)  # on exactly when backup sources are configured
            if name == "schema" and own.enabled is None:
                enabled = bool(self.schema_group)  # the fingerprint SchemaDrift compares
            if name == "restore_drill" and own.enabled is None:
                enabled = any(b.restore_test for b in self.backups)  # drills are opt-in, per source
            if not enabled:
                continue
            timeout = own.timeout or self.timeout or defaults.timeout
            if name == "backup" and not own.timeout:
                # every source has its own timeout; the collection as a whole outlasts the slowest one
                timeout = max([defaults.timeout, *(b.timeout + 5 for b in self.backups)])
            collectors[name] = CollectorSettings(
                interval=own.interval or self.interval or defaults.interval,
                timeout=timeout,
                options=self.collector_options(name),
            )
        return Target(
            name=self.name,
            engine=self.engine,
            dsn=self.connection_dsn() if spec.schemes else "",
            labels=dict(self.labels),
            collectors=collectors,
            password_env=self.password_env,
            password_file=self.password_file,
            cluster=self.cluster,
            schema_group=self.schema_group,
            backups=to_specs(self.backups),
        )

    @model_validator(mode="after")
    def _schema_group(self) -> "TargetConfig":
        if self.schema_group and "schema" not in engine(self.engine).collectors:
            raise ValueError(f"schema_group: {self.engine} targets have no schema collector to fingerprint them")
        return self

    @model_validator(mode="after")
    def _backups(self) -> "TargetConfig":
        check_backup_names(self.backups)
        backup = self.collectors.get("backup")
        if backup is not None and backup.enabled and not self.backups:
            raise ValueError("collectors.backup: enabled, but the target has no backups: sources to read")
        return self


def _problem(loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> InitErrorDetails:
    """One line of a :class:`ValidationError` raised from a validator (pydantic joins ``loc`` to its path)."""
    if kind == "value_error":
        return {"type": kind, "loc": loc, "input": value, "ctx": {"error": ValueError(message)}}
    return {"type": cast(Any, kind), "loc": loc, "input": value}


class ConsoleConfig(StrictModel):
    """``server.console``: the web console at ``/``; ``actions`` (cancel, terminate a backend) are opt-in."""

    enabled: bool = True
    actions: bool = False  # only with basic auth (server.web_config_file's basic_auth_users): see docs/console.md


_ACTIONS_NEED_AUTH = ("console.actions: true needs authentication: set server.web_config_file to a web config "
                      "with basic_auth_users (docs/console.md#actions)")


class ServerConfig(StrictModel):
    listen: str = DEFAULT_LISTEN
    web_config_file: str | None = None  # TLS and basic auth, exporter-toolkit format (agent/webconfig.py)
    idle_timeout: Duration = Field(default=30.0, gt=0)  # a connection without a complete request is closed
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)

    @model_validator(mode="after")
    def _actions_need_auth(self) -> "ServerConfig":
        if self.console.actions and not self.web_config_file:
            raise ValueError(_ACTIONS_NEED_AUTH)
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f'expected "host:port" like "127.0.0.1:9847" or "[::1]:9847", got {value!r}')
        return value


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class CollectionConfig(StrictModel):
    """How the agent collects, across all its targets."""

    # Connection attempts in flight at once: a fleet starting (or a server coming back) is not stormed.
    max_concurrent_connects: int = Field(default=DEFAULT_CONNECT_SLOTS, ge=1)
    # Collections in flight at once on one server (host:port), lowered while they time out (agent/pressure.py).
    max_concurrent_per_server: int = Field(default=16, ge=1)


class Config(StrictModel):
    state_dir: str = "/var/lib/dbwatch"
    server: ServerConfig = Field(default_factory=ServerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    targets: list[TargetConfig] = Field(default_factory=list)
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    clusters: dict[str, ClusterConfig] = Field(default_factory=dict)
    sharding: ShardingConfig = Field(default_factory=ShardingConfig)
    collection: CollectionConfig = Field(default_factory=CollectionConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        check_unique_names(self.receivers)
        seen: set[str] = set()
        for index, target in enumerate(self.targets):
            if target.name in seen:
                raise ValueError(f"targets[{index}].name: {target.name!r} is already the name of another target")
            seen.add(target.name)
        for name in self.clusters:
            if not _TARGET_NAME.match(name):
                raise ValueError(f"clusters.{name}: expected a name of letters, digits and _.:@- ")
        return self

    def resolved_targets(self) -> list[Target]:
        return [_probe_interval(t.to_target(), t, self.clusters) for t in self.targets]


def _probe_interval(target: Target, config: TargetConfig, clusters: dict[str, ClusterConfig]) -> Target:
    """A member of a configured cluster is probed (its main collector runs) every ``probe_interval``,
    unless that collector's own interval is written."""
    cluster = clusters.get(config.cluster or "")
    main = engine(target.engine).main_collector
    if cluster is None or main not in target.collectors or (config.collectors.get(main, CollectorConfig()).interval):
        return target
    settings = target.collectors[main]
    interval = cluster.failover.probe_interval
    collectors = {**target.collectors, main: dataclasses.replace(settings, interval=interval)}
    return dataclasses.replace(target, collectors=collectors)


def load_or_report(path: str) -> Config | None:
    """The configuration a command runs on, or None after one line per problem on stderr (it then exits 2)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return None


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError(source, [f"line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                                   f"{exc.start}); save the file as UTF-8"]) from None
    return parse_config(text, source, environ)


def parse_config(text: str, source: str = "<config>", environ: dict[str, str] | None = None) -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})"]) from None
    if raw is None:
        # An empty file is a mistake (a truncated write, the wrong path), never "watch nothing": taken at a
        # reload it would resolve every firing alert.
        raise ConfigError(source, ["(top level): the file is empty; write at least one section (targets, ...)"])
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(top level): expected a mapping of sections (targets, server, ...)"])
    problems: list[str] = []
    raw = _interpolate(raw, "", os.environ if environ is None else environ, problems)
    if problems:
        raise ConfigError(source, problems)
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_locate_model_errors(exc))
        problems.extend(_target_problems_behind(exc, raw))
    # What the model checks only once every field is valid (names unique across the file) and what lies
    # outside it (rule overrides and files, the web config file) are checked in the same pass, so that a
    # file's problems are all reported at once, not revealed in rounds as the first ones are fixed.
    for problem in _whole_file_problems(raw):
        if problem not in problems:
            problems.append(problem)
    if problems or config is None:
        raise ConfigError(source, problems)
    return config


def _target_problems_behind(exc: ValidationError, raw: dict[str, Any]) -> list[str]:
    """A target's own checks (how it connects, its backups) run only once its fields are valid; they are run
    again on the target without its invalid keys, so their problems are reported in the same pass."""
    bad: dict[int, set[str]] = {}
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 3 and loc[0] == "targets" and isinstance(loc[1], int) and isinstance(loc[2], str):
            bad.setdefault(loc[1], set()).add(loc[2])
    targets = raw.get("targets")
    problems: list[str] = []
    for index, keys in sorted(bad.items()):
        item = targets[index] if isinstance(targets, list) and index < len(targets) else None
        if not isinstance(item, dict) or keys & {"name", "engine"}:
            continue  # without a valid engine its other checks mean nothing
        prefix = f"targets[{index}]"
        try:
            TargetConfig.model_validate({k: v for k, v in item.items() if k not in keys})
        except ValidationError as again:
            # a check about a key taken out (``needs a dsn or a host`` for an invalid dsn) would mislead
            problems.extend(line for line in _locate_model_errors(again, prefix)
                            if not any(re.search(rf"\b{re.escape(key)}\b", line) for key in keys))
    return problems


def _whole_file_problems(raw: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for section, kind in (("targets", "target"), ("receivers", "receiver")):
        items = raw.get(section)
        seen: set[str] = set()
        for index, item in enumerate(items if isinstance(items, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                problems.append(f"{section}[{index}].name: {name!r} is already the name of another {kind}")
            seen.add(name)
    try:
        rules = RulesConfig.model_validate(raw.get("rules") or {})
    except ValidationError:
        rules = None  # the model's own errors already say what is wrong in rules:
    if rules is not None:
        try:
            load_rules(rules)  # rule files, overrides of unknown rules: found now, not at the first evaluation
        except RulesError as exc:
            problems.extend(exc.problems)
    server = raw.get("server")
    web_config = server.get("web_config_file") if isinstance(server, dict) else None
    if isinstance(web_config, str) and web_config:
        try:
            web = load_web_config(web_config)
        except WebConfigError as exc:
            problems.extend(f"server.web_config_file ({web_config}): {problem}" for problem in exc.problems)
        else:
            console = server.get("console") if isinstance(server, dict) else None
            if isinstance(console, dict) and console.get("actions") is True and not web.users:
                problems.append(f"server.{_ACTIONS_NEED_AUTH} ({web_config} has none)")
    return problems


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str, environ: Mapping[str, str], problems: list[str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in string values (never in keys)."""
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), environ, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", environ, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set (write ${{{name}:-default}} for a default)")
            return ""

        return _ENV_REF.sub(replace, node)
    return node


def _locate_model_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    # A model validator's error carries the path of the model it ran on; when its message starts with
    # a deeper key ("collectors.x.y: ...", "targets[3].name: ..."), that key is joined onto the path.
    lines = []
    for line in format_validation_error(exc, prefix):
        path, _, message = line.partition(": ")
        head, sep, rest = message.partition(": ")
        if sep and _SUBPATH.fullmatch(head):
            lines.append(f"{head}: {rest}" if path == "(top level)" else f"{path}.{head}: {rest}")
        else:
            lines.append(line)
    return lines


_SUBPATH = re.compile(r"[A-Za-z_]\w*(\[\d+\])?(\.[A-Za-z_]\w*(\[\d+\])?)*")
