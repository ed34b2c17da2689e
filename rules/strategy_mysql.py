"""The MySQL/MariaDB side of the strategy findings that read the catalog (docs/architecture-advice.md): what
``SearchIndexCandidate``, ``DocumentModelCandidate``, ``TimeSeriesLayout`` and ``ShardKeyCandidate`` advise
there, once the engine-neutral rules (strategy_access, strategy, strategy_shard) have found the pattern.

What a statement's lock is was tried on MariaDB 10.11, not assumed: ``ADD FULLTEXT INDEX`` refuses
``LOCK=NONE`` ("Fulltext index creation requires a lock. Try LOCK=SHARED") and, for a table's first
FULLTEXT index, ``ALGORITHM=NOCOPY`` ("Try ALGORITHM=INPLACE": it rebuilds the table to add the hidden
FTS_DOC_ID column); ``PARTITION BY`` on an existing table refuses ``ALGORITHM=INPLACE`` and, with COPY,
``LOCK=NONE`` (so no partitioning statement is offered).
"""

from __future__ import annotations

from dbwatch.model import Finding
from dbwatch.model.facts.workload_profile import StatementShape, TableActivity, WorkloadProfile
from dbwatch.rules.engine import TargetView
from dbwatch.rules.strategy_common import human_bytes, strategy_finding

__all__ = ["search_finding", "document_finding", "time_series_finding", "shard_action", "ident"]


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _share(s: StatementShape, profile: WorkloadProfile, cap: float) -> float:
    return min(cap, s.seconds / max(profile.statements_since_seconds, 1.0))


def search_finding(rule: str, view: TargetView, profile: WorkloadProfile, s: StatementShape, t: TableActivity,
                   column: str, kinds: list[str]) -> Finding:
    per_call = s.blocks / s.calls
    operators = "/".join("REGEXP" if k == "regex" else k.upper() for k in kinds)
    innodb = t.storage_engine.lower() == "innodb"
    first = not t.search_indexed  # the table's first FULLTEXT index rebuilds it
    name = ident(f"{t.table}_{column}_ft")
    sql = (f"ALTER TABLE {ident(t.schema)}.{ident(t.table)} ADD FULLTEXT INDEX {name} ({ident(column)}), "
           "ALGORITHM=INPLACE, LOCK=SHARED;") if innodb else None
    lock = ("SHARED (verified on MariaDB 10.11: LOCK=NONE is refused for a FULLTEXT index): reads go on, writes "
            "wait for the whole build" + ("; the table's first FULLTEXT index also rebuilds the table (a hidden "
                                          "FTS_DOC_ID column is added)" if first else ""), "high") if sql else None
    evidence = {"table": t.name, "column": column, "operators": kinds, "query": s.query, "calls": s.calls,
                "seconds": round(s.seconds, 3), "rows_examined_per_call": round(per_call), "rows": t.rows,
                "table_bytes": t.size_bytes, "storage_engine": t.storage_engine, "rebuilds_table": first}
    return strategy_finding(
        rule, view, f"{t.name}.{column}: {operators} examines {per_call:.0f} rows a call: a FULLTEXT index "
        f"with MATCH ... AGAINST, or a search engine",
        observed=f"{s.calls} calls of a {operators} filter on {column} took {s.seconds:.2f} s, examining "
        f"{per_call:.0f} rows each of a {t.rows}-row table ({human_bytes(t.size_bytes)}): a scan each time; "
        f"{column} has no FULLTEXT index.",
        action=("an InnoDB FULLTEXT index on the column (the statement here), and the filter rewritten as "
                f"MATCH({column}) AGAINST ('+word*' IN BOOLEAN MODE): LIKE and REGEXP never use it"
                if innodb else f"a FULLTEXT index with MATCH({column}) AGAINST (...) instead of LIKE/REGEXP; "
                f"{t.name} is {t.storage_engine or 'not InnoDB'}, whose FULLTEXT index locks the whole table "
                "while it builds, so no statement is offered")
        + "; for substring, fuzzy, faceted or multilingual search at scale, a search engine (OpenSearch, "
        "Meilisearch, Manticore) fed from the table.",
        cost="the build blocks writes to the table (LOCK=SHARED) for its whole length"
        + (" and rebuilds the table" if first else "") + "; one FULLTEXT index per ALTER; every write to the "
        "column updates the index's auxiliary tables (OPTIMIZE TABLE with innodb_optimize_fulltext_only merges "
        "them); and every statement using it must be rewritten.",
        wrong_when="the patterns search inside words ('%bc%' in 'abcd': full-text matches whole words and "
        "prefixes only), are shorter than innodb_ft_min_token_size (3) or stopwords, or are anchored at the "
        "start (LIKE 'abc%': a plain index serves it).",
        confidence=0.55 if kinds == ["like"] else 0.45, labels={"table": t.name, "column": column},
        evidence=evidence, sql=sql, impact=_share(s, profile, 0.5), lock=lock)


def document_finding(rule: str, view: TargetView, profile: WorkloadProfile, s: StatementShape, t: TableActivity,
                     column: str) -> Finding:
    per_call = s.blocks / s.calls
    contains = "json_contains" in s.features
    evidence = {"table": t.name, "column": column, "type": "json", "query": s.query, "calls": s.calls,
                "seconds": round(s.seconds, 3), "rows_examined_per_call": round(per_call), "rows": t.rows,
                "containment": contains}
    return strategy_finding(
        rule, view, f"{t.name}.{column}: JSON filtered by key in {s.calls} calls, scanning each time",
        observed=f"{s.calls} calls filter {t.name} by keys inside {column} (JSON), examining {per_call:.0f} rows "
        f"a call of a {t.rows}-row table; no index on a generated column covers {column}.",
        action=f"a generated column on the key the application reads (ADD COLUMN {column}_key ... AS "
        f"(JSON_VALUE({column}, '$.key')) VIRTUAL) with an index on it, and the filter written on that column; "
        "MySQL 8.0.13+ also takes a functional index on the expression (CAST(... AS CHAR(n))), and 8.0.17+ a "
        "multi-valued index for JSON_CONTAINS/MEMBER OF on arrays. The key is hidden by the digest's "
        "normalisation, so no statement is offered. Keys read by every statement are better promoted to real "
        "columns.",
        cost="the virtual column is added without a copy; its index is built online but makes every write to "
        f"{column} compute and store the key; one index serves one key.",
        wrong_when="the documents are small and few rows match any filter anyway, or the keys vary per "
        "statement (then a child table of key/value rows, or a document store, fits better)"
        + (", or the containment tests arrays, which MariaDB cannot index (a child table can)." if contains
           else "."),
        confidence=0.45 if contains else 0.55, labels={"table": t.name, "column": column},
        evidence=evidence, impact=_share(s, profile, 0.4))


def time_series_finding(rule: str, view: TargetView, t: TableActivity, growth: float | None,
                        range_statements: list[str]) -> Finding:
    assert t.time_column is not None and t.time_correlation is not None
    column = t.time_column
    evidence = {"table": t.name, "time_column": column, "correlation": round(t.time_correlation, 4),
                "correlation_basis": f"Spearman rank correlation with the primary key {t.time_sampled_by} over "
                f"{t.time_sampled_rows} rows sampled along it",
                "inserts": t.inserts, "updates": t.updates, "deletes": t.deletes, "rows": t.rows,
                "table_bytes": t.size_bytes, "growth_bytes_per_day": round(growth) if growth else None,
                "range_statements": range_statements}
    return strategy_finding(
        rule, view, f"{t.name} is append-only and ordered by {column}: a time-series layout",
        observed=f"{t.inserts} inserts, {t.updates} updates, {t.deletes} deletes since the server started; "
        f"{column} follows the primary key {t.time_sampled_by} (rank correlation {t.time_correlation:.2f} over "
        f"{t.time_sampled_rows} sampled rows); {human_bytes(t.size_bytes)}"
        + (f", growing about {human_bytes(growth)}/day." if growth else "."),
        action=f"PARTITION BY RANGE COLUMNS({column}) (a TIMESTAMP column: RANGE (UNIX_TIMESTAMP({column}))), "
        "one partition per day, week or month, new ones split off a MAXVALUE partition ahead of time "
        "(REORGANIZE PARTITION), and retention by ALTER TABLE ... DROP PARTITION instead of DELETE"
        + (" (deletes seen: that is what they become)" if t.deletes else "")
        + f". Every unique key, the primary key included, must contain {column} (PRIMARY KEY "
        f"({t.time_sampled_by}, {column})). MySQL/MariaDB have no BRIN: the clustered primary key "
        "already keeps the rows in time order.",
        cost="a migration to plan, nothing to run here: partitioning an existing table is a table copy that "
        "blocks writes throughout (MariaDB 10.11 refuses INPLACE and LOCK=NONE for it), so copy online "
        "(pt-online-schema-change, or a new partitioned table filled in batches and swapped by RENAME TABLE); "
        "partitioned InnoDB tables cannot have foreign keys, either way.",
        wrong_when="rows arrive far out of time order, queries look rows up by key without a time range (each "
        "partition is searched), or the table takes foreign keys.",
        confidence=0.7 if t.deletes else 0.55, labels={"table": t.name}, evidence=evidence,
        impact=min(0.4, t.size_bytes / 2**34))


def shard_action(column: str) -> str:
    return (f"when one server no longer holds it: PARTITION BY KEY ({column}) first (same server; every unique "
            f"key must then contain {column}), then distribute by it: Vitess (a hash vindex on {column}), "
            f"MariaDB's Spider engine, or application-level shards keyed by {column}; keep the tables joined on "
            "it in the same shard.")
