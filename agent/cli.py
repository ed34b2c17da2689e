"""The ``dbwatch`` command: run the daemon, check targets once, validate a config.

Exit codes: 0 success; 1 ``check`` found a target down; 2 bad usage or a bad config (one line per
problem on stderr, never a traceback); 141 the reader of stdout went away (``| head``), quietly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Coroutine, Sequence

from dbwatch.agent import __version__
from dbwatch.agent.logs import setup_logging

if TYPE_CHECKING:  # the configuration (pydantic, receivers) is imported by the commands that read one
    from dbwatch.agent.config import Config
    from dbwatch.agent.sharding import ShardingConfig

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2
EXIT_PIPE = 128 + 13  # stdout's reader went away: what a shell shows for a program killed by SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:
        # Answered before the subcommands' modules are imported, so that it costs almost nothing.
        print(f"dbwatch {__version__}")
        return EXIT_OK
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``dbwatch advise ... | head``): stop quietly, as a program killed by SIGPIPE
        # would; stdout goes to /dev/null so that flushing it at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbwatch", description="Database monitoring agent and alerting daemon.")
    parser.add_argument("--version", action="version", version=f"dbwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent")
    run.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    run.add_argument("--shard", type=_shard, metavar="I/N", help="watch only shard I of N (overrides sharding:)")
    run.set_defaults(handler=_run)

    check = sub.add_parser("check", help="collect every target once and print a summary")
    check.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--shard", type=_shard, metavar="I/N", help="check only shard I of N (overrides sharding:)")
    check.set_defaults(handler=_check)

    validate = sub.add_parser("validate", help="validate a configuration file")
    validate.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    validate.set_defaults(handler=_validate)
    rules = sub.add_parser("rules", help="the threshold rules")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    export = rules_sub.add_parser("export", help="write the threshold rules as a Prometheus alerting-rules file")
    export.add_argument("-c", "--config", help="apply this configuration's rule overrides and custom rules")
    export.add_argument("--format", choices=("prometheus",), default="prometheus")
    export.set_defaults(handler=_rules_export)

    advise = sub.add_parser("advise", help="collect each target once and print its recommendations, ranked")
    advise.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    advise.add_argument("--target", metavar="NAME", help="only this target")
    advise.add_argument("--format", choices=("text", "markdown", "json", "html"), default="text")
    from dbwatch.rules.catalog import SECTIONS
    advise.add_argument("--section", choices=sorted(SECTIONS), help="only this section's advice")
    advise.set_defaults(handler=_advise)
    _add_slowlog(sub)
    _add_migrate(sub)
    from dbwatch.agent.restoretest import add_backup_command
    add_backup_command(sub)
    from dbwatch.agent.runbook import add_runbook_command
    add_runbook_command(sub)
    from dbwatch.agent.schema_cmd import add_schema_command
    add_schema_command(sub)
    return parser


def _add_migrate(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    migrate = sub.add_parser("migrate", help="schema migrations")
    migrate_sub = migrate.add_subparsers(dest="migrate_command", metavar="SUBCOMMAND", required=True)
    lint = migrate_sub.add_parser("lint", help="the lock, rewrite and safe way of each statement of SQL migrations")
    lint.add_argument("files", nargs="+", metavar="FILE", help="SQL migration files, applied in this order")
    lint.add_argument("-c", "--config", help="configuration file (YAML), for --target")
    lint.add_argument("--target", metavar="NAME", help="judge against this target's live tables (needs -c)")
    lint.add_argument("--dialect", choices=("postgres", "mysql"), help="default: the target's, else guessed")
    lint.add_argument("--format", choices=("text", "json", "github"), default="text")
    lint.add_argument("--statements", action="store_true", help="text: also list every statement's lock")
    lint.add_argument("--sample", type=float, default=2.0, metavar="SECONDS",
                      help="interval between the two readings of write counters (default 2)")
    lint.set_defaults(handler=_migrate_lint)


def _migrate_lint(args: argparse.Namespace) -> int:
    from dbwatch.agent.migrate import LintError, render, run_lint

    if bool(args.config) != bool(args.target):
        print("migrate lint: -c CONFIG and --target NAME go together", file=sys.stderr)
        return EXIT_USAGE
    config = _load(args.config) if args.config else None
    if args.config and config is None:
        return EXIT_USAGE
    if config is not None:
        setup_logging("error", config.logging.format)
    try:
        report = run_lint(args.files, args.dialect, config, args.target, max(0.0, args.sample))
    except LintError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    output = render(report, args.format, args.statements)
    if output:
        print(output)
    return report.exit_code


def _advise(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    setup_logging("error", config.logging.format)
    from dbwatch.agent.advise import UnknownTarget, advise
    from dbwatch.exporters.report import render

    try:
        advice = asyncio.run(advise(config, args.target, args.section))
    except UnknownTarget as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(render(advice, args.format))
    if args.format == "json":  # the JSON on stdout stays a plain list; what it cannot hold goes to stderr
        for a in advice:
            for problem in [*(f"error ({c}): {e}" for c, e in a.errors.items()), *(f"note: {n}" for n in a.notes)]:
                print(f"{a.target}: {problem}", file=sys.stderr)
    return EXIT_OK if all(a.up for a in advice) else EXIT_DOWN


def _rules_export(args: argparse.Namespace) -> int:
    from dbwatch.rules.promexport import export_prometheus_rules
    from dbwatch.rules.spec import RulesConfig, load_rules

    if args.config:
        config = _load(args.config)
        if config is None:
            return EXIT_USAGE
        rules_config = config.rules
    else:
        rules_config = RulesConfig()
    sys.stdout.write(export_prometheus_rules(load_rules(rules_config)))
    return EXIT_OK


def _shard(text: str) -> ShardingConfig:
    from dbwatch.agent.sharding import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(path: str) -> Config | None:
    from dbwatch.agent.config import load_or_report

    return load_or_report(path)


def _validate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    print(f"{args.config}: ok ({len(config.targets)} target(s))")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    setup_logging(config.logging.level, config.logging.format)
    from dbwatch.agent.daemon import run_daemon

    return _serve(run_daemon(args.config, config, args.shard))


def _serve(main: Coroutine[Any, Any, int]) -> int:
    """Run the daemon on uvloop's event loop (libuv, in C) where uvloop is installed, asyncio's own otherwise.
    A fleet's agent is mostly round trips and their wake-ups: two agents of 700 targets side by side on the
    same servers, the one on uvloop spent 7 % less CPU per target-cycle (docs/performance.md)."""
    try:
        import uvloop
    except ImportError:  # a platform without it (uvloop has no Windows build): the same daemon, a little slower
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    setup_logging("error", config.logging.format)
    from dbwatch.agent.check import check_targets, render_text
    from dbwatch.agent.sharding import select_shard

    targets = select_shard(config.resolved_targets(), args.shard or config.sharding, lambda t: t.name)
    results = asyncio.run(check_targets(targets))
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(render_text(results))
    return EXIT_OK if all(r.up for r in results) else EXIT_DOWN



def _add_slowlog(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    slowlog = sub.add_parser("slowlog", help="slow query logs")
    slowlog_sub = slowlog.add_subparsers(dest="slowlog_command", metavar="SUBCOMMAND", required=True)
    analyze = slowlog_sub.add_parser("analyze", help="report the query classes of slow logs, costliest first")
    analyze.add_argument("files", nargs="+", metavar="FILE", help="MySQL/MariaDB slow logs or PostgreSQL logs")
    analyze.add_argument("--type", choices=("auto", "mysql", "postgres", "neo4j"), default="auto")
    analyze.add_argument("--format", choices=("text", "json"), default="text")
    analyze.add_argument("--limit", type=_non_negative, default=20, metavar="N",
                         help="classes shown (default 20; 0 for all)")
    analyze.set_defaults(handler=_slowlog_analyze)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _slowlog_analyze(args: argparse.Namespace) -> int:
    from dbwatch.agent import slowreport

    total = slowreport.wants_progress(args.files)
    progress = slowreport.Progress(total) if total else None
    try:
        report = slowreport.analyze_files(args.files, args.type, progress=progress)
    except slowreport.InputError as exc:
        print(f"dbwatch slowlog analyze: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if progress is not None:
        progress.close(report.bytes_read, report.events)
    if args.format == "json":
        sys.stdout.writelines(slowreport.json_chunks(report, args.limit))
        if report.parse_errors or report.lines_skipped:
            print(f"dbwatch slowlog analyze: skipped {report.parse_errors} malformed records and "
                  f"{report.lines_skipped} lines belonging to no event", file=sys.stderr)
    else:
        sys.stdout.writelines(slowreport.text_chunks(report, args.limit))
    for line in slowreport.unrecognised_lines(report):
        print(f"dbwatch slowlog analyze: {line}", file=sys.stderr)
    # bytes read and not one event recognised: the wrong file or the wrong --type, not an empty report
    return EXIT_DOWN if report.bytes_read and not report.events else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
