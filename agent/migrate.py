"""``dbwatch migrate lint FILE...``: what each statement of a migration does to the live database, and the
safe way to do it.

Files are read in the order given (a table created by an earlier file is new to a later one). The dialect is
``--dialect``, else the target's engine, else guessed from the text (backquotes, AUTO_INCREMENT, ENGINE=,
ALGORITHM= read as MySQL). With ``-c CONFIG --target NAME`` the tables' sizes, rows and writes per second,
the oldest open transaction, replication lag and the server version are read once through the target's
session (:mod:`dbwatch.collectors.schema_change`) and the severities follow them.

Exit codes: 0 nothing error-level, 1 something is, 2 unreadable input or an unreachable target (one line).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict
from typing import Sequence

from dbwatch.agent.config import Config
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.engines import engine
from dbwatch.collectors.schema_change import read_schema_change_facts
from dbwatch.model import SecretUnavailable, Target
from dbwatch.model.facts.schema_change import SchemaChangeFacts
from dbwatch.rules.migration_lint import LintFinding, lint, severity_rank
from dbwatch.sqlshape.ddl import Change, DdlError
from dbwatch.sqlshape.ddl_read import read_ddl

__all__ = ["LintError", "LintReport", "guess_dialect", "render", "run_lint"]

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2
_MYSQL_HINTS = re.compile(r"`|\bAUTO_INCREMENT\b|\bENGINE\s*=|\bALGORITHM\s*=|\bMODIFY\s+(COLUMN\s+)?\w|"
                          r"\bCHANGE\s+(COLUMN\s+)?\w+\s+\w+|\bRENAME\s+TABLE\b|\block_wait_timeout\b", re.I)


#: an acknowledged finding, e.g. the contract step's DROP COLUMN: ``-- dbwatch-lint: ignore drop-column``
_IGNORE = re.compile(r"(?:--|#)\s*dbwatch-lint:\s*ignore\b([\w\s,-]*)")


class LintError(Exception):
    """Input the lint cannot read (a file, its SQL, the target): the message is the one line to print."""


class LintReport:
    def __init__(self, dialect: str, files: list[tuple[str, list[Change]]], findings: list[LintFinding],
                 facts: SchemaChangeFacts | None) -> None:
        self.dialect, self.files, self.findings, self.facts = dialect, files, findings, facts

    @property
    def exit_code(self) -> int:
        return EXIT_FINDINGS if any(f.severity == "error" for f in self.findings) else EXIT_OK


def guess_dialect(text: str) -> str:
    return "mysql" if _MYSQL_HINTS.search(text) else "postgres"


def run_lint(paths: Sequence[str], dialect: str | None = None, config: Config | None = None,
             target: str | None = None, sample_seconds: float = 2.0) -> LintReport:
    texts = [(path, _read(path)) for path in paths]
    chosen = None
    if config is not None and target is not None:
        matches = [t for t in config.targets if t.name == target]
        if not matches:
            raise LintError(f"no target named {target!r} in the configuration")
        chosen = matches[0].to_target()
        dialect = dialect or engine(chosen.engine).dialect
        if dialect not in ("postgres", "mysql"):
            raise LintError(f"target {target!r} is a {chosen.engine} server; migrate lint reads SQL migrations "
                            "for PostgreSQL and MySQL/MariaDB")
    dialect = dialect or guess_dialect("\n".join(t for _, t in texts))
    files = []
    for path, text in texts:
        try:
            files.append((path, read_ddl(text, dialect)))
        except DdlError as exc:
            raise LintError(f"{path}: {exc} (read as {dialect})") from None
    facts = None
    if chosen is not None:
        tables = sorted({c.table for _, changes in files for c in changes if c.table and c.kind != "create_table"})
        facts = asyncio.run(_facts(chosen, tables, sample_seconds))
    ignored = {path: _ignores(text) for path, text in texts}
    findings = [f for f in lint(files, dialect, facts) if not _ignored(ignored[f.file], f)]
    return LintReport(dialect, files, findings, facts)


def render(report: LintReport, fmt: str, statements: bool = False) -> str:
    """The report as ``text``, ``json`` or ``github`` annotations; ``statements`` adds to the text every
    change with its lock, rewrite and scan (JSON always has them)."""
    findings = sorted(report.findings, key=lambda f: (f.file, f.line, -severity_rank(f.severity)))
    if fmt == "json":
        return json.dumps({
            "dialect": report.dialect,
            "server": asdict(report.facts.server) if report.facts is not None else None,
            "findings": [f.as_dict() for f in findings],
            "statements": [{"file": path, "line": c.line, "kind": c.kind, "table": c.table, "lock": c.lock,
                            "rewrites": c.rewrites, "scans": c.scans}
                           for path, changes in report.files for c in changes if c.kind != "set"],
        }, indent=2)
    if fmt == "github":
        return "\n".join(_annotation(f) for f in findings)
    lines = [_statement_line(path, c) for path, changes in report.files for c in changes
             if c.kind != "set"] if statements else []
    for f in findings:
        lines.append(f"{f.file}:{f.line}: {f.severity} [{f.check}] {f.message}")
        effect = [f"lock {f.lock}"] if f.lock and f.lock != "none" else []
        effect += ["rewrites the table"] if f.rewrites else ["scans the table"] if f.scans else []
        if effect:
            lines.append(f"    {'; '.join(effect)}")
        lines.extend(f"    live: {fact}" for fact in f.live)
        lines.append(f"    safe way: {f.safe}")
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
    changes = sum(len(c) for _, c in report.files)
    lines.append(f"{len(report.files)} file(s), {changes} change(s): {counts['error']} error(s), "
                 f"{counts['warning']} warning(s), {counts['info']} note(s)")
    return "\n".join(lines)


def _statement_line(path: str, change: Change) -> str:
    effect = "rewrites" if change.rewrites else "scans" if change.scans else "-"
    return f"{path}:{change.line}: {change.kind} {change.table or '-'}: lock {change.lock}, {effect}"


def _ignores(text: str) -> dict[int, set[str]]:
    """line -> the checks a ``-- dbwatch-lint: ignore CHECK[, CHECK]`` comment on it names ("*" for all)."""
    out: dict[int, set[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if (m := _IGNORE.search(line)) is not None:
            out[number] = {c.strip() for c in m.group(1).split(",") if c.strip()} or {"*"}
    return out


def _ignored(ignores: dict[int, set[str]], finding: LintFinding) -> bool:
    # the comment goes on the statement's first line or on the line just above it
    for line in (finding.line, finding.line - 1):
        checks = ignores.get(line, set())
        if "*" in checks or finding.check in checks:
            return True
    return False


def _annotation(f: LintFinding) -> str:
    level = {"error": "error", "warning": "warning"}.get(f.severity, "notice")
    text = f"{f.message}. Safe way: {f.safe}"
    if f.live:
        text += " Live: " + "; ".join(f.live)
    return f"::{level} file={_prop(f.file)},line={f.line},title={_prop(f.check)}::{_data(text)}"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise LintError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise LintError(f"{path}: not UTF-8 text") from None


async def _facts(target: Target, tables: list[str], sample_seconds: float) -> SchemaChangeFacts:
    registered = engine(target.engine)
    if registered.dialect is None:
        raise LintError(f"target {target.name}: a {target.engine} target runs no SQL migrations")
    session = registered.session(target)
    try:
        return await asyncio.wait_for(read_schema_change_facts(session, registered.dialect, tables, sample_seconds),
                                      timeout=30 + sample_seconds)
    except (CollectorError, SecretUnavailable) as exc:
        raise LintError(f"target {target.name}: {exc}") from None
    except TimeoutError:
        raise LintError(f"target {target.name}: no answer within {30 + sample_seconds:g}s") from None
    finally:
        await session.close()
