"""The PostgreSQL index advisor: index candidates costed with HypoPG, and index hygiene from the catalogs.

In the manner of Dexter: the statements that matter (share of total execution time) come from
pg_stat_statements; pglast reads which columns they filter, join and sort on; single- and two-column
candidates (equality columns first, then by selectivity from pg_stats) are costed with HypoPG's
*hypothetical* indexes and plain ``EXPLAIN (FORMAT JSON)``. Never ``EXPLAIN ANALYZE``, never a real
index: nothing a statement would do is executed, nothing is written.

Why this is safe on the read-only monitoring session:

- hypopg_create_index() keeps the index in the backend's own memory; it writes no catalog, so it works
  under ``default_transaction_read_only`` (and on a standby), and other sessions never see it. Each
  index is dropped right after its EXPLAINs, and ``hypopg_reset()`` ends every costing block whatever
  happened; a connection dropped on timeout takes them with it. No ``SET transaction_read_only = off``
  is needed (checked on HypoPG 1.3 / PostgreSQL 15).
- PREPARE and EXPLAIN without ANALYZE plan, they do not execute: an UPDATE or DELETE is only planned, and
  the read-only transaction would refuse it anyway. PREPARE goes through the extended protocol, so the
  text is one statement (pglast checked that too), and every EXPLAIN runs under statement_timeout.

Why generic plans: pg_stat_statements keeps statements with ``$1`` placeholders. ``plan_cache_mode =
force_generic_plan`` (PostgreSQL 12+; ``SET LOCAL``, so only for this transaction) makes ``EXPLAIN EXECUTE
stmt(NULL, ...)`` plan without looking at the values: ``col = $1`` is estimated from n_distinct, a range
from the default selectivity, i.e. the plan of a typical call, which is what the statement's total time
is made of. A custom plan would fold ``col = NULL`` to "no rows"; values from pg_stats' most common values
would cost one value's plan, not the statement's. The statement is re-prepared for every candidate: a
cached generic plan is not invalidated by a hypothetical index.

Slow-log samples (literals kept) that the target's slowlog collector leaves on the session are costed as
they are, with a plain ``EXPLAIN (FORMAT JSON)`` (a custom plan from the real values): a sample replaces the
generic plan of its pg_stat_statements statement (same pglast fingerprint), or joins the statements when its
class is not there (see :mod:`pg_advisor_samples`).

Without HypoPG, candidates are heuristic (a sequential scan with a filter on a large table, columns by the
same ordering) and labelled so, with a note saying what to install.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, AsyncIterator

import asyncpg

from dbwatch.model import MetricFamily, Snapshot, gauge
from dbwatch.collectors import pg_advisor_sql as sql
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.pg_advisor import AdviceSettings, IndexCandidate, IndexCandidates, StatementCost
from dbwatch.collectors.pg_advisor_hygiene import Table, duplicates_sql, hygiene, index_name
from dbwatch.collectors.pg_advisor_samples import literal_samples, sample_queryid
from dbwatch.collectors.pg_advisor_storage import StorageOptions, storage_facts
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.sqlshape import ColumnUse, PostgresAnalyser, StatementUses, TableRef
from dbwatch.model.options import Count, Number

__all__ = ["AdvisorOptions", "AdvisorCollector"]


class AdvisorOptions(StorageOptions):
    """Index advice; the storage options (bloat, BRIN and partitioning) come from pg_advisor_storage."""

    min_cost_reduction: Number = 0.5  # recommend when the plan's cost drops by at least this share
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

_STMT = "dbwatch_advisor"
# A statement's margin to prefer fewer columns: a two-column index must beat its one-column prefix by 10 %.
_PREFIX_MARGIN = 1.1
_SPACE = re.compile(r"\s+")


@dataclass(slots=True)
class _Statement:
    queryid: int
    text: str
    calls: int
    total_ms: float
    share: float
    parsed: StatementUses[TableRef]
    literal: bool = False  # a slow-log sample: EXPLAINed as it is (custom plan), not PREPAREd
    source: str = "pg_stat_statements"

    def cost(self, before: float, after: float | None) -> StatementCost:
        folded = _SPACE.sub(" ", self.text).strip()
        return StatementCost(queryid=self.queryid, query=folded[:299] + "…" if len(folded) > 300 else folded,
                             calls=self.calls, total_time_seconds=self.total_ms / 1000, time_share=self.share,
                             cost_before=before, cost_after=after, source=self.source)


_Costed = tuple["_Statement", StatementCost]


@dataclass(frozen=True, slots=True)
class _Candidate:
    table: Table
    columns: tuple[str, ...]  # as named in the catalog
    quoted: tuple[str, ...]
    reason: str

    @property
    def ddl(self) -> str:
        return f"CREATE INDEX ON {self.table.qualified} ({', '.join(self.quoted)})"


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
            run = _Run(self, session, tables, indexes, float(state["observed_seconds"] or 0.0),
                       hypopg=state["hypopg"] is not None)
            per_statement = await run.candidates_by_statement(statements)
            storage = await storage_facts(session, statements, self.options)
        # The costing takes the session a statement at a time: the server-wide collector, due every few
        # seconds, must not time out waiting for the advisor.
        candidates = await run.candidates(statements, per_statement)
        observed = float(state["observed_seconds"] or 0.0)
        snapshot.put(AdviceSettings(
            min_cost_reduction=self.options.min_cost_reduction,
            unused_index_min_age=self.options.unused_index_min_age,
            hypopg=state["hypopg"], database=state["database"], observed_seconds=observed,
            fk_min_rows=self.options.fk_min_rows, fk_min_bytes=self.options.fk_min_bytes))
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

    def _with_samples(self, statements: list[_Statement], database: str) -> list[_Statement]:
        """pg_stat_statements' statements with the slow log's samples merged in (literals, custom plans)."""
        samples = literal_samples(self.sql, self.session.slow_samples.values(), database, self.options.max_statements)
        if not samples:
            return statements
        index = {self.sql.fingerprint(s.text): i for i, s in enumerate(statements)}
        server_ms = next((s.total_ms / s.share for s in statements if s.share > 0), 0.0)
        out = list(statements)
        for found in samples:
            i = index.pop(found.fingerprint, None)
            if i is not None:  # the same statement: pg_stat_statements' numbers, the sample's plan
                known = statements[i]
                out[i] = _Statement(known.queryid, found.sample.sample, known.calls, known.total_ms, known.share,
                                    found.parsed, literal=True, source="slowlog")
            else:  # known only from the slow log (one sample per fingerprint): its own numbers
                ms = found.sample.query_time_total * 1000
                out.append(_Statement(sample_queryid(found.sample.class_id), found.sample.sample, found.sample.count,
                                      ms, ms / server_ms if server_ms > 0 else 0.0, found.parsed, literal=True,
                                      source="slowlog"))
        return out

    async def _statements(self, session: PostgresSession, state: Any, snapshot: Snapshot) -> list[_Statement]:
        if state["statements"] is None:
            snapshot.notes.append(f"pg_stat_statements is not installed in database {state['database']}: "
                                  "no index candidates (the hygiene checks still run)")
            return []
        version = tuple(int(p) for p in state["statements"].split(".") if p.isdigit())
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
                out.append(_Statement(row["queryid"], self.sql.preparable(text), int(row["calls"]), float(row["total_ms"]),
                                      float(row["share"]), parsed))
            if len(out) >= self.options.max_statements:
                break
        return out


class _Run:
    """One collection's costing: the catalog it resolved against and the counts it exports."""

    def __init__(self, collector: AdvisorCollector, session: PostgresSession, tables: dict[int, Table],
                 indexes: list[dict[str, Any]], observed: float, hypopg: bool) -> None:
        self.c = collector
        self.observed = observed
        self.hypopg = hypopg
        self.session = session
        self.conn: asyncpg.Connection  # the live connection of the current costing block
        self.tables = tables
        self.explains = 0
        self.failed = 0
        self.existing: dict[int, list[tuple[str, ...]]] = {}
        for index in indexes:
            if index["is_valid"] and index["method"] == "btree" and not index["predicate"]:
                self.existing.setdefault(index["table_oid"], []).append(tuple(index["columns"][:index["key_count"]]))

    async def candidates(self, statements: list[_Statement], per_statement: dict[int, list[_Candidate]]
                         ) -> list[IndexCandidate]:
        chosen: dict[tuple[int, tuple[str, ...]], tuple[_Candidate, list[_Costed]]] = {}
        for statement in statements:
            options = per_statement.get(statement.queryid, [])
            if not options:
                continue
            async with self._costing():
                best = await (self._costed(statement, options) if self.hypopg else self._heuristic(statement, options))
            if best is not None:
                candidate, cost = best
                key = (candidate.table.oid, candidate.columns)
                chosen.setdefault(key, (candidate, []))[1].append((statement, cost))
        if self.hypopg and len(chosen) > 1:
            async with self._costing():
                await self._consolidate(chosen)
        method = "hypopg" if self.hypopg else "heuristic"
        return sorted((self._fact(candidate, [c for _, c in costs], method) for candidate, costs in chosen.values()),
                      key=lambda f: -f.time_share)

    def families(self, statements: int, candidates: int) -> list[MetricFamily]:
        out = []
        for name, help_, value in (
            ("dbwatch_pg_advisor_statements", "Statements the index advisor considered in its last run.", statements),
            ("dbwatch_pg_advisor_explains", "EXPLAINs the index advisor ran in its last run.", self.explains),
            ("dbwatch_pg_advisor_explain_failures",
             "Statements the advisor could not EXPLAIN (parameter types it cannot infer, objects missing).",
             self.failed),
            ("dbwatch_pg_advisor_index_candidates", "Index candidates the advisor found in its last run.", candidates),
        ):
            fam = gauge(name, help_)
            fam.add((), value)
            out.append(fam)
        return out

    @contextlib.asynccontextmanager
    async def _costing(self) -> AsyncIterator[None]:
        """The session, in a transaction of generic plans, with every hypothetical index gone afterwards."""
        async with self.session.lock:
            conn = self.conn = await self.session.connection()
            try:
                async with conn.transaction():
                    await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")  # this transaction only
                    yield
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
                await self.session.invalidate()
                raise CollectorError(f"connection to {self.session.endpoint} lost: {_first_line(exc)}") from None
            except asyncpg.PostgresError as exc:
                raise CollectorError(f"index advisor failed: {_first_line(exc)}") from None
            finally:
                if self.hypopg and not conn.is_closed():
                    await _reset(conn)

    async def candidates_by_statement(self, statements: list[_Statement]) -> dict[int, list[_Candidate]]:
        if not statements:
            return {}
        refs = sorted({_reference(ref) for s in statements for ref in s.parsed.tables})
        oids = {r["name"]: r["oid"] for r in await self.session.run(sql.RESOLVE, refs)}
        wanted = sorted({oid for oid in oids.values()
                         if oid in self.tables and self.tables[oid].rows >= self.c.options.min_table_rows})
        columns: dict[int, dict[str, tuple[str, float | None, float | None]]] = {}
        if wanted:
            for row in await self.session.run(sql.COLUMNS, wanted):
                columns.setdefault(row["oid"], {})[row["name"]] = (row["quoted"], row["n_distinct"], row["null_frac"])
        out: dict[int, list[_Candidate]] = {}
        for statement in statements:
            uses: dict[int, ColumnUse] = {}
            for ref, use in statement.parsed.tables.items():
                oid = oids.get(_reference(ref))
                if oid in columns:
                    uses.setdefault(oid, ColumnUse()).merge(use)
            for tables, kind, column in statement.parsed.unqualified:
                owners = [oids[_reference(t)] for t in tables if _reference(t) in oids]
                owners = [o for o in owners if o in columns and column in columns[o]]
                if len(owners) == 1:
                    uses.setdefault(owners[0], ColumnUse()).add(kind, column)
            found: list[_Candidate] = []
            for oid, use in uses.items():
                found.extend(self._for_table(self.tables[oid], use, columns[oid]))
            out[statement.queryid] = found[: self.c.options.max_candidates_per_statement]
        return out

    def _for_table(self, table: Table, use: ColumnUse, known: dict[str, tuple[str, float | None, float | None]]
                   ) -> list[_Candidate]:
        def matched(column: str) -> float:
            """The share of rows the column's test keeps (pg_stats; 1 when unknown): the null fraction for
            IS NULL, the rest for IS NOT NULL, the non-null rows over the distinct values for =."""
            _, n, null_frac = known[column]
            nulls = null_frac or 0.0
            if column in use.null:
                return nulls if null_frac is not None else 1.0
            if column in use.not_null:
                return 1.0 - nulls
            distinct = 0.0 if n is None else (-n * table.rows if n < 0 else n)
            return (1.0 - nulls) / distinct if distinct > 0 else 1.0

        eq = sorted((c for c in use.equality if c in known), key=matched)
        rng = [c for c in use.range if c in known and c not in eq]
        join = [c for c in use.join if c in known and c not in eq]
        order = [c for c in use.order if c in known and c not in eq]
        shapes: list[tuple[tuple[str, ...], str]] = []
        for lead in eq[:3]:  # two columns: equality first, the more selective equality leading
            for second in [c for c in eq[:3] if matched(c) >= matched(lead) and c != lead][:1]:
                shapes.append(((lead, second), f"equality on {lead} and {second}"))
            for second in rng[:2]:
                shapes.append(((lead, second), f"equality on {lead}, range on {second}"))
            for second in order[:1]:
                shapes.append(((lead, second), f"equality on {lead}, ORDER BY {second}"))
        shapes += [((c,), f"equality on {c}") for c in eq[:3]]
        shapes += [((c,), f"join on {c}") for c in join[:2]]
        shapes += [((c,), f"range on {c}") for c in rng[:2]]
        shapes += [((c,), f"ORDER BY {c}") for c in order[:1] if c not in rng]
        out, seen = [], set()
        for columns, reason in shapes:
            if columns in seen or self._served(table.oid, columns):
                continue
            seen.add(columns)
            out.append(_Candidate(table, columns, tuple(known[c][0] for c in columns), reason))
        return out

    def _served(self, oid: int, columns: tuple[str, ...]) -> bool:
        """An existing b-tree index leading with these columns already is this candidate."""
        return any(existing[:len(columns)] == columns for existing in self.existing.get(oid, []))

    async def _costed(self, statement: _Statement, options: list[_Candidate]
                      ) -> tuple[_Candidate, StatementCost] | None:
        before = await self._explain(statement)
        if before is None:
            return None
        base = float(before["Total Cost"])
        results: list[tuple[float, _Candidate]] = []
        for candidate in options:
            [cost] = await self._with_index(candidate, [statement]) or [None]
            if cost is not None:
                results.append((cost, candidate))
        good = [r for r in results if base > 0 and 1 - r[0] / base >= self.c.options.min_cost_reduction]
        if not good:
            return None
        cost, best = min(good, key=lambda r: (r[0], len(r[1].columns)))
        for other_cost, other in good:  # fewer columns do as well: the narrower index is cheaper to keep
            if (len(other.columns) < len(best.columns) and best.columns[:len(other.columns)] == other.columns
                    and other_cost <= cost * _PREFIX_MARGIN):
                cost, best = other_cost, other
        return best, statement.cost(base, cost)

    async def _with_index(self, candidate: _Candidate, statements: list[_Statement]) -> list[float | None] | None:
        """Each statement's cost with the hypothetical index, None where the plan does not use it."""
        try:
            async with self.conn.transaction():  # a type without a b-tree operator class fails here
                [hypo] = await self.conn.fetch(sql.HYPO_CREATE, candidate.ddl)
        except asyncpg.PostgresError:
            return None
        try:
            costs: list[float | None] = []
            for statement in statements:
                plan = await self._explain(statement)
                used = plan is not None and hypo["indexname"] in json.dumps(plan)
                costs.append(float(plan["Total Cost"]) if used and plan is not None else None)
            return costs
        finally:
            await self.conn.fetch(sql.HYPO_DROP, hypo["indexrelid"])

    async def _consolidate(self, chosen: dict[tuple[int, tuple[str, ...]], tuple[_Candidate, list[_Costed]]]) -> None:
        """One index for (a) and (a, b) when (a, b) serves (a)'s statements about as well: one index to keep."""
        for key in sorted(chosen, key=lambda k: len(k[1])):
            narrow, entries = chosen[key]
            wider = [k for k in chosen if k[0] == key[0] and len(k[1]) > len(key[1]) and k[1][:len(key[1])] == key[1]]
            for other in sorted(wider, key=lambda k: len(k[1])):
                costs = await self._with_index(chosen[other][0], [statement for statement, _ in entries])
                if costs is None or any(c is None or old.cost_after is None or c > old.cost_after * _PREFIX_MARGIN
                                        for c, (_, old) in zip(costs, entries)):
                    continue
                chosen[other][1].extend((statement, statement.cost(old.cost_before, c))
                                        for c, (statement, old) in zip(costs, entries))
                del chosen[key]
                break

    async def _heuristic(self, statement: _Statement, options: list[_Candidate]
                         ) -> tuple[_Candidate, StatementCost] | None:
        plan = await self._explain(statement)
        if plan is None:
            return None
        scanned = {node.get("Relation Name") for node in _nodes(plan)
                   if node.get("Node Type") == "Seq Scan" and node.get("Filter")}
        for candidate in options:  # already in preference order: two columns, equality, join, range
            if candidate.table.name in scanned:
                return candidate, statement.cost(float(plan["Total Cost"]), None)
        return None

    async def _explain(self, statement: _Statement) -> dict[str, Any] | None:
        self.explains += 1
        args = f"({', '.join(['NULL'] * statement.parsed.params)})" if statement.parsed.params else ""
        prepared = False
        try:
            async with self.conn.transaction():  # a savepoint: a failing statement does not end the run
                if statement.literal:  # one statement (pglast said so), planned with its own values, not run
                    raw = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) {statement.text}")
                else:
                    await self.conn.fetch(f"PREPARE {_STMT} AS {statement.text}")
                    prepared = True
                    raw = await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {_STMT}{args}")
        except asyncpg.PostgresError:
            self.failed += 1
            return None
        finally:
            if prepared:
                await self.conn.execute(f"DEALLOCATE {_STMT}")
        plan = json.loads(raw) if isinstance(raw, str) else raw
        found: dict[str, Any] = plan[0]["Plan"]
        return found

    def _fact(self, candidate: _Candidate, costs: list[StatementCost], method: str) -> IndexCandidate:
        table = candidate.table
        name = index_name(table.name, candidate.columns)
        return IndexCandidate(
            schema=table.schema, table=table.name, columns=candidate.columns, method=method,
            create_sql=f"CREATE INDEX CONCURRENTLY {name} ON {table.qualified} ({', '.join(candidate.quoted)});",
            reason=candidate.reason, statements=tuple(costs), table_rows=table.rows,
            table_size_bytes=table.size_bytes, writes_total=table.writes,
            writes_per_second=table.writes / self.observed if self.observed > 0 else 0.0,
            index_count=table.index_count,
        )


async def _has_duplicates(session: PostgresSession, index: dict[str, Any]) -> bool | None:
    """Whether an invalid unique index's table holds duplicate keys; None when the scan did not finish within
    the session's statement_timeout (then the query is offered, not a rebuild)."""
    try:
        [row] = await session.run(f"SELECT EXISTS ({duplicates_sql(index, limit=None)}) AS found")
    except CollectorError:
        return None
    return bool(row["found"])


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out, stack = [], [plan]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.get("Plans", []))
    return out


def _reference(ref: TableRef) -> str:
    schema, name = ref
    quoted = '"' + name.replace('"', '""') + '"'
    return f'"{schema.replace(chr(34), chr(34) * 2)}".{quoted}' if schema else quoted


def _table(row: Any) -> Table:
    return Table(oid=row["oid"], schema=row["schema"], name=row["name"], qualified=row["qualified"],
                 rows=int(row["rows"]), size_bytes=int(row["size_bytes"]), writes=int(row["writes"]),
                 updates_deletes=int(row["updates_deletes"]), index_count=int(row["index_count"]),
                 has_pk=bool(row["has_pk"]), heap_bytes=int(row["heap_bytes"]))


async def _reset(conn: asyncpg.Connection) -> None:
    try:
        await conn.fetch(sql.HYPO_RESET)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        pass  # the connection is being dropped; its hypothetical indexes go with the backend
