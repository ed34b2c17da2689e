"""TimescaleDB advice: chunk intervals against memory, tables that should be hypertables, and old chunks
left uncompressed (no compression policy, or one that is paused or failing).

The rules read the facts of the ``timescaledb`` collector (:mod:`dbwatch.model.facts.timescale`) and never
touch a connection. Every finding is a ``recommendation`` whose statement was built from the server's state
as read in that collection (the hypertable's current interval, whether compression is enabled, which
policy exists and whether its job is paused) and carries its own ``lock`` and ``risk``: TimescaleDB's
functions are called with ``SELECT``, which the generic classifier (rules/statement_risk.py) would take
for a read. A statement that would fail as things are (a unique index without the time column) is not
offered; the finding says what stands in the way instead. docs/timescaledb.md#advice describes them.

The alerts on jobs and continuous aggregates are threshold rules (rules/defaults.yaml).
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.timescale import (
    Hypertable, HypertableCandidate, HypertableCandidates, Hypertables, Jobs, Policies, TimescaleSettings,
)
from dbwatch.rules.advice_common import quote_ident, quote_literal, recommend
from dbwatch.rules.engine import TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["ChunkIntervalRule", "HypertableCandidateRule", "UncompressedChunksRule", "interval_text", "make_rules"]

HOUR, DAY = 3600.0, 86400.0
MIN_INTERVAL, MAX_INTERVAL = HOUR, 365 * DAY


def make_rules(config: RulesConfig) -> list[Any]:
    return [ChunkIntervalRule(), HypertableCandidateRule(), UncompressedChunksRule()]


def interval_text(seconds: float) -> str:
    """A whole number of days or hours for an INTERVAL literal, rounded down (at least one hour)."""
    seconds = max(HOUR, seconds)
    if seconds >= 2 * DAY:
        return f"{int(seconds // DAY)} days"
    hours = int(seconds // HOUR)
    return f"{hours} hour" + ("s" if hours > 1 else "")


def interval_seconds(text: str) -> float:
    number, unit = text.split()
    return int(number) * (DAY if unit.startswith("day") else HOUR)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _regclass(schema: str, name: str) -> str:
    """A relation as the text argument of a regclass parameter: quoted identifiers in a SQL literal."""
    return quote_literal(f"{quote_ident(schema)}.{quote_ident(name)}")


def _budget(settings: TimescaleSettings) -> float:
    return settings.shared_buffers_bytes * settings.chunk_memory_fraction


class _TimescaleRule:
    name = ""
    engines: tuple[str, ...] = ("postgres",)

    def evaluate(self, view: TargetView) -> list[Finding]:
        settings = view.fact(TimescaleSettings)
        if settings is None:  # no TimescaleDB on this target (or not collected yet)
            return []
        return self.judge(view, settings)

    def judge(self, view: TargetView, settings: TimescaleSettings) -> list[Finding]:
        raise NotImplementedError


class ChunkIntervalRule(_TimescaleRule):
    """A hypertable whose recent chunk is larger than its share of memory: a shorter interval for new chunks."""

    name = "TimescaleChunkIntervalTooLarge"

    def judge(self, view: TargetView, settings: TimescaleSettings) -> list[Finding]:
        budget = _budget(settings)
        hypertables = view.fact(Hypertables)
        if budget <= 0 or not hypertables:
            return []
        total_recent = sum(h.recent_chunk_bytes for h in hypertables)
        return [f for h in hypertables if (f := self.one(view, h, budget, total_recent)) is not None]

    def one(self, view: TargetView, h: Hypertable, budget: float, total_recent: int) -> Finding | None:
        if h.interval_seconds is None or h.recent_chunk_bytes <= budget:
            return None
        suggested = interval_text(h.interval_seconds * budget / h.recent_chunk_bytes)
        if interval_seconds(suggested) >= h.interval_seconds:
            return None  # already at the shortest interval worth suggesting
        current = interval_text(h.interval_seconds) if h.interval_seconds % HOUR == 0 else f"{h.interval_seconds:g} s"
        sql = f"SELECT set_chunk_time_interval({_regclass(h.schema, h.name)}, INTERVAL '{suggested}');"
        ratio = h.recent_chunk_bytes / budget
        return recommend(
            self.name, view, Severity.WARNING if ratio >= 2 else Severity.INFO,
            f"Hypertable {h.qualified} ({h.database}): one chunk ({current}) is {_size(h.recent_chunk_bytes)}, more "
            f"than {_size(budget)} of shared_buffers; make new chunks {suggested}",
            f"The newest chunks of a hypertable are the ones written and read most, so they should stay in memory: "
            f"TimescaleDB's guidance is that the recent chunks of all hypertables, indexes included, fit in about "
            f"25 % of main memory (shared_buffers, on a tuned server). The larger of the two newest chunks of "
            f"{h.qualified} takes {_size(h.recent_chunk_bytes)} for {current} of data ({ratio:.1f} times the "
            f"{_size(budget)} allowed; all hypertables' recent chunks: {_size(total_recent)}). An interval of "
            f"{suggested} keeps one chunk within it. Existing chunks keep their size; only new ones are cut shorter.",
            {"database": h.database, "hypertable": h.qualified},
            {"database": h.database, "hypertable": h.qualified, "interval_seconds": h.interval_seconds,
             "suggested_interval": suggested, "recent_chunk_bytes": h.recent_chunk_bytes, "budget_bytes": int(budget),
             "total_recent_chunk_bytes": total_recent,
             "lock": "a row lock on the hypertable's dimension in TimescaleDB's catalog, brief; reads and writes go "
                     "on, and only chunks created afterwards take the new interval", "risk": "low"},
            sql, min(0.4, 0.05 + 0.1 * ratio))


class HypertableCandidateRule(_TimescaleRule):
    """A large, append-only plain table ordered by a time column, in a database that has TimescaleDB."""

    name = "TimescaleHypertableCandidate"

    def judge(self, view: TargetView, settings: TimescaleSettings) -> list[Finding]:
        candidates = view.fact(HypertableCandidates)
        if not candidates:
            return []
        return [f for c in candidates if (f := self.one(view, c, settings)) is not None]

    def one(self, view: TargetView, c: HypertableCandidate, settings: TimescaleSettings) -> Finding | None:
        if c.size_bytes < settings.hypertable_min_size_bytes or c.correlation < settings.hypertable_min_correlation:
            return None
        if c.inserts <= 0 or c.updates_deletes > settings.hypertable_max_write_ratio * c.inserts:
            return None  # not append-only (or no writes seen since the statistics were reset)
        table = f"{c.schema}.{c.table}"
        budget = _budget(settings)
        if c.span_seconds and c.span_seconds > 0 and budget > 0:
            seconds = min(MAX_INTERVAL, max(MIN_INTERVAL, c.span_seconds * budget / c.size_bytes))
        else:
            seconds = 7 * DAY  # TimescaleDB's default
        interval = interval_text(seconds)
        what = (f"{table} is {_size(c.size_bytes)} ({c.rows} rows), append-only ({c.updates_deletes} updates and "
                f"deletes against {c.inserts} inserts) and stored in {c.column} order (pg_stats correlation "
                f"{c.correlation:.3f}), in a database where TimescaleDB is installed. As a hypertable cut into "
                f"chunks of {interval} (about {_size(budget)} each, what fits the memory budget), queries on recent "
                f"time read only recent chunks, old chunks can be compressed, and retention drops chunks instead of "
                f"deleting rows. This is the partitioning the storage advice (PgPartitionCandidate) hints at, with "
                f"the partitions made for you.")
        evidence: dict[str, Any] = {
            "database": c.database, "table": table, "column": c.column, "column_type": c.column_type,
            "size_bytes": c.size_bytes, "rows": c.rows, "inserts": c.inserts, "updates_deletes": c.updates_deletes,
            "correlation": round(c.correlation, 4), "span_seconds": c.span_seconds, "chunk_interval": interval,
            "blockers": list(c.blockers)}
        labels = {"database": c.database, "table": table}
        if c.blockers:
            return recommend(
                self.name, view, Severity.INFO,
                f"{table} ({c.database}) looks like a time series for a hypertable, but create_hypertable would fail",
                f"{what} As it is, create_hypertable would fail: {'; '.join(c.blockers)}. Change that first (a unique "
                f"key of a hypertable includes its time column); no statement is offered until then.",
                labels, {**evidence, "lock": "none (nothing to run yet)", "risk": "low"}, None, 0.05)
        not_null = "" if c.column_not_null else (f" It first sets NOT NULL on {c.column} (a full scan of the "
                                                 f"table; a NULL there makes it fail).")
        sql = (f"SELECT create_hypertable({_regclass(c.schema, c.table)}, by_range({quote_literal(c.column)}, "
               f"INTERVAL '{interval}'), migrate_data => true);")
        return recommend(
            self.name, view, Severity.INFO,
            f"Make {table} ({c.database}, {_size(c.size_bytes)}) a hypertable on {c.column}, chunks of {interval}",
            f"{what} migrate_data moves every row into chunks in one transaction: rehearse it on a copy and run it "
            f"in a maintenance window.{not_null}",
            labels,
            {**evidence,
             "lock": "ACCESS EXCLUSIVE on the table for the whole migration (every row is copied into chunks): reads "
                     "and writes wait until it commits; needs the table's size again in free disk", "risk": "high"},
            sql, min(0.3, 0.02 + c.size_bytes / (100 * 1024**3)))


class UncompressedChunksRule(_TimescaleRule):
    """Old chunks left uncompressed: no compression, no policy, or a policy that is paused or failing."""

    name = "TimescaleUncompressedChunks"

    def judge(self, view: TargetView, settings: TimescaleSettings) -> list[Finding]:
        hypertables = view.fact(Hypertables)
        if not hypertables:
            return []
        policies = {(p.database, p.relation): p for p in view.fact(Policies) or () if p.kind == "compression"}
        jobs = {(j.database, j.job_id): j for j in view.fact(Jobs) or ()}
        findings = []
        for h in hypertables:
            if h.interval_seconds is None or h.old_uncompressed_chunks == 0 \
                    or h.old_uncompressed_bytes < settings.uncompressed_min_bytes:
                continue
            findings.append(self.one(view, h, settings, policies.get((h.database, h.qualified)), jobs))
        return findings

    def one(self, view: TargetView, h: Hypertable, settings: TimescaleSettings, policy: Any,
            jobs: dict[tuple[str, int], Any]) -> Finding:
        rel = _regclass(h.schema, h.name)
        after = interval_text(settings.compress_min_age_seconds)
        per_chunk = ("the policy's job compresses one chunk at a time in the background; while it compresses a "
                     "chunk, writes to that chunk wait (reads go on)")
        if not h.compression_enabled:
            state = "compression is not enabled on it"
            sql = (f"ALTER TABLE {quote_ident(h.schema)}.{quote_ident(h.name)} SET (timescaledb.compress = true);\n"
                   f"SELECT add_compression_policy({rel}, INTERVAL '{after}');")
            lock = (f"ALTER TABLE ... SET (timescaledb.compress): ACCESS EXCLUSIVE on the hypertable, brief (catalog "
                    f"only, no rewrite; TimescaleDB chooses segmentby and orderby from the indexes and statistics); "
                    f"then {per_chunk}")
            risk, severity = "medium", Severity.WARNING
        elif policy is None:
            state = "compression is enabled but no compression policy exists"
            sql = f"SELECT add_compression_policy({rel}, INTERVAL '{after}');"
            lock = f"none when added; {per_chunk}"
            risk, severity = "low", Severity.WARNING
        else:
            job = jobs.get((h.database, policy.job_id))
            if job is not None and not job.scheduled:
                state = f"its compression policy (job {policy.job_id}) is paused"
                sql = f"SELECT alter_job({policy.job_id}, scheduled => true);"
            else:
                failing = job is not None and job.consecutive_failures > 0
                failures = f", {job.consecutive_failures} failed run(s) in a row" if job and failing else ""
                state = f"its compression policy (job {policy.job_id}{failures}) is behind"
                sql = f"CALL run_job({policy.job_id});"
            lock = (f"the backlog is compressed one chunk at a time; while a chunk is compressed, writes to it wait "
                    f"(reads go on); CPU and I/O for the {_size(h.old_uncompressed_bytes)} backlog")
            risk, severity = "medium", Severity.WARNING
        age = interval_text(h.compress_age_seconds)
        return recommend(
            self.name, view, severity,
            f"{h.old_uncompressed_chunks} chunk(s) of {h.qualified} ({h.database}) older than {age} are uncompressed "
            f"({_size(h.old_uncompressed_bytes)}): {state}",
            f"{h.old_uncompressed_chunks} chunk(s) of {h.qualified} whose range ended more than {age} ago take "
            f"{_size(h.old_uncompressed_bytes)} uncompressed; {state}. Old time-series data is rarely updated, and "
            f"compressed (columnstore) it usually takes a tenth of the space or less and scans faster"
            + (f" (this hypertable's compressed chunks: {h.compression_ratio:.1f} times smaller)"
               if h.compression_ratio else "") + ". Compressed chunks are slower to update and delete in.",
            {"database": h.database, "hypertable": h.qualified},
            {"database": h.database, "hypertable": h.qualified, "old_uncompressed_chunks": h.old_uncompressed_chunks,
             "old_uncompressed_bytes": h.old_uncompressed_bytes, "compress_age_seconds": h.compress_age_seconds,
             "compression_enabled": h.compression_enabled, "policy_job_id": policy.job_id if policy else None,
             "lock": lock, "risk": risk},
            sql, min(0.4, 0.05 + h.old_uncompressed_bytes / (50 * 1024**3)))
