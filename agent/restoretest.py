"""``dbwatch backup restore-test -c CONFIG --target NAME [--source NAME]``: one restore drill now.

Progress lines go to stderr as the drill runs; the report (steps and durations, what was restored and up
to when, verification results, row counts) goes to stdout. Exit 0: the drill succeeded; 1: it failed;
2: bad input (an unreadable config, an unknown target or source, a source without ``restore_test:``), in
one line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from dbwatch.agent.config import load_or_report
from dbwatch.agent.logs import setup_logging
from dbwatch.model import BackupSpec, Target
from dbwatch.model.facts.restore import RestoreDrill

__all__ = ["add_backup_command", "render_report", "select"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class BadInput(Exception):
    """A one-line reason the command cannot run."""


def add_backup_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    backup = sub.add_parser("backup", help="backups")
    backup_sub = backup.add_subparsers(dest="backup_command", metavar="SUBCOMMAND", required=True)
    test = backup_sub.add_parser("restore-test", help="restore a backup source's newest backup into a throwaway "
                                 "server now, verify it, delete it, and report")
    test.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    test.add_argument("--target", required=True, metavar="NAME", help="the target whose backup is drilled")
    test.add_argument("--source", metavar="NAME", help="the backup source (default: the target's only one with "
                      "restore_test:)")
    test.set_defaults(handler=_restore_test)


def select(targets: list[Target], target_name: str, source: str | None) -> tuple[Target, BackupSpec]:
    """The target and the backup source to drill, or BadInput saying why not."""
    found = [t for t in targets if t.name == target_name]
    if not found:
        raise BadInput(f"no target named {target_name!r} (targets: {', '.join(t.name for t in targets) or 'none'})")
    target = found[0]
    drillable = [b for b in target.backups if b.restore_test is not None]
    if source is not None:
        named = [b for b in target.backups if b.name == source]
        if not named:
            raise BadInput(f"target {target_name} has no backup source {source!r} "
                           f"(sources: {', '.join(b.name for b in target.backups) or 'none'})")
        if named[0].restore_test is None:
            raise BadInput(f"backup source {source} of target {target_name} has no restore_test: settings "
                           "(workdir, rto) to drill with")
        return target, named[0]
    if len(drillable) != 1:
        which = "no backup source with restore_test:" if not drillable else \
            f"several sources with restore_test: ({', '.join(b.name for b in drillable)}); choose one with --source"
        raise BadInput(f"target {target_name} has {which}")
    return target, drillable[0]


def render_report(target: Target, drill: RestoreDrill) -> str:
    lines = [f"Restore drill of {drill.source} ({drill.kind}) for target {target.name}: "
             f"{'SUCCEEDED' if drill.ok else 'FAILED'}"]
    if drill.error:
        lines.append(f"  reason: {drill.error}")
    if drill.backup:
        lines.append(f"  backup: {drill.backup}" + (f" (finished {_when(drill.backup_finished_at)})"
                                                     if drill.backup_finished_at else ""))
    if drill.restored_to is not None:
        lines.append(f"  restored up to: {_when(drill.restored_to)}")
    lines.append("  steps:")
    for step in drill.steps:
        mark = "ok" if step.ok else "FAILED"
        detail = f"  {step.detail}" if step.detail else ""
        lines.append(f"    {step.name:<12} {step.seconds:8.1f}s  {mark}{detail}")
    verdict = "within" if drill.duration <= drill.rto_seconds else "OVER"
    lines.append(f"  restore time: {drill.duration:.1f}s ({verdict} the RTO of {drill.rto_seconds:g}s)")
    if drill.verified:
        lines.append("  verification:")
        lines.extend(f"    {'ok' if v.ok else 'FAILED':<6} {v.statement} -> {v.result}" for v in drill.verified)
    if drill.compared:
        lines.append("  row counts (restored / live estimate):")
        lines.extend(f"    {table}: {restored} / {'unknown' if live is None else live}"
                     for table, restored, live in drill.compared)
    return "\n".join(lines)


def _restore_test(args: argparse.Namespace) -> int:
    from dbwatch.collectors.restore_drill import run_drill

    config = load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    setup_logging("error", config.logging.format)
    try:
        target, spec = select(config.resolved_targets(), args.target, args.source)
    except BadInput as exc:
        print(f"dbwatch backup restore-test: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def progress(line: str) -> None:
        print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    drill = asyncio.run(run_drill(target, spec, progress))
    print(render_report(target, drill))
    return EXIT_OK if drill.ok else EXIT_FAILED


def _when(at: float | None) -> str:
    if at is None:
        return "unknown"
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
