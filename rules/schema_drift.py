"""SchemaDrift: targets that share a ``schema_group`` (staging and production, shards that must match) whose
schemas differ. Each target of the group reads its own fingerprint and its peers' (the ``schema`` collector's
fact); one whose schema differs from a peer's raises the alert, naming the peers and the first statements of
the difference in the targets' SQL dialect (``dbwatch schema diff`` prints all of them). Peers of another
dialect are not compared (a PostgreSQL and a MariaDB schema differ in every type name)."""

from __future__ import annotations

from typing import Iterable

from dbwatch.model import Finding, FindingKind, Severity
from dbwatch.model.facts.schema import SchemaFingerprint
from dbwatch.rules.engine import TargetView
from dbwatch.rules.spec import RulesConfig
from dbwatch.sqlshape.schema_diff import diff_statements

__all__ = ["SchemaDriftRule", "make_rules"]

#: statements of the difference shown in the description (the evidence holds up to 50)
SHOWN = 5


def make_rules(config: RulesConfig) -> list[SchemaDriftRule]:
    return [SchemaDriftRule()]


class SchemaDriftRule:
    name = "SchemaDrift"
    engines: tuple[str, ...] = ("postgres", "mysql")

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        own = view.fact(SchemaFingerprint)
        if own is None or not own.group:
            return []
        differing: list[tuple[str, SchemaFingerprint]] = []
        for peer in view.peers():
            other = peer.fact(SchemaFingerprint)
            if other is not None and other.group == own.group and other.fingerprint != own.fingerprint \
                    and other.shape.dialect == own.shape.dialect:
                differing.append((peer.target, other))
        if not differing:
            return []
        first_peer, first = differing[0]
        statements = diff_statements(first.shape, own.shape)
        names = ", ".join(name for name, _ in differing)
        shown = "\n".join(statements[:SHOWN]) + ("\n…" if len(statements) > SHOWN else "")
        return [Finding(
            rule=self.name, target=view.target, kind=FindingKind.ALERT, severity=Severity.WARNING,
            summary=f"The schema of {view.target} differs from {names} (schema_group {own.group})",
            description=(f"{view.target}'s schema (fingerprint {own.fingerprint}) is not the one of {names} in "
                         f"schema_group {own.group}. What turns {first_peer}'s schema into {view.target}'s "
                         f"({len(statements)} statement(s); `dbwatch schema diff -c CONFIG {first_peer} "
                         f"{view.target}` prints them all):\n{shown}"),
            labels={"schema_group": own.group},
            evidence={"fingerprint": own.fingerprint, "differs_from": [name for name, _ in differing],
                      "statements": statements[:50]},
            value=float(len(differing)),
        )]
