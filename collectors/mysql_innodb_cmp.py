"""The rest of mysqld_exporter's default collectors (issue 13): information_schema.INNODB_CMP and INNODB_CMPMEM
(its info_schema.innodb_cmp and innodb_cmpmem collectors, which Percona's InnoDB compression dashboard reads),
and the two label-only families its global_variables collector adds: ``mysql_transaction_isolation{level}``
and ``mysql_galera_variables_info{wsrep_cluster_name}``.

Names, labels and units are those of prometheus-mysqld-exporter 0.14 (Debian bookworm), checked side by side
in tests/test_compat_community.py; like the exporter, INNODB_CMPMEM's relocation time (microseconds) is
divided by 1000, and every column is a counter.
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import MetricFamily, counter, gauge
from dbwatch.model.catalog import C, G, MetricSpec

__all__ = ["INNODB_CMP", "INNODB_CMPMEM", "SPECS", "cmp_families", "variable_info_families"]

INNODB_CMP = """
SELECT page_size, compress_ops, compress_ops_ok, compress_time, uncompress_ops, uncompress_time
FROM information_schema.INNODB_CMP
"""
INNODB_CMPMEM = """
SELECT page_size, buffer_pool_instance, pages_used, pages_free, relocation_ops, relocation_time
FROM information_schema.INNODB_CMPMEM
"""

_CMP = "mysql_info_schema_innodb_cmp_"
_CMPMEM = "mysql_info_schema_innodb_cmpmem_"

# (column, name, help, factor)
_CMP_COLUMNS = (
    ("compress_ops", f"{_CMP}compress_ops_total",
     "Number of times a B-tree page of the size PAGE_SIZE has been compressed.", 1.0),
    ("compress_ops_ok", f"{_CMP}compress_ops_ok_total",
     "Number of times a B-tree page of the size PAGE_SIZE has been successfully compressed.", 1.0),
    ("compress_time", f"{_CMP}compress_time_seconds_total",
     "Total time in seconds spent in attempts to compress B-tree pages.", 1.0),
    ("uncompress_ops", f"{_CMP}uncompress_ops_total",
     "Number of times a B-tree page of the size PAGE_SIZE has been uncompressed.", 1.0),
    ("uncompress_time", f"{_CMP}uncompress_time_seconds_total",
     "Total time in seconds spent in uncompressing B-tree pages.", 1.0),
)
_CMPMEM_COLUMNS = (
    ("pages_used", f"{_CMPMEM}pages_used_total",
     "Number of blocks of the size PAGE_SIZE that are currently in use.", 1.0),
    ("pages_free", f"{_CMPMEM}pages_free_total",
     "Number of blocks of the size PAGE_SIZE that are currently available for allocation.", 1.0),
    ("relocation_ops", f"{_CMPMEM}relocation_ops_total",
     "Number of times a block of the size PAGE_SIZE has been relocated.", 1.0),
    ("relocation_time", f"{_CMPMEM}relocation_time_seconds_total",
     "Total time spent in relocating blocks, as mysqld_exporter reports it (microseconds / 1000).", 1e-3),
)

SPECS: tuple[MetricSpec, ...] = (
    *(MetricSpec(name, C, help, ("page_size",), "mysql") for _, name, help, _ in _CMP_COLUMNS),
    *(MetricSpec(name, C, help, ("page_size", "buffer_pool"), "mysql") for _, name, help, _ in _CMPMEM_COLUMNS),
    MetricSpec("mysql_transaction_isolation", G, "MySQL transaction isolation (always 1; `level` says which).",
               ("level",), "mysql"),
    MetricSpec("mysql_galera_variables_info", G, "PXC/Galera variables information (always 1).",
               ("wsrep_cluster_name",), "mysql"),
)


def cmp_families(cmp_rows: list[dict[str, Any]], cmpmem_rows: list[dict[str, Any]]) -> list[MetricFamily]:
    families = []
    for rows, columns, labels in ((cmp_rows, _CMP_COLUMNS, ("page_size",)),
                                  (cmpmem_rows, _CMPMEM_COLUMNS, ("page_size", "buffer_pool"))):
        for column, name, help, factor in columns:
            family = counter(name, help, labels)
            for raw in rows:
                row = {str(k).lower(): v for k, v in raw.items()}
                key = (str(row["page_size"]),) if len(labels) == 1 else (str(row["page_size"]),
                                                                         str(row["buffer_pool_instance"]))
                if row.get(column) is not None:
                    family.add(key, float(row[column]) * factor)
            if family.samples:
                families.append(family)
    return families


def variable_info_families(variables: dict[str, Any]) -> list[MetricFamily]:
    families = []
    level = variables.get("transaction_isolation") or variables.get("tx_isolation")
    if level:
        isolation = gauge("mysql_transaction_isolation", "MySQL transaction isolation.", ("level",))
        isolation.add((str(level),), 1)
        families.append(isolation)
    if variables.get("wsrep_cluster_name"):
        galera = gauge("mysql_galera_variables_info", "PXC/Galera variables information.", ("wsrep_cluster_name",))
        galera.add((str(variables["wsrep_cluster_name"]),), 1)
        families.append(galera)
    return families
