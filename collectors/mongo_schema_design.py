"""The schema designer's MongoDB collector: each collection's validator (``listCollections``) and the
top-level fields of a ``$sample`` of its documents with the types they were seen with, for collections with
no ``$jsonSchema`` and for document shape drift (a field that is a string in some documents and a number in
others). Facts: :class:`SchemaDesignFacts` (engine ``mongodb``, ``collections``).

The databases of ``databases`` (every one but admin, config and local by default), at most
``max_collections`` collections, ``sample_size`` documents each (``$sample`` reads at random, with a
collection scan for a sample over 5 % of the collection; 100 documents are well under that on any collection
worth a validator).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dbwatch.model import Snapshot
from dbwatch.model.facts.common import Summary
from dbwatch.model.facts.schema_design import CollectionShape, FieldTypes, SchemaDesignFacts
from dbwatch.collectors.base import Collector
from dbwatch.collectors.mongodb import MongoSession
from dbwatch.collectors.mongodb_profiler import databases
from dbwatch.model.options import CollectorOptions, Count, Texts

__all__ = ["MongoSchemaDesignOptions", "MongoSchemaDesignCollector", "bson_type"]


class MongoSchemaDesignOptions(CollectorOptions):
    databases: Texts = ()
    max_collections: Count = 100
    sample_size: Count = 100


def bson_type(value: Any) -> str:
    """The ``$jsonSchema`` bsonType a value would need (numbers folded into ``number``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)) or type(value).__name__ in ("Int64", "Decimal128"):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dt.datetime):
        return "date"
    return {"ObjectId": "objectId", "Binary": "binData", "bytes": "binData", "Timestamp": "timestamp",
            "Regex": "regex"}.get(type(value).__name__, type(value).__name__)


class MongoSchemaDesignCollector(Collector[MongoSession, MongoSchemaDesignOptions]):
    name = "schema_design"
    up_metric = None
    options_model = MongoSchemaDesignOptions

    async def collect(self, snapshot: Snapshot) -> None:
        opts = self.options
        shapes: list[CollectionShape] = []
        async with self.session.lock:
            for db in await databases(self.session, opts.databases, snapshot):
                reply, error = await self.session.command(db, {"listCollections": 1, "nameOnly": False})
                if error is not None or reply is None:
                    snapshot.notes.append(f"listCollections on {db} was refused: {error}")
                    continue
                for info in reply.get("cursor", {}).get("firstBatch", []):
                    name = str(info.get("name", ""))
                    if info.get("type", "collection") != "collection" or name.startswith("system."):
                        continue
                    if len(shapes) >= opts.max_collections:
                        break
                    shapes.append(await self._shape(db, name, info.get("options") or {}))
        snapshot.put(SchemaDesignFacts(engine="mongodb", database=",".join(sorted({s.database for s in shapes})),
                                       collections=shapes),
                     Summary({"collections": len(shapes)}))

    async def _shape(self, db: str, name: str, options: dict[str, Any]) -> CollectionShape:
        reply, _ = await self.session.command(db, {"aggregate": name,
                                                   "pipeline": [{"$sample": {"size": self.options.sample_size}}],
                                                   "cursor": {"batchSize": self.options.sample_size}})
        docs = (reply or {}).get("cursor", {}).get("firstBatch", [])
        counts: dict[str, dict[str, int]] = {}
        for doc in docs:
            for key, value in doc.items():
                kind = bson_type(value)
                counts.setdefault(key, {})[kind] = counts.setdefault(key, {}).get(kind, 0) + 1
        validator = options.get("validator")
        return CollectionShape(database=db, collection=name, validator=bool(validator),
                               validation_action=str(options.get("validationAction", "error")) if validator else None,
                               sampled=len(docs), fields=tuple(FieldTypes(k, v) for k, v in counts.items()))
