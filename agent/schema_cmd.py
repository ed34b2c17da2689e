"""``dbwatch schema diff`` and ``dbwatch schema erd``: two targets' schemas compared as DDL, and one target's
entity-relationship diagram, both read from the live catalog by the target engine's ``schema`` collector
(PostgreSQL, MySQL/MariaDB: the engines whose registry entry has one).

``schema diff -c CONFIG A B`` prints the statements, in the targets' SQL dialect, that turn A's schema into
B's and exits 0 when the two are the same, 1 when they differ, 2 on a bad config, an unknown or unreachable
target, or targets of different dialects. ``schema erd``
prints tables with their key columns (primary, unique, foreign) and the foreign keys between them, as
Mermaid (``erDiagram``) or Graphviz dot.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import sys
import time

from dbwatch.agent.config import Config, load_or_report
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.engines import ENGINE_NAMES, engine
from dbwatch.model import Snapshot
from dbwatch.model.facts.schema import SchemaFingerprint, SchemaShape, Table
from dbwatch.model.target import CollectorSettings
from dbwatch.sqlshape.schema_diff import diff_statements

__all__ = ["add_schema_command", "render_dot", "render_mermaid"]

EXIT_SAME, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2


class SchemaError(Exception):
    """One line for the user: what could not be had, and why."""


def add_schema_command(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    schema = sub.add_parser("schema", help="schemas read from the live catalog: differences, ER diagrams")
    schema_sub = schema.add_subparsers(dest="schema_command", metavar="SUBCOMMAND", required=True)
    diff = schema_sub.add_parser("diff", help="print the DDL that turns TARGET_A's schema into TARGET_B's")
    diff.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    diff.add_argument("target_a", metavar="TARGET_A")
    diff.add_argument("target_b", metavar="TARGET_B")
    diff.set_defaults(handler=_diff)
    erd = schema_sub.add_parser("erd", help="print a target's entity-relationship diagram")
    erd.add_argument("-c", "--config", required=True, help="configuration file (YAML)")
    erd.add_argument("--target", required=True, metavar="NAME")
    erd.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    erd.set_defaults(handler=_erd)


def render_mermaid(shape: SchemaShape) -> str:
    lines = ["erDiagram"]
    for table in shape.tables:
        lines.append(f"    {_entity(table.key)} {{")
        for name, type_, marks in _key_columns(table):
            lines.append(f"        {_word(type_)} {_word(name)}{' ' + ','.join(marks) if marks else ''}")
        lines.append("    }")
    for table in shape.tables:
        for k in table.constraints:
            if k.kind == "f" and k.ref_table:
                lines.append(f'    {_entity(k.ref_table)} ||--o{{ {_entity(table.key)} : "{k.name}"')
    return "\n".join(lines) + "\n"


def render_dot(shape: SchemaShape) -> str:
    lines = ["digraph schema {", "    rankdir=LR;", "    node [shape=record, fontname=\"Helvetica\"];"]
    for table in shape.tables:
        rows = "".join(f"|{_record(name)} : {_record(type_)}{' ' + ','.join(marks) if marks else ''}\\l"
                       for name, type_, marks in _key_columns(table))
        lines.append(f'    "{table.key}" [label="{{{_record(table.key)}{rows}}}"];')
    for table in shape.tables:
        for k in table.constraints:
            if k.kind == "f" and k.ref_table:
                lines.append(f'    "{table.key}" -> "{k.ref_table}" [label="{_record(k.name)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


async def read_shape(config: Config, name: str) -> SchemaShape:
    targets = {t.name: t for t in config.resolved_targets()}
    if name not in targets:
        raise SchemaError(f"no target named {name!r} (targets: {', '.join(targets) or 'none'})")
    target = targets[name]
    spec = engine(target.engine)
    if "schema" not in spec.collectors:
        readable = ", ".join(n for n in ENGINE_NAMES if "schema" in engine(n).collectors)
        raise SchemaError(f"target {name!r} is a {target.engine} target; schema diff and erd read {readable}")
    # The engine's schema collector, run once whatever the target's schema_group (its fact holds the shape).
    default = spec.defaults["schema"]
    target = dataclasses.replace(target, collectors={"schema": CollectorSettings(default.interval, default.timeout)})
    session = spec.session(target)
    snapshot = Snapshot(target=name, engine=target.engine, collector="schema", started_at=time.time())
    try:
        await asyncio.wait_for(spec.collectors["schema"](target, session).collect(snapshot), default.timeout)
    except CollectorError as exc:
        raise SchemaError(f"target {name!r}: {exc}") from None
    except asyncio.TimeoutError:
        raise SchemaError(f"target {name!r}: the catalog was not read within {default.timeout:g} s") from None
    finally:
        await session.close()
    return snapshot.need(SchemaFingerprint).shape


def _key_columns(table: Table) -> list[tuple[str, str, list[str]]]:
    marks: dict[str, list[str]] = {}
    for kind, mark in (("p", "PK"), ("f", "FK"), ("u", "UK")):
        for k in table.constraints:
            if k.kind == kind:
                for column in k.columns:
                    if mark not in marks.setdefault(column, []):
                        marks[column].append(mark)
    return [(c.name, c.type, marks[c.name]) for c in table.columns if c.name in marks]


def _entity(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


def _word(text: str) -> str:
    """A Mermaid attribute's type or name: one word."""
    return re.sub(r"[^A-Za-z0-9_()\[\]-]", "_", text)


def _record(text: str) -> str:
    return re.sub(r'([{}|<>"\\])', r"\\\1", text)


def _diff(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_USAGE

    async def both() -> tuple[SchemaShape, SchemaShape]:
        a, b = await asyncio.gather(read_shape(config, args.target_a), read_shape(config, args.target_b))
        return a, b

    try:
        a, b = asyncio.run(both())
    except SchemaError as exc:
        print(f"dbwatch schema diff: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if a.dialect != b.dialect:
        print(f"dbwatch schema diff: {args.target_a} is a {a.dialect} schema and {args.target_b} a {b.dialect} one: "
              "there is no DDL between them", file=sys.stderr)
        return EXIT_USAGE
    statements = diff_statements(a, b)
    if not statements:
        print(f"-- {args.target_a} and {args.target_b} have the same schema (fingerprint {a.fingerprint()})")
        return EXIT_SAME
    print(f"-- turns {args.target_a} (fingerprint {a.fingerprint()}) into {args.target_b} "
          f"(fingerprint {b.fingerprint()}): {len(statements)} statement(s)")
    print("\n".join(statements))
    return EXIT_DIFFERENT


def _erd(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_USAGE
    try:
        shape = asyncio.run(read_shape(config, args.target))
    except SchemaError as exc:
        print(f"dbwatch schema erd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(render_dot(shape) if args.format == "dot" else render_mermaid(shape), end="")
    return EXIT_SAME
