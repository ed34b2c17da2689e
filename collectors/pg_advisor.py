"""The PostgreSQL index advisor: index candidates costed with HypoPG, and index hygiene from the catalogs.

In the manner of Dexter: the statements that matter (share of total execution time, entries of one
normalised text summed across queryids) come from pg_stat_statements, joined by the slow log's samples when
the target's slowlog collector left some on the session; pglast reads which columns they filter, join and
sort on. The work is split by job:

- :mod:`pg_advisor_candidates`: which single- and two-column indexes to try for each statement;
- :mod:`pg_advisor_costing`: HypoPG costing (generic plans for ``$n`` statements, the column orders
  compared, the size of each winner), one index for statements a wider one serves as well;
- :mod:`pg_advisor_hygiene` and :mod:`pg_advisor_storage`: the catalog checks and storage advice;
- :mod:`pg_advisor_samples`: the slow log's samples matched with pg_stat_statements;
- :mod:`pg_advisor_workload`: statement totals since the reset, for the N+1 check of one-shot advice.

Never ``EXPLAIN ANALYZE``, never a real index: nothing a statement would do is executed, nothing is
written. hypopg_create_index() keeps the index in the backend's own memory (no catalog write, so it works
under ``default_transaction_read_only`` and on a standby; other sessions never see it). PREPARE and
EXPLAIN without ANALYZE plan, they do not execute; PREPARE goes through the extended protocol, so the text
is one statement (pglast checked that too), and every EXPLAIN runs under statement_timeout.

Without HypoPG, candidates are heuristic (a sequential scan with a filter on a large table, columns by the
same ordering) and labelled so, with a note saying what to install.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from dbwatch.model import Snapshot
from dbwatch.collectors import pg_advisor_sql as sql
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.pg_advisor import AdviceSettings, IndexCandidates
from dbwatch.collectors.pg_advisor_candidates import Statement, candidates_by_statement, existing_keys
from dbwatch.collectors.pg_advisor_costing import Costing
from dbwatch.collectors.pg_advisor_hygiene import Table, duplicates_sql, hygiene
from dbwatch.collectors.pg_advisor_samples import literal_samples, sample_queryid
from dbwatch.collectors.pg_advisor_storage import StorageOptions, storage_facts
from dbwatch.collectors.pg_advisor_workload import workload_totals
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.sqlshape import PostgresAnalyser, StatementUses
from dbwatch.model.options import Count, Number

__all__ = ["AdvisorOptions", "AdvisorCollector"]


class AdvisorOptions(StorageOptions):
    """Index advice; the storage options (bloat, BRIN and partitioning) come from pg_advisor_storage."""

    min_cost_reduction: Number = 0.5  # recommend when the plan's cost drops by at least this share
    min_saving_share: Number = 0.02  # ...and it saves at least this share of all statement time (the plan's cost
    # as the proxy): a cheap statement made cheaper is not worth an index's writes and disk
    max_statements: Count = 20  # statements costed per run, costliest first
    min_total_time_share: Number = 0.01  # ...among those with at least this share of all execution time
    min_calls: Count = 2
    max_candidates_per_statement: Count = 8
    min_table_rows: Count = 10000  # smaller tables are read whole faster than through an index
    unused_index_min_age: Number = 604800.0  # seconds of statistics before "never scanned" means unused (7 days)
    # A foreign key without an index is reported when the referencing table has this many rows or bytes, or
    # when its referenced table sees deletes/updates (below that, the scan a DELETE causes is cheap).
    fk_min_rows: Count = 10000
    fk_min_bytes: Count = 64 * 1024 * 1024

class AdvisorCollector(Collector[PostgresSession, AdvisorOptions]):
    """Facts (see :mod:`dbwatch.model.facts.pg_advisor` and :mod:`~dbwatch.model.facts.pg_storage`):
    AdviceSettings, IndexCandidates, the hygiene lists (UnusedIndexes, RedundantIndexes, ...) and the storage
    facts (StorageSettings, TableBloats, ...)."""

    name = "advisor"

    @cached_property
    def sql(self) -> PostgresAnalyser:
        """This target's statement reader: its parse failures are exported with the advisor's metrics."""
        return PostgresAnalyser()
    options_model = AdvisorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            server = await session.connected_server()
            snapshot.version = server.version
            [state] = await session.run(sql.STATE)
            tables = {r["oid"]: _table(r) for r in await session.run(sql.TABLES)}
            indexes = [dict(r) for r in await session.run(sql.INDEXES)]
            foreign_keys = [dict(r) for r in await session.run(sql.FOREIGN_KEYS)]
            sequences = [dict(r) for r in await session.run(sql.SEQUENCES)]
            duplicates = {i["oid"]: await _has_duplicates(session, i) for i in indexes
                          if i["is_unique"] and not i["is_valid"]}
            [hidden] = await session.run(sql.SEQUENCES_HIDDEN)
            statements = self._with_samples(await self._statements(session, state, snapshot), state["database"])
            options = self.options
            run = Costing(session, hypopg=state["hypopg"] is not None, generic_plan=server.version_num >= 160000,
                          min_cost_reduction=options.min_cost_reduction,
                          observed=float(state["observed_seconds"] or 0.0))
            per_statement = await candidates_by_statement(
                session, statements, tables, existing_keys(indexes), options.min_table_rows,
                options.max_candidates_per_statement)
            storage = await storage_facts(session, statements, self.options)
            if state["statements"] is not None:  # N+1 in one-shot advice: totals since the reset
                try:
                    snapshot.put(await workload_totals(session, state["database"], _version(state["statements"]),
                                                       float(state["observed_seconds"] or 0.0)))
                except CollectorError as exc:
                    snapshot.notes.append(f"no N+1 check: {exc}")
        # The costing takes the session a statement at a time: the server-wide collector, due every few
        # seconds, must not time out waiting for the advisor.
        candidates = await run.candidates(statements, per_statement)
        observed = float(state["observed_seconds"] or 0.0)
        snapshot.put(AdviceSettings(
            min_cost_reduction=self.options.min_cost_reduction,
            unused_index_min_age=self.options.unused_index_min_age,
            hypopg=state["hypopg"], database=state["database"], observed_seconds=observed,
            fk_min_rows=self.options.fk_min_rows, fk_min_bytes=self.options.fk_min_bytes,
            min_saving_share=self.options.min_saving_share))
        snapshot.put(IndexCandidates(tuple(candidates)))
        snapshot.put(*hygiene(tables, indexes, foreign_keys, sequences, observed, duplicates))
        snapshot.put(*storage)
        if state["hypopg"] is None:
            install = ("" if state["hypopg_available"] else
                       f"install HypoPG on the server (Debian/Ubuntu: apt-get install "
                       f"postgresql-{server.version_num // 10000}-hypopg), then ")
            snapshot.notes.append(
                f"HypoPG is not installed in database {state['database']}: index candidates are heuristic, "
                f"not costed; {install}run CREATE EXTENSION hypopg; in {state['database']} for costed advice")
        if hidden["hidden"]:
            snapshot.notes.append(f"{hidden['hidden']} sequence(s) are not readable by role {server.role} "
                                  f"(GRANT SELECT ON SEQUENCE ...), so how close they are to their maximum is unknown")
        snapshot.families.extend(run.families(len(statements), len(candidates)))
        snapshot.families.append(self.sql.failures.family())
        snapshot.put(Summary({"index candidates": len(candidates)}))

    def _with_samples(self, statements: list[Statement], database: str) -> list[Statement]:
        """pg_stat_statements' statements with the slow log's samples merged in (literals, custom plans)."""
        samples = literal_samples(self.sql, self.session.slow_samples.values(), database, self.options.max_statements)
        if not samples:
            return statements
        index = {self.sql.fingerprint(s.text): i for i, s in enumerate(statements)}
        server_ms = next((s.total_ms / s.share for s in statements if s.share > 0), 0.0)
        out = list(statements)
        for found in samples:
            i = index.pop(found.fingerprint, None)
            params = found.parsed.params  # an extended-protocol event logged with $n: planned generically
            text = self.sql.preparable(found.sample.sample) if params else found.sample.sample
            if i is not None:  # the same statement: pg_stat_statements' numbers, the sample's plan
                known = statements[i]
                if not params:
                    out[i] = Statement(known.queryid, text, known.calls, known.total_ms, known.share, found.parsed,
                                       literal=True, source="slowlog")
            else:  # known only from the slow log (one sample per fingerprint): its own numbers
                ms = found.sample.query_time_total * 1000
                out.append(Statement(sample_queryid(found.sample.class_id), text, found.sample.count, ms,
                                     ms / server_ms if server_ms > 0 else 0.0, found.parsed, literal=not params,
                                     source="slowlog"))
        return out

    async def _statements(self, session: PostgresSession, state: Any, snapshot: Snapshot) -> list[Statement]:
        if state["statements"] is None:
            snapshot.notes.append(f"pg_stat_statements is not installed in database {state['database']}: "
                                  "no index candidates (the hygiene checks still run)")
            return []
        version = _version(state["statements"])
        try:
            options = self.options
            rows = await session.run(sql.statements_sql(version), options.min_total_time_share, options.min_calls,
                                     options.max_statements * 3)  # some will not parse or name no table
        except CollectorError as exc:  # e.g. created but not in shared_preload_libraries: hygiene still runs
            snapshot.notes.append(f"no index candidates: {exc}")
            return []
        if not rows:
            return []
        out = []
        for row in rows:
            text = row["query"] or ""
            parsed = self.sql.uses(text) if text else None
            if isinstance(parsed, StatementUses) and parsed.tables:
                out.append(Statement(row["queryid"], self.sql.preparable(text), int(row["calls"]), float(row["total_ms"]),
                                      float(row["share"]), parsed))
            if len(out) >= self.options.max_statements:
                break
        return out


async def _has_duplicates(session: PostgresSession, index: dict[str, Any]) -> bool | None:
    """Whether an invalid unique index's table holds duplicate keys; None when the scan did not finish within
    the session's statement_timeout (then the query is offered, not a rebuild)."""
    try:
        [row] = await session.run(f"SELECT EXISTS ({duplicates_sql(index, limit=None)}) AS found")
    except CollectorError:
        return None
    return bool(row["found"])


def _version(extversion: str) -> tuple[int, ...]:
    return tuple(int(p) for p in extversion.split(".") if p.isdigit())


def _table(row: Any) -> Table:
    return Table(oid=row["oid"], schema=row["schema"], name=row["name"], qualified=row["qualified"],
                 rows=int(row["rows"]), size_bytes=int(row["size_bytes"]), writes=int(row["writes"]),
                 updates_deletes=int(row["updates_deletes"]), index_count=int(row["index_count"]),
                 has_pk=bool(row["has_pk"]), heap_bytes=int(row["heap_bytes"]))
