"""The metric families the Neo4j collector can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import C, G, I, MetricSpec

TITLE = 'Neo4j'
ENGINES: tuple[str, ...] = ('neo4j',)
INTRO = """\
The page cache families carry the names Neo4j's own Prometheus endpoint gives them
(`neo4j_dbms_page_cache_*`); Neo4j embeds a database's name in its per-database metric names
(`neo4j_database_<db>_...`), so dbwatch's per-database families are `dbwatch_neo4j_*` with a `database`
label. How the collector reads them and how it is tested (a Bolt test server replaying documented
responses, not a real Neo4j): [Neo4j](neo4j.md).
"""
NOTES = """\
The page cache and store size families come from `dbms.queryJmx('neo4j.metrics:*')`: they exist only where
the server publishes its metrics over JMX (`metrics.jmx.enabled`, Enterprise edition).
"""

_DB = ('database',)

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('neo4j_up', G, 'Whether the last collection could reach the server (1 = yes).', (), 'neo4j'),
    MetricSpec('dbwatch_neo4j_instance_info', I,
               "The server's version and edition from `dbms.components()` (always 1).",
               ('version', 'edition'), 'neo4j'),
    MetricSpec('dbwatch_neo4j_database_info', I,
               'One per `SHOW DATABASES` row: type, role, requested and current status (always 1).',
               ('database', 'address', 'type', 'role', 'requested_status', 'current_status'), 'neo4j'),
    MetricSpec('dbwatch_neo4j_database_unavailable', G,
               '1 when the database is requested `online` but its current status is not `online`.',
               ('database', 'address'), 'neo4j'),
    MetricSpec('dbwatch_neo4j_server_available', G,
               '1 when `SHOW SERVERS` reports the server\'s health as `Available` (Neo4j 5 only).',
               ('server', 'address', 'state'), 'neo4j'),
    MetricSpec('dbwatch_neo4j_transactions_active', G,
               'Open transactions per database (`SHOW TRANSACTIONS`, dbwatch\'s own skipped).', _DB, 'neo4j'),
    MetricSpec('dbwatch_neo4j_oldest_transaction_seconds', G,
               '`elapsedTime` of the longest-running open transaction per database (0 when none is open).',
               _DB, 'neo4j'),
    MetricSpec('dbwatch_neo4j_long_transactions', G,
               'Transactions open at least `long_tx_seconds` (60 s by default) per database.', _DB, 'neo4j'),
    MetricSpec('neo4j_dbms_page_cache_hits_total', C, 'Page cache hits since the server started.', (), 'neo4j'),
    MetricSpec('neo4j_dbms_page_cache_page_faults_total', C,
               'Page cache faults (pages read from disk) since the server started.', (), 'neo4j'),
    MetricSpec('neo4j_dbms_page_cache_evictions_total', C,
               'Page cache evictions since the server started.', (), 'neo4j'),
    MetricSpec('neo4j_dbms_page_cache_hit_ratio', G, 'Ratio of hits to hits + faults, as Neo4j computes it.',
               (), 'neo4j'),
    MetricSpec('neo4j_dbms_page_cache_usage_ratio', G, 'Ratio of used pages to all the page cache\'s pages.',
               (), 'neo4j'),
    MetricSpec('dbwatch_neo4j_store_size_bytes', G,
               'Disk space of a database\'s store: `kind` `total` (transaction logs included) or `database` '
               '(store files only).', ('database', 'kind'), 'neo4j'),
)
