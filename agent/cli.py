"""The ``dbwatch`` command: run the daemon, check targets once, validate a config.

Exit codes: 0 success; 1 ``check`` found a target down; 2 bad usage or a bad config (one line per
problem on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Sequence

from dbwatch.agent import __version__
from dbwatch.agent.config import Config, ConfigError, load_config
from dbwatch.agent.logs import setup_logging

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbwatch", description="Database monitoring agent and alerting daemon.")
    parser.add_argument("--version", action="version", version=f"dbwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent")
    run.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    run.set_defaults(handler=_run)

    check = sub.add_parser("check", help="collect every target once and print a summary")
    check.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    check.add_argument("--format", choices=("text", "json"), default="text")
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
    return parser


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


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return None


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

    return asyncio.run(run_daemon(args.config, config))


def _check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    setup_logging("error", config.logging.format)
    from dbwatch.agent.check import check_targets, render_text

    results = asyncio.run(check_targets(config.resolved_targets()))
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(render_text(results))
    return EXIT_OK if all(r.up for r in results) else EXIT_DOWN


if __name__ == "__main__":
    sys.exit(main())
