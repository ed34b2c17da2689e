"""performance_schema statement digests: cumulative counters, per-interval deltas for rules, bounded series.

The same shape as :mod:`pg_statements`, so the same rules read both: the :class:`Statements` fact holds one
:class:`DigestStats` per digest that ran during the interval, with ``queryid`` (the digest), ``datname``
(the schema), ``calls``, ``total_time_seconds``, ``rows`` and their ``delta_*``.

Resets never produce negative or huge deltas. A digest row carries ``FIRST_SEEN``, which a re-created
row (``TRUNCATE`` of the summary table, a server restart) renews, so:

- the first reading only takes a baseline;
- a row whose ``FIRST_SEEN`` changed was re-created: its counters are all new, counted from zero;
- a row not seen before counts from zero if it first appeared after the previous reading, else (it was
  there but hidden, e.g. by a full table) it is only baselined;
- a row whose counters went down without a new ``FIRST_SEEN`` is re-baselined.

Exported series are capped like pg_stat_statements': the top ``top_n`` digests by total time get their
own series (labels ``schema``, ``digest``, ``digest_text`` as mysqld_exporter has them), the rest are summed
into ``digest="other"``.
"""

from __future__ import annotations

import heapq
from typing import Any

from dbwatch.model import MetricFamily, Snapshot, counter, gauge
from dbwatch.collectors import mysql_sql as sql
from dbwatch.collectors.base import Collector
from dbwatch.collectors.options import StatementsOptions
from dbwatch.collectors.mysql import ACCESS_DENIED, MySQLSession, QueryError, grantee
from dbwatch.collectors.mysql_families import fold
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.statements import DigestStats, Statements

PICO = 1e12
# Counter columns of a digest row, in the order the SQL selects them after the key and FIRST_SEEN.
COLUMNS = ("calls", "time", "lock_time", "rows_sent", "rows_affected", "rows_examined", "no_index_used",
           "no_good_index_used", "tmp_tables", "tmp_disk_tables", "sort_rows", "errors", "warnings")
(_CALLS, _TIME, _LOCK, _SENT, _AFFECTED, _EXAMINED, _NOINDEX, _NOGOOD, _TMP, _TMPDISK, _SORT, _ERRORS,
 _WARNINGS) = range(len(COLUMNS))
_FIRST, _END = 3, 3 + len(COLUMNS)  # where the counters sit in a row; MAX_TIMER_WAIT follows
_TOLERANCE = 1.0  # FIRST_SEEN has whole seconds

Key = tuple[str, str]  # schema ("" for none), digest


class MySQLStatementsCollector(Collector[MySQLSession, StatementsOptions]):
    name = "statements"
    options_model = StatementsOptions

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._baseline: dict[Key, tuple[float, tuple[float, ...]]] | None = None  # key -> (first_seen, counters)
        self._taken_at: float | None = None  # server clock of the previous reading
        self._texts: dict[str, str] = {}

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        snapshot.put(Statements())
        async with session.lock:
            server = await session.connected_server()
            snapshot.version = server.version
            try:
                [state] = await session.run(sql.PERFORMANCE_SCHEMA)
                problem = _unavailable(state)
                if problem:
                    snapshot.notes.append(problem)
                    return
                [[now]] = await session.run("SELECT UNIX_TIMESTAMP(NOW(6))", tuples=True)
                rows = await session.run(sql.DIGESTS, tuples=True)
            except QueryError as exc:
                if exc.errno not in ACCESS_DENIED:
                    raise
                snapshot.notes.append(f"user {server.user} may not read performance_schema, so statement digests "
                                      f"are not collected; run GRANT SELECT ON performance_schema.* TO "
                                      f"{grantee(server.user)};")
                return
            overflow = [r for r in rows if r[1] is None]
            rows = [_normalise(r) for r in rows if r[1] is not None]
            top = heapq.nlargest(self.options.top_n, rows, key=lambda r: r[_FIRST + _TIME])
            missing = sorted({r[1] for r in top if r[1] not in self._texts})
            if missing:
                query = sql.DIGEST_TEXTS.format(placeholders=", ".join(["%s"] * len(missing)))
                for text_row in await session.run(query, missing):
                    self._texts[text_row["digest"]] = fold(text_row["text"], self.options.query_text_length) or ""
        top_digests = {r[1] for r in top}
        self._texts = {d: t for d, t in self._texts.items() if d in top_digests}  # bounded by top_n
        snapshot.put(Statements(tuple(self._deltas(rows, float(now)))))
        snapshot.families.extend(self._families(rows, top, overflow))
        snapshot.put(Summary({"statement digests": len(rows)}))
        if overflow and overflow[0][_FIRST + _CALLS]:
            snapshot.notes.append(
                "performance_schema's digest table is full: new statement shapes are counted together without a "
                "digest; raise performance_schema_digests_size (needs a restart) or run TRUNCATE TABLE "
                "performance_schema.events_statements_summary_by_digest")

    def _deltas(self, rows: list[tuple[Any, ...]], now: float) -> list[DigestStats]:
        previous_baseline, previous_at = self._baseline, self._taken_at
        interval = now - previous_at if previous_at is not None else 0.0
        baseline: dict[Key, tuple[float, tuple[float, ...]]] = {}
        zero: tuple[float, ...] = (0,) * len(COLUMNS)
        out = []
        for values in rows:
            key: Key = (values[0], values[1])
            first_seen, current = values[2], values[_FIRST:_END]
            baseline[key] = (first_seen, current)
            if previous_baseline is None or previous_at is None:
                continue
            seen = previous_baseline.get(key)
            if seen is None:
                if first_seen < previous_at - _TOLERANCE:
                    continue  # there before the previous reading but not seen: only a baseline now
                previous = zero
            elif seen[0] != first_seen:
                previous = zero  # re-created (truncate, restart): everything it holds is new
            elif seen[1] == current:
                continue  # idle this interval: the common case, kept cheap
            else:
                previous = seen[1]
            delta = [c - p for c, p in zip(current, previous)]
            if delta[_CALLS] <= 0 or any(d < 0 for d in delta):
                continue  # counters went down: re-baselined, never a negative delta
            out.append(DigestStats(
                queryid=key[1], user="", datname=key[0], toplevel=True, query=self._texts.get(key[1]),
                calls=int(current[_CALLS]), total_time_seconds=current[_TIME] / PICO,
                max_time_seconds=values[_END] / PICO, lock_time_seconds=current[_LOCK] / PICO,
                rows=int(current[_SENT] + current[_AFFECTED]), rows_sent=int(current[_SENT]),
                rows_examined=int(current[_EXAMINED]), no_index_used=int(current[_NOINDEX]),
                tmp_disk_tables=int(current[_TMPDISK]), errors=int(current[_ERRORS]),
                delta_calls=int(delta[_CALLS]), delta_time_seconds=delta[_TIME] / PICO,
                delta_lock_time_seconds=delta[_LOCK] / PICO, delta_rows=int(delta[_SENT] + delta[_AFFECTED]),
                delta_rows_sent=int(delta[_SENT]), delta_rows_examined=int(delta[_EXAMINED]),
                delta_no_index_used=int(delta[_NOINDEX]), delta_no_good_index_used=int(delta[_NOGOOD]),
                delta_tmp_disk_tables=int(delta[_TMPDISK]), delta_errors=int(delta[_ERRORS]),
                interval_seconds=interval,
            ))
        self._baseline, self._taken_at = baseline, now
        return out

    def _families(self, rows: list[tuple[Any, ...]], top: list[tuple[Any, ...]], overflow: list[tuple[Any, ...]]
                  ) -> list[MetricFamily]:
        labels = ("schema", "digest", "digest_text")
        prefix = "mysql_perf_schema_events_statements"
        spec = [  # (column, name, help, scale)
            (_CALLS, f"{prefix}_total", "The total count of events statements by digest.", 1),
            (_TIME, f"{prefix}_seconds_total", "The total time of events statements by digest.", PICO),
            (_LOCK, f"{prefix}_lock_time_seconds_total", "The total lock time of events statements by digest.", PICO),
            (_SENT, f"{prefix}_rows_sent_total", "The number of rows sent by digest.", 1),
            (_AFFECTED, f"{prefix}_rows_affected_total", "The number of rows affected by digest.", 1),
            (_EXAMINED, f"{prefix}_rows_examined_total", "The number of rows examined by digest.", 1),
            (_NOINDEX, f"{prefix}_no_index_used_total", "The total number of statements that used full table "
             "scans by digest.", 1),
            (_NOGOOD, f"{prefix}_no_good_index_used_total", "The total number of statements where no good index "
             "was found by digest.", 1),
            (_TMP, f"{prefix}_tmp_tables_total", "The number of temporary tables created by digest.", 1),
            (_TMPDISK, f"{prefix}_tmp_disk_tables_total", "The number of on-disk temporary tables created by "
             "digest.", 1),
            (_SORT, f"{prefix}_sort_rows_total", "The number of sorted rows by digest.", 1),
            (_ERRORS, f"{prefix}_errors_total", "The errors of events statements by digest.", 1),
            (_WARNINGS, f"{prefix}_warnings_total", "The warnings of events statements by digest.", 1),
        ]
        families = [(column, counter(name, text, labels), scale) for column, name, text, scale in spec]
        longest = gauge(f"dbwatch_{prefix}_max_seconds", "Longest execution of a digest since its row was created.",
                        labels)
        top_keys = {(r[0], r[1]) for r in top}
        rest = [r for r in rows if (r[0], r[1]) not in top_keys] + overflow
        emitted = [((r[0], r[1], self._texts.get(r[1], "")), r[_FIRST:_END], r[_END]) for r in top]
        if rest:
            # Integer counters summed in Python ints: exact whatever their size.
            other = tuple(sum(int(r[_FIRST + i] or 0) for r in rest) for i in range(len(COLUMNS)))
            emitted.append((("", "other", ""), other, max(int(r[_END] or 0) for r in rest)))
        for key, values, max_wait in emitted:
            for column, fam, scale in families:
                fam.add(key, values[column] / scale if scale != 1 else values[column])
            longest.add(key, max_wait / PICO)
        entries = gauge("dbwatch_mysql_perf_schema_digests", "Rows in events_statements_summary_by_digest.")
        entries.add((), len(rows) + len(overflow))
        return [fam for _, fam, _ in families] + [longest, entries]


def _normalise(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (row[0] or "", row[1], float(row[2] or 0), *(int(v or 0) for v in row[_FIRST:_END]), int(row[_END] or 0))


def _unavailable(state: dict[str, Any]) -> str | None:
    if not int(state["enabled"] or 0):
        return ("performance_schema is OFF, so statement digests are not collected: set performance_schema = ON "
                "under [mysqld] in the server's configuration and restart the server (it is not dynamic)")
    if str(state["digest"] or "").upper() != "YES":
        return ("the performance_schema consumer statements_digest is disabled, so statement digests are not "
                "collected: run UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME = "
                "'statements_digest'; (and add performance-schema-consumer-statements-digest = ON to the "
                "server's configuration)")
    return None
