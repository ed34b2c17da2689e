"""information_schema.INNODB_METRICS under mysqld_exporter's names (its info_schema.innodb_metrics collector).

Only enabled counters are exported, as the exporter does: the history list length
(``mysql_info_schema_innodb_metrics_transaction_trx_rseg_history_len``), row lock waits, the buffer pool by
page state, ... Counters (``counter``, ``status_counter``) end in ``_total``; the rest are gauges. The table
has ``ENABLED`` (MariaDB >= 10.5) or ``STATUS = 'enabled'`` (MySQL, older MariaDB): the row says which.
"""

from __future__ import annotations

import re
from typing import Any

from dbwatch.model import MetricFamily, counter, gauge

__all__ = ["INNODB_METRICS", "innodb_metrics_families"]

INNODB_METRICS = "SELECT * FROM information_schema.INNODB_METRICS"

_PREFIX = "mysql_info_schema_innodb_metrics_"
_PAGE_IO = re.compile(r"^buffer_page_(read|written)_(.*)$")
_POOL_PAGES = re.compile(r"^buffer_pool_pages_(.*)$")


def innodb_metrics_families(rows: list[dict[str, Any]]) -> list[MetricFamily]:
    page_io = {kind: counter(f"{_PREFIX}buffer_page_{kind}_total", f"Total number of buffer pages {kind} total.",
                             ("type",)) for kind in ("read", "written")}
    pool_pages = gauge(f"{_PREFIX}buffer_pool_pages", "Total number of buffer pool pages by state.", ("state",))
    dirty = gauge(f"{_PREFIX}buffer_pool_dirty_pages", "Total number of dirty pages in the buffer pool.")
    families: list[MetricFamily] = [*page_io.values(), pool_pages, dirty]
    for raw in rows:
        row = {str(k).lower(): v for k, v in raw.items()}
        if not _enabled(row):
            continue
        name, subsystem, value = str(row["name"]), str(row["subsystem"]), row["count"]
        if subsystem == "buffer_page_io":
            match = _PAGE_IO.match(name)
            if match:
                page_io[match[1]].add((match[2],), value)
            continue
        pages = _POOL_PAGES.match(name) if subsystem == "buffer" else None
        if pages:
            if pages[1] == "dirty":
                dirty.add((), value)
            elif pages[1] != "total":  # the sum of the others
                pool_pages.add((pages[1],), value)
            continue
        help = str(row.get("comment") or name)
        if row["type"] in ("counter", "status_counter"):
            family = counter(f"{_PREFIX}{subsystem}_{name}_total", help)
        else:
            family = gauge(f"{_PREFIX}{subsystem}_{name}", help)
        family.add((), value)
        families.append(family)
    return [family for family in families if family.samples]


def _enabled(row: dict[str, Any]) -> bool:
    if "enabled" in row:
        return bool(row["enabled"])
    return str(row.get("status", "")).lower() == "enabled"
