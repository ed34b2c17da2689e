"""What the query, tuning, security and schema rule families share: how a recommendation is built.

Every finding is a ``recommendation`` (never paged) whose evidence holds the numbers behind it, ``sql`` (the
statement or setting to apply; ``None`` where there is nothing to run) and ``impact``, a rough 0..1 score the
report ranks by (docs/advice.md, "Query hints, tuning and security").
"""

from __future__ import annotations

from typing import Any, Mapping

from dbwatch.model import Finding, FindingKind, Severity
from dbwatch.rules.engine import TargetView

__all__ = ["recommend", "size", "quote_ident", "quote_literal"]


def recommend(rule: str, view: TargetView, severity: Severity, summary: str, description: str,
              labels: Mapping[str, str], evidence: Mapping[str, Any], sql: str | None, impact: float) -> Finding:
    impact = round(max(0.0, min(1.0, impact)), 6)
    return Finding(rule=rule, target=view.target, kind=FindingKind.RECOMMENDATION, severity=severity,
                   summary=summary, description=description, labels={**view.labels, **labels},
                   evidence={**evidence, "sql": sql, "impact": impact}, value=impact)


def size(n: float) -> str:
    """Bytes as a setting is written, whole units of 1024 only: ``8GB``, ``1536MB``, ``64kB``."""
    n = int(n)
    for unit, scale in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if n >= scale and (n % scale == 0 or unit in ("MB", "kB")):
            return f"{n // scale}{unit}"
    return f"{n}B"


def quote_ident(name: str) -> str:
    return name if name.isidentifier() and name.islower() else '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
