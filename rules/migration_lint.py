"""``dbwatch migrate lint``'s judgement: the checks of :mod:`.migration_lint_checks` over a run of migration
files, with severities that follow the live facts when a target gave them.

Without facts a check has its own severity. With facts, a scaled check on an existing table is judged by
the estimated time under its lock, from the table's size at the throughputs below (documented in
docs/migrations.md; a conservative, shared-disk figure, not a promise):

- under :data:`SMALL_SECONDS` and fewer than :data:`SMALL_ROWS` rows: ``info`` (not an outage);
- :data:`LONG_SECONDS` or more, or :data:`BLOCKED_WRITES` writes that would wait: ``error``;
- otherwise ``warning``.

A table the run creates is new: nothing waits on it, so only ``int-primary-key`` looks at it. A lock that
would queue behind a transaction open :data:`LONG_SECONDS` or more turns ``missing-lock-timeout`` into an
error: while it waits, every query on the table waits behind it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from dbwatch.model.facts.schema_change import SchemaChangeFacts, TableLoad
from dbwatch.rules.migration_lint_checks import CHECKS, ERROR, INFO, WARNING, Check
from dbwatch.sqlshape.ddl import ACCESS_EXCLUSIVE, MDL_EXCLUSIVE, MDL_SHARED, Change, blocks_writes

__all__ = ["LintFinding", "REWRITE_BYTES_PER_SECOND", "SCAN_BYTES_PER_SECOND", "INDEX_BYTES_PER_SECOND",
           "lint", "severity_rank"]

REWRITE_BYTES_PER_SECOND = 50e6  # copy every row, rebuild every index, write it all to WAL / the binlog
INDEX_BYTES_PER_SECOND = 50e6  # read and sort the table, write the index
SCAN_BYTES_PER_SECOND = 200e6  # read the table once (a validation, a NOT NULL check)
SMALL_SECONDS, SMALL_ROWS = 1.0, 100_000
LONG_SECONDS, BLOCKED_WRITES = 10.0, 1_000
LAG_SECONDS = 30.0
INT_KEY_MAX = 2**31 - 1
INT_KEYS = frozenset({"integer", "int", "smallint", "mediumint", "tinyint"})  # format_type / DATA_TYPE words
RANK = {INFO: 0, WARNING: 1, ERROR: 2}
TIMEOUT_SETTINGS = {"postgres": ("lock_timeout",), "mysql": ("lock_wait_timeout",)}


@dataclass(frozen=True, slots=True)
class LintFinding:
    file: str
    line: int
    check: str
    severity: str
    message: str
    safe: str
    table: str = ""
    lock: str = ""
    rewrites: bool = False
    scans: bool = False
    estimate_seconds: float | None = None
    live: tuple[str, ...] = field(default_factory=tuple)  # what the target said, as short sentences

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def severity_rank(severity: str) -> int:
    return RANK[severity]


def lint(files: Sequence[tuple[str, Sequence[Change]]], dialect: str,
         facts: SchemaChangeFacts | None = None) -> list[LintFinding]:
    """The findings of the files' changes, applied in order (a table created by an earlier file is new)."""
    run = Run(dialect, facts)
    out: list[LintFinding] = []
    for path, changes in files:
        out.extend(run.file(path, changes))
    return out


class Run:
    """The state across a run: tables created, NOT NULL proven by a validated CHECK, the live facts."""

    def __init__(self, dialect: str, facts: SchemaChangeFacts | None) -> None:
        self.dialect = dialect
        self.facts = facts
        self.created: set[str] = set()
        self.checks: dict[tuple[str, str], str] = {}  # (table, constraint) -> the column its CHECK proves
        self.proven: set[tuple[str, str]] = set()
        self.keys_seen: set[str] = set()  # tables whose live key type was looked at

    def proven_not_null(self, table: str, column: str) -> bool:
        return (table.lower(), column.lower()) in self.proven

    def pg_version(self) -> int:
        if self.facts is not None and self.facts.server.engine == "postgres" and self.facts.server.version_num:
            return self.facts.server.version_num[0]
        return 11  # without a target, assume a supported server (11+ stores constant defaults)

    def file(self, path: str, changes: Sequence[Change]) -> list[LintFinding]:
        out: list[LintFinding] = []
        settings: set[str] = set()  # each migration file runs in its own session
        timeout_flagged = False
        for change in changes:
            if change.kind == "set":
                settings.add(change.setting)
                continue
            table = change.table.lower()
            self._remember(change)
            if change.kind == "create_table":
                self.created.add(table)
            elif table in self.created:
                continue  # a table this run creates: nothing waits on it yet
            if table not in self.keys_seen and change.kind != "drop_table":
                self.keys_seen.add(table)
                out.extend(self._growing_int_key(path, change))
            for check in CHECKS:
                if change.kind in check.kinds and self.dialect in check.dialects and check.when(change, self):
                    out.append(self._finding(path, change, check))
            if not timeout_flagged and self._needs_timeout(change, settings):
                timeout_flagged = True
                out.append(self._timeout_finding(path, change))
        return out

    def _remember(self, change: Change) -> None:
        table = change.table.lower()
        if change.kind == "add_check" and change.not_null_column:
            self.checks[(table, change.constraint.lower())] = change.not_null_column.lower()
            if not change.not_valid:
                self.proven.add((table, change.not_null_column.lower()))
        elif change.kind == "validate_constraint" and (table, change.constraint.lower()) in self.checks:
            self.proven.add((table, self.checks[(table, change.constraint.lower())]))

    def _needs_timeout(self, change: Change, settings: set[str]) -> bool:
        wanted = TIMEOUT_SETTINGS[self.dialect]
        heavy = change.lock in (ACCESS_EXCLUSIVE, MDL_EXCLUSIVE, MDL_SHARED) or blocks_writes(change.lock)
        return heavy and not any(s in settings for s in wanted) and change.kind != "create_table"

    def _timeout_finding(self, path: str, change: Change) -> LintFinding:
        name = TIMEOUT_SETTINGS[self.dialect][0]
        example = "SET lock_timeout = '2s';" if self.dialect == "postgres" else "SET SESSION lock_wait_timeout = 2;"
        severity, live = WARNING, []
        server = self.facts.server if self.facts is not None else None
        if server is not None and server.longest_transaction_seconds is not None:
            age = server.longest_transaction_seconds
            live.append(f"the oldest open transaction has run {age:.0f}s")
            if age >= LONG_SECONDS:
                severity = ERROR
        return LintFinding(
            path, change.line, "missing-lock-timeout", severity,
            f"no {name} before taking {change.lock} on {change.table}: while it waits for a running transaction, "
            "every query on the table queues behind it",
            f"{example} at the top of the migration, and retry the migration when it times out",
            change.table, change.lock, change.rewrites, change.scans, None, tuple(live))

    def _growing_int_key(self, path: str, change: Change) -> list[LintFinding]:
        """An existing table the run changes whose one-column key is 32-bit and still takes inserts."""
        load = self.facts.table(change.table) if self.facts is not None and change.table else None
        if load is None or not load.exists or load.key_type.lower() not in INT_KEYS or not load.writes_per_second:
            return []
        used = load.rows / INT_KEY_MAX
        live = (f"{change.table}: {load.rows:,} rows, {load.writes_per_second:.0f} writes/s, key {load.key_type}",)
        return [LintFinding(
            path, change.line, "int-primary-key", ERROR if used >= 0.5 else WARNING,
            f"{change.table}'s key is {load.key_type} (32-bit) on a growing table: it runs out at "
            f"{INT_KEY_MAX:,}, and widening it later rewrites the table",
            "move to bigint while the table is small enough, or with expand/contract (a new bigint column, "
            "dual write, backfill, swap)", change.table, live=live)]

    def _finding(self, path: str, change: Change, check: Check) -> LintFinding:
        fields = {**asdict(change), "online": _online_commands(change, self.facts)}
        message = check.message.format(**fields)
        safe = check.safe.format(**fields)
        severity, estimate, live = check.severity, None, []
        load = self.facts.table(change.table) if self.facts is not None and change.table else None
        if load is not None and not load.exists:
            live.append(f"{change.table} is not on the target")
        elif load is not None and check.scaled:
            estimate = _estimate(change, load)
            severity, live = self._scaled(change, load, estimate)
            severity = min(severity, check.cap, key=severity_rank)
        return LintFinding(path, change.line, check.id, severity, message, safe, change.table, change.lock,
                           change.rewrites, change.scans, estimate, tuple(live))

    def _scaled(self, change: Change, load: TableLoad, estimate: float) -> tuple[str, list[str]]:
        live = [f"{change.table}: {_size(load.size_bytes)}, {load.rows:,} rows, about {estimate:.1f}s under the lock"]
        blocked = 0.0
        if load.writes_per_second is not None:
            live.append(f"{load.writes_per_second:.0f} writes/s")
            if blocks_writes(change.lock):
                blocked = load.writes_per_second * estimate
        server = self.facts.server if self.facts is not None else None
        if server is not None and server.longest_transaction_seconds:
            live.append(f"queues first behind the oldest open transaction ({server.longest_transaction_seconds:.0f}s)")
        lagging = server is not None and (server.replication_lag_seconds or 0) >= LAG_SECONDS
        if server is not None and server.replication_lag_seconds is not None and change.rewrites:
            live.append(f"replicas are {server.replication_lag_seconds:.0f}s behind; the rewrite adds "
                        f"{_size(load.size_bytes)} to replay")
        if estimate < SMALL_SECONDS and load.rows < SMALL_ROWS and not lagging:
            return INFO, live + ["small enough not to be an outage"]
        if estimate >= LONG_SECONDS or blocked >= BLOCKED_WRITES:
            return ERROR, live
        return WARNING, live


def _estimate(change: Change, load: TableLoad) -> float:
    if change.rewrites:
        return load.size_bytes / REWRITE_BYTES_PER_SECOND
    if change.kind in ("create_index", "create_unique_index", "add_unique", "add_primary_key"):
        return load.size_bytes / INDEX_BYTES_PER_SECOND
    if change.scans or change.kind in ("set_not_null", "add_foreign_key", "add_check"):
        return load.size_bytes / SCAN_BYTES_PER_SECOND
    return 0.0


def _online_commands(change: Change, facts: SchemaChangeFacts | None) -> str:
    """Ready gh-ost and pt-online-schema-change command lines for a MySQL ALTER (placeholders without a target)."""
    if not change.text.upper().lstrip().startswith("ALTER"):
        return ""
    server = facts.server if facts is not None else None
    host = server.host if server is not None and server.host else "HOST"
    port = server.port if server is not None and server.port else 3306
    schema, _, table = change.table.rpartition(".")
    database = schema or (server.database if server is not None and server.database else "DATABASE")
    alter = _alter_body(change.text).replace('"', '\\"')
    return (f"  gh-ost --host={host} --port={port} --user=\"$DB_USER\" --ask-pass --database={database} "
            f"--table={table} --alter=\"{alter}\" --chunk-size=1000 --max-lag-millis=1500 "
            f"--max-load=Threads_running=25 --critical-load=Threads_running=100 --exact-rowcount --execute\n"
            f"  pt-online-schema-change --alter \"{alter}\" h={host},P={port},D={database},t={table} "
            f"--ask-pass --chunk-size=1000 --max-lag=1.5 --execute")


def _alter_body(text: str) -> str:
    """The ALTER's actions without ``ALTER TABLE name`` and without ALGORITHM/LOCK (the tools pick their own)."""
    words = text.strip().rstrip(";").split(None, 3)
    body = words[3] if len(words) > 3 else ""
    parts = [p.strip() for p in body.split(",")]
    kept = [p for p in parts if not p.upper().replace(" ", "").startswith(("ALGORITHM=", "LOCK="))]
    return " ".join(", ".join(kept).split())


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TB"
