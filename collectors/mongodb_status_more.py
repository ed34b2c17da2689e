"""More of serverStatus under percona mongodb_exporter's names (issue 13): the fields awesome-prometheus-alerts'
Percona rules and PMM's MongoDB dashboards read beyond the core ones in mongodb.py (write tickets, cursors,
document and TTL counters, active clients, operation latencies, whether the member is a writable primary).

The exporter flattens serverStatus (exporter/metrics.go): a path becomes ``mongodb_ss_<path>``, and a few
sub-documents turn their keys into a label (``metrics.cursor.open`` -> ``csr_type``, ``metrics.document`` ->
``doc_op_type``, ``wiredTiger.concurrentTransactions`` -> ``txn_rw_type``, ``opLatencies`` -> ``op_type``). A
field the server does not report is no series.
"""

from __future__ import annotations

from typing import Any

from dbwatch.model import MetricFamily, MetricType
from dbwatch.model.catalog import MetricSpec

__all__ = ["SPECS", "more_status_families"]

G, C = MetricType.GAUGE, MetricType.COUNTER

# (serverStatus path, name, type, help): one value each; a boolean is 1 or 0, as the exporter has it.
_SINGLE: tuple[tuple[tuple[str, ...], str, MetricType, str], ...] = (
    (("repl", "isWritablePrimary"), "mongodb_ss_repl_isWritablePrimary", G,
     "Whether this member accepts writes (1 = primary)."),
    (("metrics", "cursor", "timedOut"), "mongodb_ss_metrics_cursor_timedOut", C, "Cursors that timed out."),
    (("metrics", "ttl", "deletedDocuments"), "mongodb_ss_metrics_ttl_deletedDocuments", C,
     "Documents deleted by TTL indexes."),
    (("metrics", "ttl", "passes"), "mongodb_ss_metrics_ttl_passes", C, "Passes of the TTL monitor."),
    (("globalLock", "activeClients", "total"), "mongodb_ss_globalLock_activeClients_total", G,
     "Clients with operations in progress."),
    (("globalLock", "activeClients", "readers"), "mongodb_ss_globalLock_activeClients_readers", G,
     "Clients with reads in progress."),
    (("globalLock", "activeClients", "writers"), "mongodb_ss_globalLock_activeClients_writers", G,
     "Clients with writes in progress."),
    (("mem", "resident"), "mongodb_ss_mem_resident", G, "Resident memory of the process, MiB (as serverStatus)."),
    (("mem", "virtual"), "mongodb_ss_mem_virtual", G, "Virtual memory of the process, MiB (as serverStatus)."),
)

# (serverStatus path, name, label, type, help): one series per key of the sub-document.
_LABELLED: tuple[tuple[tuple[str, ...], str, str, MetricType, str], ...] = (
    (("metrics", "cursor", "open"), "mongodb_ss_metrics_cursor_open", "csr_type", G,
     "Open cursors by kind (total, noTimeout, pinned)."),
    (("metrics", "document"), "mongodb_ss_metrics_document", "doc_op_type", C,
     "Documents deleted, inserted, returned and updated."),
)

# (serverStatus path, name prefix, label, {field: type}): one level of keys as the label, then one family per field.
_NESTED: tuple[tuple[tuple[str, ...], str, str, dict[str, MetricType], str], ...] = (
    (("wiredTiger", "concurrentTransactions"), "mongodb_ss_wt_concurrentTransactions_", "txn_rw_type",
     {"out": G, "available": G, "totalTickets": G}, "WiredTiger read/write tickets"),
    (("opLatencies",), "mongodb_ss_opLatencies_", "op_type", {"latency": C, "ops": C},
     "Operation latency (microseconds, summed) and count by kind"),
)

SPECS: tuple[MetricSpec, ...] = (
    *(MetricSpec(name, kind, help, (), "mongodb") for _, name, kind, help in _SINGLE),
    *(MetricSpec(name, kind, help, (label,), "mongodb") for _, name, label, kind, help in _LABELLED),
    *(MetricSpec(prefix + field, kind, f"{help}: {field}.", (label,), "mongodb")
      for _, prefix, label, fields, help in _NESTED for field, kind in fields.items()),
)


def more_status_families(status: dict[str, Any]) -> list[MetricFamily]:
    """The families above from one serverStatus reply."""
    families = []
    for path, name, kind, help in _SINGLE:
        value = _number(_at(status, path))
        if value is not None:
            family = MetricFamily(name, kind, help)
            family.add((), value)
            families.append(family)
    for path, name, label, kind, help in _LABELLED:
        node = _at(status, path)
        family = MetricFamily(name, kind, help, (label,))
        for key, value in (node.items() if isinstance(node, dict) else ()):
            if (number := _number(value)) is not None:
                family.add((key,), number)
        if family.samples:
            families.append(family)
    for path, prefix, label, fields, help in _NESTED:
        node = _at(status, path)
        for field, kind in fields.items():
            family = MetricFamily(prefix + field, kind, f"{help}: {field}.", (label,))
            for key, sub in (node.items() if isinstance(node, dict) else ()):
                if isinstance(sub, dict) and (number := _number(sub.get(field))) is not None:
                    family.add((key,), number)
            if family.samples:
                families.append(family)
    return families


def _at(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None
