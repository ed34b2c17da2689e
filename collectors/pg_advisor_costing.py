"""Costing the PostgreSQL advisor's candidates with HypoPG: which index, in which column order, and how big.

Every costing block is one transaction on the monitoring session, read-only as it is: HypoPG's
hypothetical indexes live in the backend's memory (no catalog write, invisible to other sessions), each is
dropped after its EXPLAINs and ``hypopg_reset()`` ends the block whatever happened. Nothing is executed:
``EXPLAIN`` without ``ANALYZE``, under statement_timeout.

Statements with ``$n`` placeholders (pg_stat_statements keeps them so) are planned *generically*: on
PostgreSQL 16+ with ``EXPLAIN (GENERIC_PLAN)``; before, with ``PREPARE`` and ``EXPLAIN EXECUTE stmt(NULL,
...)`` under ``SET LOCAL plan_cache_mode = force_generic_plan`` (this transaction only). ``col = $1`` is then
estimated from n_distinct, a range from the default selectivity: the plan of a typical call, which is what
the statement's total time is made of (a custom plan would fold ``col = NULL`` to "no rows"). A parameter
whose type the planner cannot infer (``$2 IS NULL``: the client declared it) is declared ``text`` and the
statement prepared again; a statement that still fails is counted, never
fatal. Samples with their literals (slow log) get a custom plan from their own values.

Column order: for a multi-column winner, the other plausible orders of its columns are costed too (two or
three columns: at most six; a column tested by ``IS [NOT] NULL`` keeps the place its null fraction gave it,
as the planner's correlation of the non-null values would mislead), and the cheapest wins (by more than
1 %, else the selectivity order stays); all are kept on the fact so the report shows every order's cost. The winner's size is HypoPG's estimate (``hypopg_relation_size``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from typing import Any, AsyncIterator

import asyncpg

from dbwatch.collectors import pg_advisor_sql as sql
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.pg_advisor_candidates import Candidate, Statement
from dbwatch.collectors.pg_advisor_hygiene import index_name
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model import MetricFamily, gauge
from dbwatch.model.facts.pg_advisor import IndexCandidate, StatementCost

__all__ = ["Costing"]

_STMT = "dbwatch_advisor"
# A statement's margin to prefer fewer columns: a two-column index must beat its one-column prefix by 10 %.
_PREFIX_MARGIN = 1.1
# Another candidate's index serves a statement as well when it keeps this share of the statement's own saving.
_KEPT_SAVING = 0.9
# Another column order replaces the selectivity order only when it is cheaper by more than this.
_ORDER_MARGIN = 0.99
_UNTYPED = re.compile(r"parameter \$(\d+)")
_Costed = tuple[Statement, StatementCost]
_Key = tuple[int, tuple[str, ...]]
_Orders = tuple[tuple[tuple[str, ...], float | None], ...]


class Costing:
    """One collection's costing: the options it judges with and the counts it exports."""

    def __init__(self, session: PostgresSession, *, hypopg: bool, generic_plan: bool, min_cost_reduction: float,
                 observed: float) -> None:
        self.session = session
        self.hypopg = hypopg
        self.generic_plan = generic_plan  # EXPLAIN (GENERIC_PLAN): PostgreSQL 16+
        self.min_cost_reduction = min_cost_reduction
        self.observed = observed
        self.conn: asyncpg.Connection  # the live connection of the current costing block
        self.explains = 0
        self.failed = 0
        self.orders: dict[_Key, _Orders] = {}
        self.sizes: dict[_Key, int] = {}

    async def candidates(self, statements: list[Statement], per_statement: dict[int, list[Candidate]]
                         ) -> list[IndexCandidate]:
        chosen: dict[_Key, tuple[Candidate, list[_Costed]]] = {}
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
                raise CollectorError(f"connection to {self.session.endpoint} lost: {first_line(exc)}") from None
            except asyncpg.PostgresError as exc:
                raise CollectorError(f"index advisor failed: {first_line(exc)}") from None
            finally:
                if self.hypopg and not conn.is_closed():
                    await _reset(conn)

    async def _costed(self, statement: Statement, options: list[Candidate]) -> tuple[Candidate, StatementCost] | None:
        before = await self._explain(statement)
        if before is None:
            return None
        base = float(before["Total Cost"])
        results: list[tuple[float, Candidate]] = []
        for candidate in options:
            [cost] = await self._with_index(candidate, [statement]) or [None]
            if cost is not None:
                results.append((cost, candidate))
        good = [r for r in results if base > 0 and 1 - r[0] / base >= self.min_cost_reduction]
        if not good:
            return None
        cost, best = min(good, key=lambda r: (r[0], len(r[1].columns)))
        for other_cost, other in good:  # fewer columns do as well: the narrower index is cheaper to keep
            if (len(other.columns) < len(best.columns) and best.columns[:len(other.columns)] == other.columns
                    and other_cost <= cost * _PREFIX_MARGIN):
                cost, best = other_cost, other
        if len(best.columns) > 1:
            cost, best = await self._order(statement, best, cost, results)
        return best, statement.cost(base, cost)

    async def _order(self, statement: Statement, best: Candidate, cost: float, results: list[tuple[float, Candidate]]
                     ) -> tuple[float, Candidate]:
        """The cheapest order of the winner's columns, each order costed with its own hypothetical index."""
        known = {c.columns: c_cost for c_cost, c in results if c.table.oid == best.table.oid}
        tried: list[tuple[tuple[str, ...], float | None, Candidate]] = [(best.columns, cost, best)]
        for order in itertools.permutations(range(len(best.columns))):
            if order == tuple(range(len(best.columns))) or not best.plausible(order):
                continue
            other = best.reordered(order, best.reason)
            if other.columns in known:
                other_cost: float | None = known[other.columns]
            else:
                [other_cost] = await self._with_index(other, [statement]) or [None]
            tried.append((other.columns, other_cost, other))
        winner_cost, winner = cost, best
        for columns, other_cost, other in tried[1:]:
            if other_cost is not None and other_cost < winner_cost * _ORDER_MARGIN:
                winner_cost, winner = other_cost, other
        if winner is not best:
            winner = winner.reordered(tuple(range(len(winner.columns))),
                                      f"{best.reason}; HypoPG costs order ({', '.join(winner.columns)}) at "
                                      f"{winner_cost:.0f} against {cost:.0f} for ({', '.join(best.columns)})")
        self.orders[(winner.table.oid, winner.columns)] = tuple(
            (columns, other_cost) for columns, other_cost, _ in sorted(tried, key=lambda t: t[0] != winner.columns))
        return winner_cost, winner

    async def _with_index(self, candidate: Candidate, statements: list[Statement]) -> list[float | None] | None:
        """Each statement's cost with the hypothetical index, None where the plan does not use it."""
        try:
            async with self.conn.transaction():  # a type without a b-tree operator class fails here
                [hypo] = await self.conn.fetch(sql.HYPO_CREATE, candidate.ddl)
        except asyncpg.PostgresError:
            return None
        try:
            with contextlib.suppress(asyncpg.PostgresError):
                async with self.conn.transaction():  # HypoPG before 1.1 has no size estimate
                    size = await self.conn.fetchval("SELECT hypopg_relation_size($1)", hypo["indexrelid"])
                    self.sizes[(candidate.table.oid, candidate.columns)] = int(size)
            costs: list[float | None] = []
            for statement in statements:
                plan = await self._explain(statement)
                used = plan is not None and hypo["indexname"] in json.dumps(plan)
                costs.append(float(plan["Total Cost"]) if used and plan is not None else None)
            return costs
        finally:
            await self.conn.fetch(sql.HYPO_DROP, hypo["indexrelid"])

    async def _consolidate(self, chosen: dict[_Key, tuple[Candidate, list[_Costed]]]) -> None:
        """One index where one serves another's statements about as well: a narrower (a) folds into (a, b), and
        (a, c) into (a, b) when (a, b) keeps at least :data:`_KEPT_SAVING` of each of (a, c)'s savings (the
        second index would save little more, and costs writes and disk). When either of (a, b) and (a, c)
        could serve the other's statements, the one kept is the one whose loss of saved time is smaller."""
        for key in sorted(chosen, key=lambda k: (len(k[1]), sum(c.time_share for _, c in chosen[k][1]))):
            if key not in chosen:
                continue
            others = [k for k in chosen if k != key and k[0] == key[0] and k[1][0] == key[1][0]
                      and (len(k[1]) > len(key[1]) or len(key[1]) > 1)]
            for other in sorted(others, key=lambda k: (k[1][:len(key[1])] != key[1], -len(k[1]))):
                fold = await self._fold(chosen, key, other)
                if fold is None:
                    continue
                if other[1][:len(key[1])] != key[1]:  # siblings on one leading column: the cheaper fold wins
                    back = await self._fold(chosen, other, key)
                    if back is not None and back[0] < fold[0]:
                        key, other, fold = other, key, back
                chosen[other][1].extend(fold[1])
                del chosen[key]
                break

    async def _fold(self, chosen: dict[_Key, tuple[Candidate, list[_Costed]]], source: _Key, target: _Key
                    ) -> tuple[float, list[_Costed]] | None:
        """``source``'s statements costed with ``target``'s index, and the share of all statement time their
        saving loses that way; None unless it serves each of them as well (:func:`_serves_as_well`)."""
        entries = chosen[source][1]
        costs = await self._with_index(chosen[target][0], [statement for statement, _ in entries])
        if costs is None or not all(_serves_as_well(c, old) for c, (_, old) in zip(costs, entries)):
            return None
        lost = sum(old.time_share * (c - (old.cost_after or 0)) / old.cost_before
                   for c, (_, old) in zip(costs, entries) if c is not None and old.cost_before > 0)
        return lost, [(statement, statement.cost(old.cost_before, c)) for c, (statement, old) in zip(costs, entries)]

    async def _heuristic(self, statement: Statement, options: list[Candidate]) -> tuple[Candidate, StatementCost] | None:
        plan = await self._explain(statement)
        if plan is None:
            return None
        scanned = {node.get("Relation Name") for node in _nodes(plan)
                   if node.get("Node Type") == "Seq Scan" and node.get("Filter")}
        for candidate in options:  # already in preference order: two columns, equality, join, range
            if candidate.table.name in scanned:
                return candidate, statement.cost(float(plan["Total Cost"]), None)
        return None

    async def _explain(self, statement: Statement) -> dict[str, Any] | None:
        """The statement's plan (never executed); None, counted, when it cannot be planned."""
        self.explains += 1
        params = statement.parsed.params
        types = ["unknown"] * params  # "unknown": the planner infers the type from the statement
        for attempt in range(params + 2):
            generic = bool(params) and self.generic_plan and attempt == 0 and not statement.literal
            if statement.literal or generic:
                options = "GENERIC_PLAN, FORMAT JSON" if generic else "FORMAT JSON"
                raw, untyped = await self._plan(f"EXPLAIN ({options}) {statement.text}", 0)
            else:
                declared = f"({', '.join(types)})" if params else ""
                raw, untyped = await self._plan(f"PREPARE {_STMT}{declared} AS {statement.text}", params)
            if raw is not None:
                plan = json.loads(raw) if isinstance(raw, str) else raw
                found: dict[str, Any] = plan[0]["Plan"]
                return found
            # a parameter whose type nothing in the statement gives (``$2 IS NULL``; the client declared it
            # when it ran the statement): declared as text, then planned again
            if generic:
                continue  # PostgreSQL 16+ could not plan it generically as it is: PREPARE it, as before 16
            if untyped is None or not 0 < untyped <= params or types[untyped - 1] == "text":
                break
            types[untyped - 1] = "text"
        self.failed += 1
        return None

    async def _plan(self, attempt: str, params: int) -> tuple[Any, int | None]:
        """(the plan, None), or (None, the parameter whose type could not be determined, if that was why)."""
        prepared = False
        try:
            async with self.conn.transaction():  # a savepoint: a failing statement does not end the run
                if not attempt.startswith("PREPARE"):
                    return await self.conn.fetchval(attempt), None
                await self.conn.fetch(attempt)
                prepared = True
                args = f"({', '.join(['NULL'] * params)})" if params else ""
                return await self.conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {_STMT}{args}"), None
        except asyncpg.IndeterminateDatatypeError as exc:
            found = _UNTYPED.search(str(exc))
            return None, int(found.group(1)) if found else None
        except asyncpg.PostgresError:
            return None, None
        finally:
            if prepared:
                await self.conn.execute(f"DEALLOCATE {_STMT}")

    def _fact(self, candidate: Candidate, costs: list[StatementCost], method: str) -> IndexCandidate:
        table = candidate.table
        name = index_name(table.name, candidate.columns)
        key = (table.oid, candidate.columns)
        return IndexCandidate(
            schema=table.schema, table=table.name, columns=candidate.columns, method=method,
            create_sql=f"CREATE INDEX CONCURRENTLY {name} ON {table.qualified} ({', '.join(candidate.quoted)});",
            reason=candidate.reason, statements=tuple(costs), table_rows=table.rows,
            table_size_bytes=table.size_bytes, writes_total=table.writes,
            writes_per_second=table.writes / self.observed if self.observed > 0 else 0.0,
            index_count=table.index_count, size_bytes=self.sizes.get(key), orders=self.orders.get(key, ()),
        )


def _serves_as_well(cost: float | None, own: StatementCost) -> bool:
    """The plan with another index (``cost``) is about as good as with the statement's own: within 10 % of its
    cost, or keeping :data:`_KEPT_SAVING` of its saving."""
    if cost is None or own.cost_after is None:
        return False
    return cost <= own.cost_after * _PREFIX_MARGIN or (
        own.cost_before - cost >= _KEPT_SAVING * (own.cost_before - own.cost_after))


def first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out, stack = [], [plan]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.get("Plans", []))
    return out


async def _reset(conn: asyncpg.Connection) -> None:
    try:
        await conn.fetch(sql.HYPO_RESET)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        pass  # the connection is being dropped; its hypothetical indexes go with the backend
