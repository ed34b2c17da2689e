"""Strategy findings about how data is accessed: text search, JSON documents, recursive (graph) queries
(docs/architecture-advice.md). Each statement offered names a column the catalog shows and an index the
table does not have yet."""

from __future__ import annotations

import re
from collections.abc import Iterable

from dbwatch.model import Finding
from dbwatch.model.facts.workload_profile import StatementShape, TableActivity, WorkloadProfile
from dbwatch.rules.advice_common import quote_ident
from dbwatch.rules.engine import TargetView
from dbwatch.rules.strategy_common import StrategyRule, human_bytes, strategy_finding
from dbwatch.rules.strategy_mysql import document_finding, search_finding

__all__ = ["SearchIndexRule", "DocumentModelRule", "GraphQueryRule"]

_PATTERN_COLUMN = re.compile(r"(?:[\w\"`]+\.)?[\"`]?(\w+)[\"`]?\s+(?:not\s+)?(?:i?like|~~?\*?|!~\*?|similar\s+to|rlike|"
                             r"regexp)\b|(?:[\w\"`]+\.)?[\"`]?(\w+)[\"`]?\s*!?~\*?\s", re.I)
_JSON_COLUMN = re.compile(r"(?:[\w\"`]+\.)?[\"`]?(\w+)[\"`]?\s*(?:->>?|#>>?|@>|\?\||\?&)", re.I)
#: MySQL/MariaDB's JSON functions on a column (a digest writes ``JSON_VALUE` ( `doc` , ? )``); a function's
#: first argument that is another JSON function (JSON_UNQUOTE(JSON_EXTRACT(...))) is looked into instead
_JSON_FUNCTION_COLUMN = re.compile(r"\bjson_\w+`?\s*\(\s*(?:[\w\"`]+\.)?[\"`]?(?!json_)(\w+)", re.I)
_PAGE = 8192


def _tables_named(profile: WorkloadProfile, s: StatementShape) -> list[TableActivity]:
    return [t for t in profile.tables if t.table.lower() in s.tables]


def _scans_table(s: StatementShape, t: TableActivity, engine: str) -> bool:
    """Each call read at least a quarter of the table, so the filter is not served by an index: PostgreSQL's
    blocks touched against the table's pages, MySQL/MariaDB's rows examined against its rows."""
    whole = t.rows if engine == "mysql" else t.size_bytes // _PAGE
    return s.calls > 0 and s.blocks / s.calls >= 0.25 * max(1, whole)


def _column(name: str, columns: tuple[str, ...], engine: str) -> str | None:
    """The catalog's spelling of a column a statement names; MySQL's names are case-insensitive (its digests
    upper-case some: ``ID``, ``BODY``)."""
    if engine != "mysql":
        return name if name in columns else None
    return next((c for c in columns if c.lower() == name.lower()), None)


def _target(t: TableActivity) -> str:
    return f"{quote_ident(t.schema)}.{quote_ident(t.table)}"


class SearchIndexRule(StrategyRule):
    """LIKE/ILIKE/regex filters that scan a large table: a trigram index, full-text search or a search engine."""

    name = "SearchIndexCandidate"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        min_rows = profile.threshold("min_table_rows", 10000)
        seen: set[tuple[str, str]] = set()
        for s in profile:
            kinds: list[str] = [f for f in ("ilike", "regex", "like") if f in s.features]
            if not kinds or not s.reads:
                continue
            names = [a or b for a, b in _PATTERN_COLUMN.findall(s.query)]
            for t in _tables_named(profile, s):
                for name in names:
                    column = _column(name, t.text_columns, view.engine)
                    if (column is None or column in t.search_indexed or t.rows < min_rows
                            or not _scans_table(s, t, view.engine) or (t.name, column) in seen):
                        continue
                    seen.add((t.name, column))
                    if view.engine == "mysql":
                        yield search_finding(self.name, view, profile, s, t, column, kinds)
                    else:
                        yield self._finding(view, profile, s, t, column, kinds)

    def _finding(self, view: TargetView, profile: WorkloadProfile, s: StatementShape, t: TableActivity,
                 column: str, kinds: list[str]) -> Finding:
        installed = "pg_trgm" in profile.extensions
        available = installed or "pg_trgm" in profile.extensions_available
        index = (f"CREATE INDEX CONCURRENTLY {quote_ident(t.table + '_' + column + '_trgm')} ON {_target(t)} "
                 f"USING gin ({quote_ident(column)} gin_trgm_ops);")
        sql = index if installed else f"CREATE EXTENSION IF NOT EXISTS pg_trgm;\n{index}" if available else None
        per_call = s.blocks / s.calls
        evidence = {"table": t.name, "column": column, "operators": kinds, "query": s.query, "calls": s.calls,
                    "seconds": round(s.seconds, 3), "blocks_per_call": round(per_call), "rows": t.rows,
                    "table_bytes": t.size_bytes, "pg_trgm": "installed" if installed else
                    "available" if available else "not available on the server"}
        return strategy_finding(
            self.name, view, f"{t.name}.{column}: {'/'.join(k.upper() for k in kinds)} reads "
            f"{per_call:.0f} blocks a call: a trigram index or full-text search",
            observed=f"{s.calls} calls of a {'/'.join(k.upper() for k in kinds)} filter on {column} took "
            f"{s.seconds:.2f} s, touching {per_call:.0f} blocks each of a {t.rows}-row table "
            f"({human_bytes(t.size_bytes)}): a scan each time; {column} has no trigram or full-text index.",
            action="a pg_trgm GIN index serves LIKE '%...%', ILIKE and regular expressions (the statement here); "
            "for word search with ranking, a tsvector column with a GIN index and @@; for fuzzy, faceted or "
            "multilingual search at scale, a search engine (OpenSearch, Meilisearch) fed from the table."
            + ("" if available else " pg_trgm is not available: install the server's contrib package first."),
            cost="the trigram index is often 1-3x the column's size and slows writes to the column; the build "
            "reads the whole table (without blocking writes, CONCURRENTLY).",
            wrong_when="the patterns are anchored at the start (LIKE 'abc%': a btree with text_pattern_ops does it "
            "cheaper) or shorter than three characters (trigrams cannot narrow them).",
            confidence=0.75 if "like" not in kinds or len(kinds) > 1 else 0.6,
            labels={"table": t.name, "column": column}, evidence=evidence, sql=sql,
            impact=min(0.5, s.seconds / max(profile.statements_since_seconds, 1.0)),
            lock=None if installed or not available else (
                "CREATE EXTENSION: no lock on the application's tables (needs CREATE on the database; pg_trgm is "
                "trusted, so a database owner may, PostgreSQL 13+); the index: SHARE UPDATE EXCLUSIVE, reads and "
                "writes go on, run it outside a transaction block", "low"))


class DocumentModelRule(StrategyRule):
    """JSON columns filtered by key or containment without an index on them."""

    name = "DocumentModelCandidate"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        min_rows = profile.threshold("min_table_rows", 10000)
        seen: set[tuple[str, str]] = set()
        for s in profile:
            if not {"json_key", "json_contains"}.intersection(s.features) or not s.reads:
                continue
            names = _JSON_COLUMN.findall(s.query)
            if view.engine == "mysql":
                names += _JSON_FUNCTION_COLUMN.findall(s.query)
            for t in _tables_named(profile, s):
                for name in names:
                    column = _column(name, t.json_columns, view.engine)
                    if (column is None or any(column in d for d in t.json_indexes) or t.rows < min_rows
                            or not _scans_table(s, t, view.engine) or (t.name, column) in seen):
                        continue
                    seen.add((t.name, column))
                    if view.engine == "mysql":
                        yield document_finding(self.name, view, profile, s, t, column)
                    else:
                        yield self._finding(view, profile, s, t, column)

    def _finding(self, view: TargetView, profile: WorkloadProfile, s: StatementShape, t: TableActivity,
                 column: str) -> Finding:
        jsonb = column not in t.json_plain
        contains = "json_contains" in s.features
        sql = (f"CREATE INDEX CONCURRENTLY {quote_ident(t.table + '_' + column + '_gin')} ON {_target(t)} "
               f"USING gin ({quote_ident(column)} jsonb_path_ops);") if jsonb and contains else None
        per_call = s.blocks / s.calls
        evidence = {"table": t.name, "column": column, "type": "jsonb" if jsonb else "json", "query": s.query,
                    "calls": s.calls, "seconds": round(s.seconds, 3), "blocks_per_call": round(per_call),
                    "rows": t.rows, "containment": contains}
        how = ("a GIN index with jsonb_path_ops serves @> containment (the statement here)" if sql else
               f"an expression index on the key the application reads (CREATE INDEX CONCURRENTLY ... "
               f"(({column}->>'key'))): the key is hidden by the statistics' normalisation, so no statement is "
               f"offered; or rewrite the filter as {column} @> '{{\"key\": value}}' and index with GIN")
        return strategy_finding(
            self.name, view, f"{t.name}.{column}: JSON filtered by key in {s.calls} calls, scanning each time",
            observed=f"{s.calls} calls filter {t.name} by keys inside {column} ({'jsonb' if jsonb else 'json'}), "
            f"{per_call:.0f} blocks a call of a {t.rows}-row table; no index covers {column}.",
            action=how + ("" if jsonb else f"; {column} is json: convert it to jsonb first (ALTER COLUMN ... TYPE "
                          "jsonb rewrites the table)") + ". Keys read by every statement are better promoted to "
                          "real columns.",
            cost="a GIN index is large (often half the column) and makes every write to the column dearer; "
            "expression indexes serve one key each.",
            wrong_when="the documents are small and few rows match any filter anyway, or the keys vary per "
            "statement (then only GIN helps, and only for containment).",
            confidence=0.7 if contains else 0.55, labels={"table": t.name, "column": column},
            evidence=evidence, sql=sql, impact=min(0.4, s.seconds / max(profile.statements_since_seconds, 1.0)))


class GraphQueryRule(StrategyRule):
    """Recursive queries over a self-referencing table: a hierarchy or graph in disguise."""

    name = "GraphQueryCandidate"

    def judge(self, view: TargetView, profile: WorkloadProfile) -> Iterable[Finding]:
        for t in profile.tables:
            if t.self_reference is None:
                continue
            recursive = [s for s in profile if "recursive" in s.features and t.table.lower() in s.tables]
            if not recursive:
                continue
            calls = sum(s.calls for s in recursive)
            seconds = sum(s.seconds for s in recursive)
            ltree = "ltree" in profile.extensions or "ltree" in profile.extensions_available
            evidence = {"table": t.name, "self_reference": t.self_reference, "recursive_calls": calls,
                        "recursive_seconds": round(seconds, 3), "rows": t.rows, "ltree_available": ltree,
                        "statements": [s.query for s in recursive[:5]]}
            yield strategy_finding(
                self.name, view, f"{t.name}: {calls} recursive queries walk {t.self_reference}: a closure table, "
                f"ltree or a graph store",
                observed=f"{len(recursive)} WITH RECURSIVE statement(s) over {t.name} (foreign key "
                f"{t.self_reference} to itself) ran {calls} times for {seconds:.2f} s; {t.rows} rows.",
                action=("for trees read far more than moved: a materialised path (ltree, with a GiST index: "
                        "subtree = one indexed lookup) or a closure table (ancestor, descendant, depth) kept by "
                        "triggers; for many-to-many graphs walked several hops deep, a graph store (Neo4j, "
                        "Apache AGE in PostgreSQL).") + ("" if ltree else " ltree is not available here."),
                cost="a schema change and write amplification: moving a subtree rewrites its paths or closure rows.",
                wrong_when="the trees are shallow and small (the recursive query is already cheap), or the "
                "hierarchy changes as often as it is read.",
                confidence=0.65 if calls >= 100 else 0.45, labels={"table": t.name}, evidence=evidence,
                impact=min(0.3, seconds / max(profile.statements_since_seconds, 1.0)))
