"""What a normalised statement's text and counters say about it, for the workload profile (engine-neutral).

Reads the text the statistics keep (pg_stat_statements, performance_schema digests), where literals are
``$1`` / ``?``: a ``LIKE $1`` does not show whether the pattern starts with ``%``, so ``like`` only says
that a LIKE is there; the rules weigh it with how many blocks each call touched. A point lookup is a read
that returns at most one row per call and compares a column for equality with a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dbwatch.model.facts.workload_profile import AGGREGATE, OTHER, POINT, SCAN, WRITE, StatementShape

__all__ = ["classify", "shape"]

_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.S)
_FIRST = re.compile(r"^\s*\(?\s*(\w+)")
_WRITE = frozenset({"insert", "update", "delete", "merge", "replace", "copy", "upsert"})
_READ = frozenset({"select", "with", "table", "values"})
_AGGREGATE = re.compile(r"\b(count|sum|avg|min|max|array_agg|string_agg|json_agg|jsonb_agg|group_concat)\s*\(|"
                        r"\bgroup\s+by\b", re.I)
_KEY = re.compile(r"\bwhere\s+\(?\s*(?:[\w\"`]+\.)?[\"`]?(\w+)[\"`]?\s*=\s*(?:\$\d+|\?|:\w+)", re.I)
_FEATURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ilike", re.compile(r"\bilike\b", re.I)),
    ("like", re.compile(r"(?<!i)\blike\b", re.I)),
    ("regex", re.compile(r"(?<![<>@#-])!?~\*?(?![>=])|\bsimilar\s+to\b|\bregexp(_like|_matches)?\b|\brlike\b", re.I)),
    ("fulltext", re.compile(r"@@|\bto_tsvector\b|\bto_tsquery\b|\bmatch\s*\(.*\)\s*against\b", re.I | re.S)),
    # MySQL/MariaDB spell these as functions: JSON_EXTRACT/JSON_VALUE/JSON_QUERY/JSON_EXISTS, JSON_CONTAINS
    ("json_key", re.compile(r"->>?|#>>?|\bjson_(extract|value|query|exists|contains_path)\b|\bjsonb?_extract_path",
                            re.I)),
    ("json_contains", re.compile(r"@>|\?\||\?&|\bjsonb_path_\w+|\bjson_(contains|overlaps)\b", re.I)),
    ("recursive", re.compile(r"\bwith\s+recursive\b", re.I)),
    ("for_update", re.compile(r"\bfor\s+(no\s+key\s+)?(update|share)\b", re.I)),
    ("session_state", re.compile(r"^\s*(set\s+(?!local\b)(session\s+)?\w+|listen\b|prepare\b|declare\b)|"
                                 r"\bpg_advisory_lock\b|\bcreate\s+temp(orary)?\s+table\b|\bget_lock\s*\(", re.I)),
)
_NAMES = re.compile(r"\b(?:from|join|update|into|table)\s+((?:[\w\"`]+\.)?[\w\"`]+)", re.I)


def classify(text: str, calls: int, rows: int) -> tuple[str, tuple[str, ...], str | None]:
    """(kind, features, key column) of one normalised statement."""
    body = _COMMENT.sub(" ", text)
    m = _FIRST.match(body)
    first = m.group(1).lower() if m else ""
    features = tuple(name for name, pattern in _FEATURES if pattern.search(body))
    key = (k.group(1).lower() if (k := _KEY.search(body)) else None)
    if first in _WRITE or (first == "with" and re.search(r"\)\s*(insert|update|delete)\b", body, re.I)):
        return WRITE, features, key
    if first not in _READ:
        return OTHER, features, key
    if _AGGREGATE.search(body):
        return AGGREGATE, features, key
    if key is not None and calls > 0 and rows <= calls:
        return POINT, features, key
    return SCAN, features, key


def _tables(text: str, known: frozenset[str]) -> tuple[str, ...]:
    out: list[str] = []
    for m in _NAMES.finditer(text):
        name = m.group(1).split(".")[-1].strip('"`').lower()
        if name in known and name not in out:
            out.append(name)
    return tuple(out)


def shape(text: str, calls: int, rows: int, seconds: float, blocks: int, known: Iterable[str]) -> StatementShape:
    kind, features, key = classify(text, calls, rows)
    return StatementShape(query=" ".join(text.split())[:300], calls=calls, rows=rows, seconds=seconds, blocks=blocks,
                          kind=kind, tables=_tables(text, frozenset(known)), features=features, key_column=key)
