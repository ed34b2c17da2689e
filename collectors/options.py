"""Options models shared by collectors of several engines (each engine-specific one sits with its collector)."""

from __future__ import annotations

from dbwatch.model.options import CollectorOptions, Count, Text

__all__ = ["AuditHostOptions", "StatementsOptions"]


class StatementsOptions(CollectorOptions):
    """pg_stat_statements and performance_schema digests."""

    top_n: Count = 100  # statements with their own series, by total time; the rest are summed as "other"
    query_text_length: Count = 200  # characters of query text kept per statement


class AuditHostOptions(CollectorOptions):
    """The audit collectors' view of the database's host, when the agent cannot see it (a remote target)."""

    ram: Text = ""  # e.g. "16GiB"
    cpus: Count = 0
    disk: Text = "auto"  # ssd | hdd | auto
