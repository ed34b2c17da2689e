"""The lock and risk of every statement dbwatch offers, so that nothing is run blind.

:func:`with_risk` adds ``lock`` (what the statement takes and what it blocks) and ``risk`` (``low``,
``medium``, ``high``) to a recommendation's evidence from its ``sql``; a rule that knows better sets them
itself and is left alone. A text of several statements gets its worst one. Read-only text (a ``SELECT``
that finds what to fix) is ``low``. docs/advice.md, "Lock and risk", lists the classes.
"""

from __future__ import annotations

import dataclasses
import re

from dbwatch.model import Finding, FindingKind

__all__ = ["RISKS", "classify", "with_risk"]

RISKS = ("low", "medium", "high")

# (pattern on the statement text with comments removed, lock, risk), first match wins per statement.
_CLASSES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(p, re.I | re.S), lock, risk) for p, lock, risk in (
        (r"^\s*(SELECT|SHOW|EXPLAIN|WITH)\b", "none (read only)", "low"),
        (r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY", "SHARE UPDATE EXCLUSIVE: reads and writes go on; "
         "waits for running transactions; fails on lock_timeout without harm", "low"),
        (r"^\s*CREATE\s+(UNIQUE\s+)?INDEX", "SHARE: blocks writes to the table for the whole build", "high"),
        (r"^\s*DROP\s+INDEX\s+CONCURRENTLY", "SHARE UPDATE EXCLUSIVE: reads and writes go on; plans that used "
         "the index get slower", "medium"),
        (r"^\s*DROP\s+INDEX", "ACCESS EXCLUSIVE: blocks reads and writes until it commits", "high"),
        (r"^\s*REINDEX\b.*\bCONCURRENTLY", "SHARE UPDATE EXCLUSIVE: reads and writes go on; needs the index's "
         "size again in disk", "low"),
        (r"^\s*REINDEX\b", "ACCESS EXCLUSIVE on the index, SHARE on the table: blocks writes", "high"),
        (r"^\s*ALTER\s+TABLE\b.*\bDROP\s+(INDEX|KEY)\b.*\bLOCK\s*=\s*NONE", "online DDL (metadata only): reads "
         "and writes go on; plans that used the index get slower", "medium"),
        (r"^\s*ALTER\s+TABLE\b.*\bALGORITHM\s*=\s*(INPLACE|INSTANT)\b.*\bLOCK\s*=\s*NONE",
         "online DDL: reads and writes go on (a brief metadata lock at the start and the end)", "low"),
        (r"^\s*ALTER\s+TABLE\b.*\b(ALTER\s+COLUMN\b.*\bTYPE|ADD\s+COLUMN\b.*\bIDENTITY)",
         "ACCESS EXCLUSIVE for a full table rewrite: blocks reads and writes throughout", "high"),
        (r"^\s*ALTER\s+TABLE\b.*\bADD\s+PRIMARY\s+KEY\s+USING\s+INDEX",
         "ACCESS EXCLUSIVE, brief (a scan if a column must become NOT NULL)", "medium"),
        (r"^\s*ALTER\s+TABLE\b", "ACCESS EXCLUSIVE (MySQL: a table copy unless ALGORITHM says otherwise)", "high"),
        (r"^\s*(VACUUM\s+FULL|CLUSTER)\b", "ACCESS EXCLUSIVE for a full rewrite: blocks reads and writes", "high"),
        (r"^\s*ALTER\s+SEQUENCE\b", "brief lock on the sequence", "low"),
        (r"^\s*ALTER\s+SYSTEM\b.*\bssl\b", "none (a reload); clients asking sslmode=require start to succeed",
         "low"),
        (r"^\s*ALTER\s+SYSTEM\b", "none (a reload or, where marked, a restart)", "low"),
        (r"^\s*SET\s+GLOBAL\s+require_secure_transport", "none; refuses every TCP client that does not use TLS",
         "medium"),
        (r"^\s*SET\s+GLOBAL\b", "none (takes effect for new sessions; persist it in the option file)", "low"),
        (r"^\s*(ALTER\s+(ROLE|USER)|REVOKE|RENAME\s+USER|DROP\s+(USER|ROLE))\b",
         "none; sessions or applications relying on the privilege or account start to fail", "medium"),
        (r"^\s*(CREATE\s+(ROLE|USER)|GRANT)\b", "none", "low"),
        (r"^\s*CONFIG\s+SET\s+requirepass", "none; clients without the password are refused at once", "medium"),
        (r"^\s*CONFIG\s+SET\b", "none", "low"),
        (r"\.createIndex\(", "MongoDB >= 4.2: an exclusive lock only at the start and the end of the build", "low"),
        (r"^\s*CREATE\s+TABLE\b", "none on the existing table (a new table)", "low"),
        (r"^\s*ANALYZE\s+TABLE\b", "reads the whole table for its statistics (I/O for its size, no row changes); "
         "the optimizer's estimates change, so other plans on the table may change too", "medium"),
    ))

_HBA = re.compile(r"--\s*pg_hba\.conf", re.I)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def classify(sql: str) -> tuple[str, str]:
    """``(lock, risk)`` of the worst statement in ``sql``."""
    worst = ("none", "low")
    if _HBA.search(sql):
        worst = ("none (a reload); clients using the replaced method must use the new one", "medium")
    for statement in _COMMENT.sub(" ", sql).split(";"):
        if not statement.strip():
            continue
        for pattern, lock, risk in _CLASSES:
            if pattern.search(statement):
                break
        else:
            lock, risk = "unknown: rehearse it on a copy first", "medium"
        if RISKS.index(risk) > RISKS.index(worst[1]):
            worst = (lock, risk)
        elif worst == ("none", "low"):
            worst = (lock, risk)
    return worst


def with_risk(finding: Finding) -> Finding:
    """The finding with ``lock`` and ``risk`` in its evidence when it offers a statement and has neither."""
    sql = finding.evidence.get("sql")
    if finding.kind != FindingKind.RECOMMENDATION or not isinstance(sql, str) or not sql.strip() \
            or "risk" in finding.evidence:
        return finding
    lock, risk = classify(sql)
    return dataclasses.replace(finding, evidence={**finding.evidence, "lock": lock, "risk": risk})
