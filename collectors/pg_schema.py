"""The ``schema`` collector: the target database's schema read from the catalog, its fingerprint as a metric,
and the shape as a fact for ``SchemaDrift`` (targets of one ``schema_group`` must have the same fingerprint).

On by default for a target with a ``schema_group:``, off otherwise; every 5 minutes (schemas change with
deployments, and the catalog is read in three queries whatever the number of tables). MySQL/MariaDB's is
:class:`~dbwatch.collectors.mysql_schema.MySQLSchemaCollector`.
"""

from __future__ import annotations

from dbwatch.collectors.base import Collector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.schema_common import record_shape
from dbwatch.collectors.schema_shape import read_pg_shape
from dbwatch.model import Snapshot
from dbwatch.model.options import CollectorOptions

__all__ = ["PgSchemaCollector"]


class PgSchemaCollector(Collector[PostgresSession, CollectorOptions]):
    name = "schema"
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        async with self.session.lock:
            shape = await read_pg_shape(self.session)
        record_shape(snapshot, self.target.schema_group, shape)
