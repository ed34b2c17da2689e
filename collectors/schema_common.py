"""What the ``schema`` collectors of every engine leave behind: the fingerprint as a metric, the table count,
and the shape as the fact ``SchemaDrift`` compares across a ``schema_group``."""

from __future__ import annotations

from dbwatch.model import Snapshot, gauge
from dbwatch.model.facts.schema import SchemaFingerprint, SchemaShape

__all__ = ["record_shape"]


def record_shape(snapshot: Snapshot, group: str | None, shape: SchemaShape) -> None:
    fingerprint = shape.fingerprint()
    info = gauge("dbwatch_schema_fingerprint_info",
                 "The fingerprint of the database's schema (tables, columns, types, indexes, constraints) (1)",
                 ("schema_group", "fingerprint"))
    info.add((group or "", fingerprint), 1.0)
    tables = gauge("dbwatch_schema_tables", "Tables in the database's schema (outside the system schemas)", ())
    tables.add((), float(len(shape.tables)))
    snapshot.families.extend([info, tables])
    snapshot.put(SchemaFingerprint(group, fingerprint, shape))
