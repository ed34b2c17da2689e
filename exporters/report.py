"""The advice report of ``dbwatch advise``: recommendations per target, ranked, in text, Markdown, JSON or HTML.

Findings are ranked by their evidence's ``impact`` (a rough 0..1 score each rule sets: for a costed index,
the share of statement time it would save; for a setting or a security hole, the risk of data loss, outage
or reachable exposure), then by severity; the highest, across targets, open every report as "do these
first". The JSON shape is stable and documented in docs/advice.md, "The JSON shape": a list of
``{rule, target, severity, summary, description, evidence, sql, do_first}``.
The HTML report is one self-contained page (inline style, no script, nothing fetched).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from dbwatch.model import Finding

__all__ = ["FORMATS", "TargetAdvice", "do_first", "rank", "render"]

_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
DO_FIRST = 5  # findings in the "do these first" summary on top of every report
DO_FIRST_MIN_IMPACT = 0.05  # ... each worth at least this (5 % of database time saved, or its equivalent)


@dataclass(slots=True)
class TargetAdvice:
    target: str
    engine: str
    up: bool
    findings: list[Finding] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # collector -> error
    notes: list[str] = field(default_factory=list)


def rank(findings: Sequence[Finding]) -> list[Finding]:
    """By measured impact first (share of database time saved, risk of data loss or outage, reachable
    exposure: each rule's ``impact``), then severity."""
    return sorted(findings, key=lambda f: (-_impact(f), _SEVERITY_ORDER.get(str(f.severity), 3), f.rule, f.summary))


def do_first(advice: Sequence[TargetAdvice]) -> list[Finding]:
    """The few findings to act on first, across targets: the highest impact, at least DO_FIRST_MIN_IMPACT."""
    every = rank([f for a in advice for f in a.findings])
    return [f for f in every if _impact(f) >= DO_FIRST_MIN_IMPACT][:DO_FIRST]


def render(advice: Sequence[TargetAdvice], fmt: str) -> str:
    return FORMATS[fmt](advice)


def _impact(finding: Finding) -> float:
    value = finding.evidence.get("impact")
    return float(value) if isinstance(value, (int, float)) else 0.0


def _row(finding: Finding) -> dict[str, Any]:
    evidence = {k: v for k, v in finding.evidence.items() if k != "sql"}
    return {"rule": finding.rule, "target": finding.target, "severity": str(finding.severity),
            "summary": finding.summary, "description": finding.description, "evidence": evidence,
            "sql": finding.evidence.get("sql")}


def render_json(advice: Sequence[TargetAdvice]) -> str:
    # The list keeps its shape; the "do these first" summary is each row's do_first (1..5, else null).
    first = {id(f): n for n, f in enumerate(do_first(advice), 1)}
    return json.dumps([{**_row(f), "do_first": first.get(id(f))} for a in advice for f in rank(a.findings)],
                      indent=2, default=str)


def _first_line(finding: Finding) -> str:
    risk = f", risk {finding.evidence['risk']}" if finding.evidence.get("risk") else ""
    return f"{finding.target}: {finding.summary} (impact {_impact(finding):.2f}{risk})"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _plain_evidence(finding: Finding) -> list[tuple[str, str]]:
    out = []
    for key, value in finding.evidence.items():
        if key in ("sql", "statements", "lock", "risk"):
            continue
        out.append((key, _value(value)))
    return out


def _statements(finding: Finding) -> list[dict[str, Any]]:
    statements = finding.evidence.get("statements")
    return statements if isinstance(statements, list) else []


def render_text(advice: Sequence[TargetAdvice]) -> str:
    lines: list[str] = []
    first = do_first(advice)
    if first:
        lines += ["Do these first:"] + [f"  {n}. {_first_line(f)}" for n, f in enumerate(first, 1)] + [""]
    for a in advice:
        lines.append(f"== {a.target} ({a.engine}): {'up' if a.up else 'DOWN'}, "
                     f"{len(a.findings)} recommendation(s)")
        for collector, error in a.errors.items():
            lines.append(f"  error ({collector}): {error}")
        for note in a.notes:
            lines.append(f"  note: {note}")
        for n, f in enumerate(rank(a.findings), 1):
            lines.append("")
            lines.append(f"{n}. [{f.severity}] {f.rule}: {f.summary}")
            if f.description:
                lines.append(f"   {f.description}")
            for key, value in _plain_evidence(f):
                lines.append(f"   {key}: {value}")
            for s in _statements(f):
                lines.append(f"   statement {s.get('queryid')}: {_cost(s, '->')}{s.get('calls')} calls{_mean(s)}: "
                             f"{s.get('query')}")
            if f.evidence.get("sql"):
                lines.append(f"   SQL ({_risk(f)}): {f.evidence['sql']}")
        lines.append("")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(advice: Sequence[TargetAdvice]) -> str:
    lines = ["# dbwatch advice", ""]
    first = do_first(advice)
    if first:
        lines += ["**Do these first:**", ""] + [f"{n}. {_md_cell(_first_line(f))}" for n, f in enumerate(first, 1)]
        lines.append("")
    for a in advice:
        lines += [f"## {a.target} ({a.engine})", ""]
        if not a.up:
            lines += ["**The target could not be reached.**", ""]
        for collector, error in a.errors.items():
            lines.append(f"- error ({collector}): {error}")
        for note in a.notes:
            lines.append(f"- note: {note}")
        if a.errors or a.notes:
            lines.append("")
        if not a.findings:
            lines += ["No recommendations.", ""]
        for n, f in enumerate(rank(a.findings), 1):
            lines += [f"### {n}. {f.summary}", "", f"`{f.rule}` · **{f.severity}**", ""]
            if f.description:
                lines += [f.description, ""]
            lines += ["| evidence | value |", "|---|---|"]
            lines += [f"| {k} | {_md_cell(v)} |" for k, v in _plain_evidence(f)]
            lines.append("")
            for s in _statements(f):
                lines.append(f"- statement `{s.get('queryid')}` ({_cost(s, '→')}{s.get('calls')} calls{_mean(s)}): "
                             f"`{_md_cell(str(s.get('query')))}`")
            if _statements(f):
                lines.append("")
            if f.evidence.get("sql"):
                lines += [f"SQL ({_md_cell(_risk(f))}):", "", "```sql", str(f.evidence["sql"]), "```", ""]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#1d2430;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #d8dde6;padding-bottom:.2em;margin-top:2em}
.finding{border:1px solid #d8dde6;border-radius:8px;padding:.8em 1em;margin:1em 0;background:#fbfcfe}
.sev{display:inline-block;border-radius:4px;padding:0 .5em;font-size:.8em;font-weight:600;text-transform:uppercase}
.warning{background:#fff1c2;color:#7a5200}.info{background:#dcecff;color:#0b4a8f}
.critical{background:#ffd6d6;color:#8a0000}
.rule{color:#5b6472;font-family:ui-monospace,monospace;font-size:.85em;margin-left:.5em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #e3e7ee;padding:.2em .6em;
text-align:left;vertical-align:top}pre{background:#1d2430;color:#e9eef6;padding:.7em 1em;border-radius:6px;
overflow-x:auto}code{font-family:ui-monospace,monospace}.note{color:#5b6472}.down{color:#8a0000;font-weight:600}
"""


def render_html(advice: Sequence[TargetAdvice]) -> str:
    e = html.escape
    total = sum(len(a.findings) for a in advice)
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
             "<title>dbwatch advice</title>", f"<style>{_CSS}</style></head><body>",
             f"<h1>dbwatch advice</h1><p>{total} recommendation(s) for {len(advice)} target(s), ranked by "
             f"estimated impact, then severity.</p>"]
    first = do_first(advice)
    if first:
        parts.append("<h2>Do these first</h2><ol>" + "".join(f"<li>{e(_first_line(f))}</li>" for f in first)
                     + "</ol>")
    for a in advice:
        parts.append(f"<h2>{e(a.target)} <small>({e(a.engine)})</small></h2>")
        if not a.up:
            parts.append("<p class=\"down\">The target could not be reached.</p>")
        for collector, error in a.errors.items():
            parts.append(f"<p class=\"note\">error ({e(collector)}): {e(error)}</p>")
        for note in a.notes:
            parts.append(f"<p class=\"note\">note: {e(note)}</p>")
        if not a.findings:
            parts.append("<p>No recommendations.</p>")
        for f in rank(a.findings):
            severity = e(str(f.severity))
            parts.append(f"<div class=\"finding\"><div><span class=\"sev {severity}\">{severity}</span>"
                         f"<span class=\"rule\">{e(f.rule)}</span></div><h3>{e(f.summary)}</h3>")
            if f.description:
                parts.append(f"<p>{e(f.description)}</p>")
            rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _plain_evidence(f))
            parts.append(f"<table>{rows}</table>")
            if _statements(f):
                head = ("<tr><th>queryid</th><th>calls</th><th>ms/call</th><th>share of time</th>"
                        "<th>cost before</th><th>cost after</th><th>statement</th></tr>")
                body = "".join(
                    f"<tr><td>{e(str(s.get('queryid')))}</td><td>{e(str(s.get('calls')))}</td>"
                    f"<td>{e(_value(s.get('mean_ms')))}</td><td>{e(_value(s.get('time_share')))}</td>"
                    f"<td>{e(_value(s.get('cost_before')))}</td><td>{e(_value(s.get('cost_after')))}</td>"
                    f"<td><code>{e(str(s.get('query')))}</code></td></tr>" for s in _statements(f))
                parts.append(f"<table>{head}{body}</table>")
            if f.evidence.get("sql"):
                parts.append(f"<p class=\"note\">SQL ({e(_risk(f))}):</p>"
                             f"<pre><code>{e(str(f.evidence['sql']))}</code></pre>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


FORMATS: dict[str, Callable[[Sequence[TargetAdvice]], str]] = {
    "text": render_text, "markdown": render_markdown, "json": render_json, "html": render_html,
}


def _mean(statement: dict[str, Any]) -> str:
    """``, 12.5 ms/call, 4.2 % of time`` where measured."""
    out = ""
    if isinstance(statement.get("mean_ms"), (int, float)):
        out += f", {statement['mean_ms']:.4g} ms/call"
    if isinstance(statement.get("time_share"), (int, float)):
        out += f", {100 * statement['time_share']:.1f} % of time"
    return out


def _risk(finding: Finding) -> str:
    """``risk high, lock ...`` of the statement offered (rules/statement_risk.py sets both)."""
    return f"risk {finding.evidence.get('risk', 'unknown')}, lock: {finding.evidence.get('lock', 'unknown')}"


def _cost(statement: dict[str, Any], arrow: str) -> str:
    """``cost 17466 -> 70, `` where the server could cost the plan both ways; nothing where it could not
    (MariaDB reports no plan cost, and has no hypothetical indexes for an "after")."""
    before, after = statement.get("cost_before"), statement.get("cost_after")
    if before is None and after is None:
        return ""
    return f"cost {_value(before)} {arrow} {_value(after)}, "
