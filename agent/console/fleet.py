"""The fleet overview: one row per target with its key numbers, filtered, sorted and paged on the server.

Rows are built from what the store already holds (the latest snapshot of each collector, the alerts in
memory): no query reaches a database. Filtering and sorting happen here, on the query string, so a fleet
of thousands renders one page of rows, not thousands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from dbwatch.agent.console.sources import Sources, fact
from dbwatch.model import AlertState, Snapshot
from dbwatch.model.facts.common import ReplicationLink, Summary
from dbwatch.model.facts.statements import Statements

__all__ = ["SORTS", "Query", "fleet_page", "fleet_rows", "parse_query"]

#: sort keys the overview accepts, and each row's value for it (None sorts last)
SORTS = ("problems", "name", "engine", "role", "alerts", "connections", "lag", "top_statement", "disk")
STATES = ("", "up", "down", "alerting", "unknown")
PER_PAGE, MAX_PER_PAGE = 50, 500
_FRACTION = re.compile(r"^\s*(\d+)\s*/\s*(\d+)")
_SEVERITY_RANK = {"critical": 0, "error": 0, "warning": 1}


@dataclass(frozen=True)
class Query:
    q: str = ""
    state: str = ""
    engine: str = ""
    sort: str = "problems"
    desc: bool = False
    page: int = 1
    per: int = PER_PAGE

    def params(self, **change: Any) -> dict[str, str]:
        """The query string of this query with ``change`` applied (for links: sort headers, pages)."""
        values = {"q": self.q, "state": self.state, "engine": self.engine, "sort": self.sort,
                  "desc": "1" if self.desc else "", "page": str(self.page), "per": str(self.per)}
        values.update({k: ("1" if v is True else "" if v is False else str(v)) for k, v in change.items()})
        defaults = {"sort": "problems", "page": "1", "per": str(PER_PAGE)}
        return {k: v for k, v in values.items() if v and defaults.get(k) != v}


def parse_query(args: Mapping[str, str]) -> tuple[Query, list[str]]:
    """The overview's query string; what cannot be understood is reported (one line each) and defaulted."""
    problems = []
    sort = args.get("sort", "problems") or "problems"
    if sort not in SORTS:
        problems.append(f"sort={sort!r}: expected one of {', '.join(SORTS)}")
        sort = "problems"
    state = args.get("state", "")
    if state not in STATES:
        problems.append(f"state={state!r}: expected one of up, down, alerting, unknown")
        state = ""
    numbers = {}
    for name, default, top in (("page", 1, 1_000_000), ("per", PER_PAGE, MAX_PER_PAGE)):
        raw = args.get(name, "")
        try:
            numbers[name] = min(top, max(1, int(raw))) if raw else default
        except ValueError:
            problems.append(f"{name}={raw!r}: expected a whole number")
            numbers[name] = default
    return Query(q=args.get("q", "").strip(), state=state, engine=args.get("engine", "").strip(), sort=sort,
                 desc=args.get("desc", "") in ("1", "true", "yes"), page=numbers["page"], per=numbers["per"]), problems


def fleet_rows(sources: Sources) -> list[dict[str, Any]]:
    """Every target's row (unsorted)."""
    firing: dict[str, list[str]] = {}
    pending: dict[str, int] = {}
    for alert in sources.alerts():
        if alert.state == AlertState.FIRING:
            firing.setdefault(alert.target, []).append(alert.severity)
        elif alert.state == AlertState.PENDING:
            pending[alert.target] = pending.get(alert.target, 0) + 1
    rows = []
    for name, target in sources.targets().items():
        snapshots = sources.latest(name)
        severities = firing.get(name, [])
        up = sources.up(name)
        row = {
            "name": name,
            "engine": target.engine,
            "labels": dict(target.labels),
            "up": up,
            "version": next((s.version for s in snapshots if s.version), None),
            "alerts_firing": len(severities),
            "alerts_pending": pending.get(name, 0),
            "worst_severity": min(severities, key=lambda s: _SEVERITY_RANK.get(s, 2)) if severities else None,
            "error": next((s.error for s in snapshots if not s.ok and s.error), None),
            **_cached_numbers(sources, name, snapshots),
        }
        row["problem_rank"] = _problem_rank(row)
        rows.append(row)
    return rows


def key_numbers(snapshots: list[Snapshot]) -> dict[str, Any]:
    """Role, connections used (ratio), replication lag (s), the top statement's share of time, disk used."""
    link = fact(snapshots, ReplicationLink)
    summaries = [s.facts[Summary].numbers for s in snapshots if s.ok and Summary in s.facts]
    role = link.role if link is not None else next((str(n["role"]) for n in summaries if "role" in n), None)
    connections = None
    for numbers in summaries:
        for key in ("connections", "clients"):
            match = _FRACTION.match(str(numbers.get(key, "")))
            if match and int(match.group(2)):
                connections = int(match.group(1)) / int(match.group(2))
                break
        if connections is not None:
            break
    lag = link.lag_seconds if link is not None and role != "primary" else None
    statements = fact(snapshots, Statements)
    top_share = None
    if statements:
        times = [s.delta_time_seconds for s in statements]
        total = sum(times)
        top_share = max(times) / total if total > 0 else None
    disk = None
    for snapshot in snapshots:
        family = snapshot.family("dbwatch_host_filesystem_used_ratio") if snapshot.ok else None
        if family is not None and family.samples:
            disk = max(value for _, value in family.samples)
    return {"role": role, "connections_used": connections, "replication_lag_seconds": lag,
            "top_statement_share": top_share, "disk_used": disk}


def _cached_numbers(sources: Sources, name: str, snapshots: list[Snapshot]) -> dict[str, Any]:
    """:func:`key_numbers`, computed again only when one of the target's latest snapshots changed."""
    cached = sources.numbers_cache.get(name)
    if cached is not None and len(cached[0]) == len(snapshots) and all(a is b for a, b in zip(cached[0], snapshots)):
        return cached[1]
    numbers = key_numbers(snapshots)
    sources.numbers_cache[name] = (snapshots, numbers)
    return numbers


def fleet_page(rows: list[dict[str, Any]], query: Query) -> dict[str, Any]:
    """Filter, sort and page ``rows``: ``{"total", "matched", "page", "pages", "rows", "engines"}``."""
    engines = sorted({r["engine"] for r in rows})
    matched = [r for r in rows if _matches(r, query)]
    key = _SORT_KEYS[query.sort]
    present = [r for r in matched if key(r) is not None]
    missing = [r for r in matched if key(r) is None]
    present.sort(key=lambda r: (key(r), r["name"]), reverse=query.desc)
    missing.sort(key=lambda r: r["name"])
    ordered = present + missing
    pages = max(1, -(-len(ordered) // query.per))
    page = min(query.page, pages)
    start = (page - 1) * query.per
    return {"total": len(rows), "matched": len(ordered), "page": page, "pages": pages, "per": query.per,
            "rows": ordered[start:start + query.per], "engines": engines,
            "down": sum(1 for r in rows if r["up"] is False),
            "alerting": sum(1 for r in rows if r["alerts_firing"])}


def _problem_rank(row: dict[str, Any]) -> int:
    """0 down, 1 a critical alert firing, 2 another alert firing, 3 pending, 4 not yet collected, 5 fine."""
    if row["up"] is False:
        return 0
    if row["alerts_firing"]:
        return 1 if _SEVERITY_RANK.get(row["worst_severity"], 2) == 0 else 2
    if row["alerts_pending"]:
        return 3
    return 4 if row["up"] is None else 5


def _matches(row: dict[str, Any], query: Query) -> bool:
    if query.engine and row["engine"] != query.engine:
        return False
    if query.state == "up" and row["up"] is not True:
        return False
    if query.state == "down" and row["up"] is not False:
        return False
    if query.state == "unknown" and row["up"] is not None:
        return False
    if query.state == "alerting" and not row["alerts_firing"]:
        return False
    for word in query.q.lower().split():
        if "=" in word:  # a label: env=prod
            name, _, value = word.partition("=")
            if str(row["labels"].get(name, "")).lower() != value:
                return False
        elif word not in row["name"].lower() and word != row["engine"] and word != (row["role"] or ""):
            return False
    return True


_SORT_KEYS: dict[str, Any] = {
    "problems": lambda r: (r["problem_rank"], -r["alerts_firing"]),
    "name": lambda r: r["name"],
    "engine": lambda r: r["engine"],
    "role": lambda r: r["role"],
    "alerts": lambda r: -(r["alerts_firing"] * 1000 + r["alerts_pending"]) or None,
    "connections": lambda r: None if r["connections_used"] is None else -r["connections_used"],
    "lag": lambda r: None if r["replication_lag_seconds"] is None else -r["replication_lag_seconds"],
    "top_statement": lambda r: None if r["top_statement_share"] is None else -r["top_statement_share"],
    "disk": lambda r: None if r["disk_used"] is None else -r["disk_used"],
}
