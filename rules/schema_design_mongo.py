"""The schema designer's MongoDB findings (called by rules/schema_design.py): collections without a
``$jsonSchema`` validator, with one derived from a sample offered in ``warn`` mode (it logs violations and
rejects nothing), and document shape drift."""

from __future__ import annotations

import json
from typing import Any, Callable

from dbwatch.model import Severity
from dbwatch.model.facts.schema_design import CollectionShape, SchemaDesignFacts

__all__ = ["mongo_findings", "derived_validator"]

#: a collection needs at least this many sampled documents for a derived validator
MIN_SAMPLE = 10
_COLLMOD = ("collMod takes an exclusive lock on the collection for a moment; validationAction \"warn\" only logs "
            "documents that do not match, so no write is refused")


def derived_validator(shape: CollectionShape) -> dict[str, Any]:
    """A ``$jsonSchema`` from the sample: every field's seen types; the fields every document had, required."""
    properties = {f.name: {"bsonType": _bson(sorted(f.types))} for f in shape.fields}
    required = sorted(f.name for f in shape.fields if sum(n for t, n in f.types.items() if t != "null")
                      == shape.sampled)
    schema: dict[str, Any] = {"bsonType": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"$jsonSchema": schema}


def _bson(types: list[str]) -> Any:
    names = ["double", "int", "long", "decimal"] if "number" in types else []
    names += [t for t in types if t != "number"]
    return names[0] if len(names) == 1 else names


def mongo_findings(facts: SchemaDesignFacts, add: Callable[..., None]) -> None:
    for shape in facts.collections:
        ns = f"{shape.database}.{shape.collection}"
        labels = {"database": shape.database, "collection": shape.collection}
        drift = shape.drift
        if drift:
            described = "; ".join(f"{f.name}: " + ", ".join(f"{n} {t}" for t, n in sorted(f.types.items()))
                                  for f in drift)
            add("MongoShapeDrift", Severity.WARNING if not shape.validator else Severity.INFO,
                f"{ns}: {len(drift)} field(s) stored with different types", f"In a sample of {shape.sampled} "
                f"documents, {described}. Queries that filter or sort on such a field miss the documents of the "
                "other type (a string '10' does not equal the number 10, and sorts apart from it), and indexes "
                "hold both. Convert the odd documents, then let a validator keep them one type.",
                labels, {"sampled": shape.sampled, "fields": {f.name: dict(f.types) for f in drift}}, None,
                "", "low", 0.2)
        if shape.validator or shape.sampled < MIN_SAMPLE:
            continue
        validator = derived_validator(shape)
        command = json.dumps({"collMod": shape.collection, "validator": validator, "validationLevel": "moderate",
                              "validationAction": "warn"}, separators=(", ", ": "))
        add("MongoNoValidator", Severity.INFO, f"{ns} has no $jsonSchema validator",
            f"Any document shape is accepted, so a typo in a field name or a number written as a string is "
            f"stored silently. The validator below is derived from {shape.sampled} sampled documents (the fields "
            "each had are required); in warn mode it only logs documents that do not match: read the log, "
            "adjust it, then switch validationAction to error. Wrong for a collection meant to hold any shape.",
            labels, {"sampled": shape.sampled, "validator": validator},
            f"db.getSiblingDB({json.dumps(shape.database)}).runCommand({command})", _COLLMOD, "low", 0.05)
