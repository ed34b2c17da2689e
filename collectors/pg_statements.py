"""pg_stat_statements: cumulative counters, per-interval deltas for rules, and a bounded set of series.

Deltas are what rules read ("this statement averaged 1.4 s over the last minute"); they are computed here
because only the collector sees two consecutive readings. Resets never produce negative or huge deltas:

- ``pg_stat_statements_info.stats_reset`` changed (PG 14+) or the server restarted: everything is
  re-baselined, no deltas this time;
- one row's counters went down (the entry was evicted and re-created): that row is re-baselined;
- a row not seen before counts from zero (pganalyze's choice), unless ``dealloc`` rose meanwhile: the row
  may then be an evicted entry coming back with old counters, so it is only baselined (Datadog's choice).

Exported series are capped: the top ``top_n`` statements by total time get their own series (labels
``queryid``, ``user``, ``datname``); the rest are summed into one series with ``queryid="other"`` and empty
``user``/``datname``. A statement moving in or out of the top N makes ``other`` step, which PromQL's
``rate()`` reads as a counter reset: the price of bounded cardinality, and why rules use the deltas.
"""

from __future__ import annotations

import heapq
import operator
import re
from typing import Any

from dbwatch.model import MetricFamily, Snapshot, counter, gauge, info
from dbwatch.collectors import postgres_sql as sql
from dbwatch.collectors.base import Collector
from dbwatch.collectors.options import StatementsOptions
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.statements import Statements, StatementStats

# Counter columns of a pg_stat_statements row, in the order the SQL selects them after the key.
COLUMNS = ("calls", "total_exec_time", "rows", "shared_blks_hit", "shared_blks_read", "temp_blks_read",
           "temp_blks_written", "blk_read_time", "blk_write_time")
_CALLS, _TIME, _ROWS, _HIT, _READ, _TMPR, _TMPW, _BLKR, _BLKW = range(len(COLUMNS))
_FIRST, _END = 4, 4 + len(COLUMNS)  # where the counters sit in a row

Key = tuple[int, int, int, bool]  # queryid, userid, dbid, toplevel


class StatementsCollector(Collector[PostgresSession, StatementsOptions]):
    name = "statements"
    options_model = StatementsOptions

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._baseline: dict[Key, tuple[float, ...]] = {}
        self._epoch: tuple[Any, ...] | None = None  # (postmaster start, stats_reset) of the baseline
        self._dealloc: float | None = None
        self._taken_at: float | None = None
        self._names: dict[tuple[str, int], str] = {}
        self._texts: dict[int, str] = {}

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            server = await session.connected_server()
            snapshot.version = server.version
            [available] = await session.run(sql.STATEMENTS_AVAILABLE)
            problem = _unavailable(available)
            if problem:
                snapshot.notes.append(problem)
                snapshot.put(Statements())
                return
            extversion = sql.extension_version(available["version"])
            rows = [tuple(row) for row in await session.run(sql.statements_sql(extversion))]
            dealloc, stats_reset = None, None
            if extversion >= sql.STATEMENTS_INFO_SINCE:
                [row] = await session.run(sql.STATEMENTS_INFO)
                dealloc, stats_reset = row["dealloc"], row["stats_reset"]
            if any(("r", r[1]) not in self._names or ("d", r[2]) not in self._names for r in rows):
                self._names = {(n["kind"], n["oid"]): n["name"] for n in await session.run(sql.NAMES)}
            series = _aggregate(rows, self._names)
            top = heapq.nlargest(self.options.top_n, series, key=lambda k: series[k][_TIME])
            missing = [k[0] for k in top if k[0] not in self._texts]
            if missing:
                for text_row in await session.run(sql.STATEMENT_TEXTS, missing):
                    self._texts[text_row["queryid"]] = _fold(text_row["query"], self.options.query_text_length)
        top_ids = {k[0] for k in top}
        self._texts = {q: t for q, t in self._texts.items() if q in top_ids}  # bounded by top_n
        snapshot.put(Statements(tuple(self._deltas(rows, snapshot.started_at, (server.start_time, stats_reset),
                                                   dealloc))))
        snapshot.families.extend(self._families(series, top, len(rows), dealloc))
        snapshot.put(Summary({"statements tracked": len(rows)}))
        if not server.superuser and not server.read_all_stats:
            snapshot.notes.append(
                f"role {server.role} sees only its own statements in pg_stat_statements (other roles' rows "
                f"have no queryid); run GRANT pg_monitor TO {server.role};"
            )

    def _deltas(self, rows: list[Any], now: float, epoch: tuple[Any, ...], dealloc: float | None
                ) -> list[StatementStats]:
        rebaseline = self._epoch != epoch
        evicted = dealloc is not None and self._dealloc is not None and dealloc > self._dealloc
        interval = now - self._taken_at if self._taken_at else 0.0
        baseline: dict[Key, tuple[float, ...]] = {}
        previous_baseline = self._baseline
        zero = (0,) * len(COLUMNS)
        out = []
        for values in rows:
            key: Key = values[:_FIRST]
            current = values[_FIRST:_END]
            baseline[key] = current
            if rebaseline:
                continue
            previous = previous_baseline.get(key)
            if previous is None:
                if evicted:
                    continue
                previous = zero
            elif previous == current:
                continue  # idle this interval: the common case, kept cheap
            delta = [c - p for c, p in zip(current, previous)]
            if delta[_CALLS] <= 0 or any(d < 0 for d in delta):
                continue  # evicted and re-created: re-baselined, never a negative delta
            queryid, userid, dbid, toplevel = key
            out.append(StatementStats(
                queryid=queryid, user=self._names.get(("r", userid), str(userid)),
                datname=self._names.get(("d", dbid), str(dbid)), toplevel=toplevel,
                query=self._texts.get(queryid), calls=current[_CALLS],
                total_time_seconds=current[_TIME] / 1000, max_time_seconds=values[_END] / 1000,
                rows=current[_ROWS], shared_blks_hit=current[_HIT], shared_blks_read=current[_READ],
                temp_blks_written=current[_TMPW], delta_calls=int(delta[_CALLS]),
                delta_time_seconds=delta[_TIME] / 1000, delta_rows=int(delta[_ROWS]),
                delta_shared_blks_hit=int(delta[_HIT]), delta_shared_blks_read=int(delta[_READ]),
                delta_temp_blks_written=int(delta[_TMPW]), interval_seconds=interval,
            ))
        self._baseline, self._epoch, self._dealloc, self._taken_at = baseline, epoch, dealloc, now
        return out

    def _families(self, series: dict[tuple[int, str, str], tuple[float, ...]], top: list[tuple[int, str, str]],
                  entries: int, dealloc: float | None) -> list[MetricFamily]:
        labels = ("queryid", "user", "datname")
        calls = counter("pg_stat_statements_calls_total", "Number of times executed.", labels)
        seconds = counter("pg_stat_statements_seconds_total", "Total time spent executing, in seconds.", labels)
        rows = counter("pg_stat_statements_rows_total", "Total number of rows retrieved or affected.", labels)
        blk_read = counter("pg_stat_statements_block_read_seconds_total",
                           "Time spent reading blocks, in seconds (needs track_io_timing).", labels)
        blk_write = counter("pg_stat_statements_block_write_seconds_total",
                            "Time spent writing blocks, in seconds (needs track_io_timing).", labels)
        hit = counter("dbwatch_pg_stat_statements_shared_blks_hit_total", "Shared buffer hits.", labels)
        read = counter("dbwatch_pg_stat_statements_shared_blks_read_total", "Shared blocks read.", labels)
        temp = counter("dbwatch_pg_stat_statements_temp_blks_written_total", "Temporary blocks written.", labels)
        text = info("pg_stat_statements_query_id", "Query text of a statement (folded and truncated).",
                    ("queryid", "query"))
        # "other" = everything minus the top: column sums run in C, not one Python loop per statement.
        # Calls, rows and blocks are integers, exact in a float up to 2^53, so "other" is exact too.
        totals = [sum(column) for column in zip(*series.values())] or [0.0] * len(COLUMNS)
        other = [total - sum(series[key][i] for key in top) for i, total in enumerate(totals)]
        emitted = [(key, series[key]) for key in top]
        if len(series) > len(top):
            emitted.append((("other", "", ""), other))  # type: ignore[arg-type]
        for key, v in emitted:
            calls.add(key, v[_CALLS])
            seconds.add(key, v[_TIME] / 1000)
            rows.add(key, v[_ROWS])
            blk_read.add(key, v[_BLKR] / 1000)
            blk_write.add(key, v[_BLKW] / 1000)
            hit.add(key, v[_HIT])
            read.add(key, v[_READ])
            temp.add(key, v[_TMPW])
        for queryid in dict.fromkeys(key[0] for key in top):  # one text per queryid: the same statement
            if queryid in self._texts:                          # run in two databases or by two roles shares it
                text.add((queryid, self._texts[queryid]), 1)
        count = gauge("dbwatch_pg_stat_statements_entries", "Entries in pg_stat_statements.")
        count.add((), entries)
        families = [calls, seconds, rows, blk_read, blk_write, hit, read, temp, text, count]
        if dealloc is not None:
            evictions = counter("dbwatch_pg_stat_statements_dealloc_total",
                                "Times pg_stat_statements evicted its least-used entries (pg_stat_statements.max).")
            evictions.add((), dealloc)
            families.append(evictions)
        return families


def _aggregate(rows: list[tuple[Any, ...]], names: dict[tuple[str, int], str]
               ) -> dict[tuple[int, str, str], tuple[float, ...]]:
    """Sum rows per exported series key (queryid, user, database): top-level and nested rows merge."""
    series: dict[tuple[int, str, str], tuple[float, ...]] = {}
    labels: dict[tuple[int, int], tuple[str, str]] = {}
    for values in rows:
        ids = (values[1], values[2])
        pair = labels.get(ids)
        if pair is None:
            pair = labels[ids] = (names.get(("r", ids[0])) or str(ids[0]), names.get(("d", ids[1])) or str(ids[1]))
        key = (values[0], *pair)
        current = values[_FIRST:_END]
        summed = series.get(key)
        series[key] = current if summed is None else tuple(map(operator.add, summed, current))
    return series


def _unavailable(row: Any) -> str | None:
    if row["preload"] is not None:
        preloaded = "pg_stat_statements" in row["preload"]
    else:
        preloaded = row["max_defined"]
    if row["version"] is None:
        step = "" if preloaded else (" and add pg_stat_statements to shared_preload_libraries "
                                     "(needs a server restart)")
        return (f"pg_stat_statements is not installed in database {row['database']}: run "
                f"CREATE EXTENSION pg_stat_statements;{step}")
    if not preloaded:
        return ("pg_stat_statements is installed but not loaded: add it to shared_preload_libraries "
                "and restart the server")
    return None


_SPACE = re.compile(r"\s+")


def _fold(query: str | None, limit: int) -> str:
    text = _SPACE.sub(" ", query or "").strip()
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"

