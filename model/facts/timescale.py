"""TimescaleDB facts (the ``timescaledb`` collector of a PostgreSQL target, collectors/timescale.py) for
rules/timescale.py: hypertables and their chunks, background jobs, continuous aggregates, policies, plain
tables that look like time series, and the thresholds the advice judges with.

Every row names its database (``database``): the collector visits every watched database where the
extension is installed. Sizes are bytes, times Unix seconds and durations seconds, all as the server saw
them at ``now`` (its clock, not the agent's).
"""

from __future__ import annotations

from dataclasses import dataclass

from dbwatch.model.facts.common import FactList


@dataclass(frozen=True, slots=True)
class TimescaleSettings:
    """The collector's thresholds for the advice, and the memory the chunk advice measures against."""

    shared_buffers_bytes: int
    #: a hypertable's recent chunk should fit in this share of shared_buffers (1.0: shared_buffers itself,
    #: which is itself about 25 % of memory on a tuned server)
    chunk_memory_fraction: float
    #: chunks whose range ended this long ago should be compressed
    compress_min_age_seconds: float
    #: old uncompressed chunks of a hypertable must add up to this much before advice is given
    uncompressed_min_bytes: int
    hypertable_min_size_bytes: int  # plain tables below it are not hypertable candidates
    hypertable_max_write_ratio: float  # (updates + deletes) / inserts at most: append-only
    hypertable_min_correlation: float  # pg_stats correlation of the time column at least: time-ordered


@dataclass(frozen=True, slots=True)
class Hypertable:
    """One hypertable, its chunks and their compression, as read at ``now``."""

    database: str
    schema: str
    name: str
    time_column: str
    time_type: str  # timestamptz, timestamp, date, or an integer type
    interval_seconds: float | None  # None for an integer dimension
    chunks: int
    compressed_chunks: int
    size_bytes: int  # hypertable_size: everything, compressed data included
    compression_enabled: bool
    before_compression_bytes: int  # of the compressed chunks
    after_compression_bytes: int
    recent_chunk_bytes: int  # the larger of the two newest uncompressed chunks (table + indexes + TOAST)
    old_uncompressed_chunks: int  # uncompressed, range ended more than the compress age ago
    old_uncompressed_bytes: int
    oldest_uncompressed_end: float | None  # the range end of the oldest of them
    compress_age_seconds: float  # the age that counted as old (the setting, or the policy's compress_after)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def compression_ratio(self) -> float | None:
        if self.compressed_chunks == 0 or self.after_compression_bytes <= 0:
            return None
        return self.before_compression_bytes / self.after_compression_bytes


@dataclass(frozen=True, slots=True)
class Job:
    """One background job (a policy or a user-defined action) and its statistics."""

    database: str
    job_id: int
    application_name: str
    proc: str  # schema.name of the procedure it runs
    hypertable: str  # schema.name, or "" for a job on none
    scheduled: bool  # False: paused (alter_job(scheduled => false))
    schedule_interval_seconds: float
    config: str  # the job's config as JSON text
    last_run_status: str  # "Success", "Failed", or "" before the first run
    last_run_started: float | None
    last_successful_finish: float | None
    next_start: float | None
    total_runs: int
    total_failures: int
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy job on a hypertable or continuous aggregate."""

    database: str
    kind: str  # compression, retention, refresh, reorder
    job_id: int
    relation: str  # schema.name of the hypertable, or of the continuous aggregate's view for refresh
    after_seconds: float | None  # compress_after, drop_after or the refresh end_offset (None: integer or unset)
    schedule_interval_seconds: float
    scheduled: bool


@dataclass(frozen=True, slots=True)
class ContinuousAggregate:
    """A continuous aggregate and how far behind now its materialization is."""

    database: str
    schema: str
    view: str
    hypertable: str  # schema.name of the raw hypertable
    watermark: float | None  # Unix time materialized up to; None: never refreshed (or an integer dimension)
    #: now - watermark; never refreshed, now - the start of its hypertable's oldest chunk (0 without data)
    lag_seconds: float
    bucket_seconds: float | None
    refresh_job_id: int | None
    expected_lag_seconds: float | None  # end_offset + schedule_interval + bucket; None without a policy
    materialized_only: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.view}"


@dataclass(frozen=True, slots=True)
class HypertableCandidate:
    """A plain table of a TimescaleDB database that looks like a time series: large, append-only, ordered
    by a time column. ``blockers`` are what would make ``create_hypertable`` fail on it as it is."""

    database: str
    schema: str
    table: str
    column: str
    column_type: str
    column_not_null: bool
    size_bytes: int
    rows: int
    inserts: int
    updates_deletes: int
    correlation: float
    span_seconds: float | None  # from the column's pg_stats histogram: its first to its last bound
    blockers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TimescaleDatabase:
    """A database where the extension is installed, and the server's clock when it was read."""

    database: str
    version: str
    now: float


@dataclass(frozen=True, slots=True)
class TimescaleDatabases(FactList[TimescaleDatabase]):
    pass


@dataclass(frozen=True, slots=True)
class Hypertables(FactList[Hypertable]):
    pass


@dataclass(frozen=True, slots=True)
class Jobs(FactList[Job]):
    pass


@dataclass(frozen=True, slots=True)
class Policies(FactList[Policy]):
    pass


@dataclass(frozen=True, slots=True)
class ContinuousAggregates(FactList[ContinuousAggregate]):
    pass


@dataclass(frozen=True, slots=True)
class HypertableCandidates(FactList[HypertableCandidate]):
    pass
