"""Slow-log samples for the PostgreSQL index advisor: statements with their literals, costed as they ran.

The slowlog collector of the same target leaves its latest classes' samples on the shared session
(``session.slow_samples``, see :class:`~dbwatch.collectors.base.SlowSample`). A sample keeps its literal
values, so ``EXPLAIN (FORMAT JSON) <sample>`` gets a *custom* plan: estimates from the real values (most
common values, histogram) instead of the generic plan of a ``$1`` statement. Only what pglast parses as one
SELECT, UPDATE or DELETE is kept; EXPLAIN without ANALYZE plans it and never runs it. An event of the extended
protocol is logged with ``$n`` placeholders (``execute <unnamed>: ... $1``): it is kept too and planned
generically like pg_stat_statements' texts, never dropped and never a failure.

A sample is matched with pg_stat_statements' statements by pglast's fingerprint (which ignores constants and
parameters, so ``customer_id = 4242`` and ``customer_id = $1`` agree): the match keeps pg_stat_statements'
numbers (calls, time, share) and is costed with the sample's text. A sample whose class is not in
pg_stat_statements (reset, evicted, below the thresholds) is costed with the slow log's own numbers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

from dbwatch.collectors.base import SlowSample
from dbwatch.sqlshape import PostgresAnalyser, Skipped, StatementUses, TableRef

__all__ = ["LiteralSample", "literal_samples", "sample_queryid"]


@dataclass(frozen=True, slots=True)
class LiteralSample:
    sample: SlowSample
    fingerprint: str
    parsed: StatementUses[TableRef]


def literal_samples(sql: PostgresAnalyser, samples: Iterable[SlowSample], database: str, limit: int
                    ) -> list[LiteralSample]:
    """The samples worth costing, the costliest classes first: of this database (or of an unknown one), one
    SELECT/UPDATE/DELETE that names a table; one per fingerprint."""
    out: list[LiteralSample] = []
    seen: set[str] = set()
    for sample in sorted(samples, key=lambda s: -s.query_time_total):
        if sample.db and sample.db != database:
            continue
        parsed = sql.uses(sample.sample)
        if isinstance(parsed, Skipped) or not parsed.tables:
            continue
        fp = sql.fingerprint(sample.sample)
        if isinstance(fp, Skipped) or fp in seen:
            continue
        seen.add(fp)
        out.append(LiteralSample(sample, fp, parsed))
        if len(out) >= limit:
            break
    return out


def sample_queryid(class_id: str) -> int:
    """A stable id for a statement known only from the slow log, from its class id (a 64-bit hex digest)."""
    try:
        value = int(class_id, 16)
    except ValueError:
        value = int(hashlib.sha1(class_id.encode()).hexdigest()[:16], 16)
    return value - (1 << 64) if value >= 1 << 63 else value  # a signed bigint, as pg_stat_statements' queryid
