"""Which PostgreSQL relations are the application's, as SQL predicates the catalog queries share.

Advice is about the application's schema. PostgreSQL's own schemas (``pg_catalog``, ``information_schema``,
TOAST and temporary schemas), TimescaleDB's internal schemas (its catalog in ``_timescaledb_catalog``, its
chunks in ``_timescaledb_internal``, ...) and any relation an extension owns (``pg_depend`` type ``e``:
PostGIS' ``spatial_ref_sys``, TimescaleDB's catalog tables) are not: an index dropped or a key added there
would fight the extension, and the next ``ALTER EXTENSION ... UPDATE`` could fail on it.
"""

from __future__ import annotations

__all__ = ["USER_SCHEMA", "not_extension_member"]

USER_SCHEMA = ("n.nspname NOT IN ('pg_catalog', 'information_schema') "
               "AND n.nspname !~ '^(pg_toast|pg_temp|_timescaledb_|timescaledb_)'")


def not_extension_member(relation: str) -> str:
    """A predicate: the pg_class row aliased ``relation`` is not a member of an extension."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend ext WHERE ext.classid = 'pg_class'::regclass "
            f"AND ext.objid = {relation}.oid AND ext.deptype = 'e')")
