"""mongodb_exporter's ``--compatible-mode`` names (the v1 exporter's), which PMM's MongoDB dashboards query and
PMM turns on: each derived from a ``mongodb_ss_*`` family dbwatch already has, as the exporter derives them
(exporter/v1_compatibility.go: a rename, label renames and label-value renames, or several single values
folded into one family with a ``type``/``state`` label).

Only conversions whose source dbwatch collects are here; the oplog head/tail timestamps come from mongodb.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dbwatch.model import MetricFamily
from dbwatch.model.catalog import MetricSpec

__all__ = ["compat_families", "compat_specs"]


@dataclass(frozen=True)
class _Rename:
    """``new`` (with its labels renamed and label values mapped) exported again as ``old``."""

    old: str
    new: str
    labels: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Fold:
    """Single-valued families ``{new: label value}`` exported as one ``old`` family labelled ``label``."""

    old: str
    label: str
    sources: dict[str, str]


_OP_VALUES = {"commands": "command", "reads": "read", "writes": "write"}
_QUEUE_VALUES = {"readers": "reader", "writers": "writer"}

_RENAMES = (
    _Rename("mongodb_asserts_total", "mongodb_ss_asserts", {"assert_type": "type"}),
    _Rename("mongodb_connections", "mongodb_ss_connections", {"conn_type": "state"}),
    _Rename("mongodb_extra_info_page_faults_total", "mongodb_ss_extra_info_page_faults"),
    _Rename("mongodb_mongod_global_lock_current_queue", "mongodb_ss_globalLock_currentQueue", {"count_type": "type"},
            _QUEUE_VALUES),
    _Rename("mongodb_mongod_instance_uptime_seconds", "mongodb_ss_uptime"),
    _Rename("mongodb_instance_uptime_seconds", "mongodb_ss_uptime"),
    _Rename("mongodb_mongod_metrics_cursor_open", "mongodb_ss_metrics_cursor_open", {"csr_type": "state"}),
    _Rename("mongodb_mongod_metrics_cursor_timed_out_total", "mongodb_ss_metrics_cursor_timedOut"),
    _Rename("mongodb_mongod_metrics_document_total", "mongodb_ss_metrics_document", {"doc_op_type": "state"}),
    _Rename("mongodb_mongod_metrics_ttl_deleted_documents_total", "mongodb_ss_metrics_ttl_deletedDocuments"),
    _Rename("mongodb_mongod_metrics_ttl_passes_total", "mongodb_ss_metrics_ttl_passes"),
    _Rename("mongodb_mongod_op_counters_repl_total", "mongodb_ss_opcountersRepl", {"legacy_op_type": "type"}),
    _Rename("mongodb_op_counters_total", "mongodb_ss_opcounters", {"legacy_op_type": "type"}),
    _Rename("mongodb_mongod_op_latencies_ops_total", "mongodb_ss_opLatencies_ops", {"op_type": "type"}, _OP_VALUES),
    _Rename("mongodb_mongod_op_latencies_latency_total", "mongodb_ss_opLatencies_latency", {"op_type": "type"},
            _OP_VALUES),
    _Rename("mongodb_mongod_wiredtiger_cache_max_bytes", "mongodb_ss_wt_cache_maximum_bytes_configured"),
    _Rename("mongodb_mongod_wiredtiger_concurrent_transactions_available_tickets",
            "mongodb_ss_wt_concurrentTransactions_available"),
    _Rename("mongodb_mongod_wiredtiger_concurrent_transactions_out_tickets",
            "mongodb_ss_wt_concurrentTransactions_out"),
    _Rename("mongodb_mongod_wiredtiger_concurrent_transactions_total_tickets",
            "mongodb_ss_wt_concurrentTransactions_totalTickets"),
)

#: (compatible-mode name, source): labelled with the replica set's name, which the source does not carry
MY_STATE = ("mongodb_mongod_replset_my_state", "mongodb_rs_myState")

_FOLDS = (
    _Fold("mongodb_mongod_global_lock_client", "type",
          {"mongodb_ss_globalLock_activeClients_readers": "reader",
           "mongodb_ss_globalLock_activeClients_writers": "writer",
           "mongodb_ss_globalLock_activeClients_total": "total"}),
    _Fold("mongodb_memory", "type", {"mongodb_ss_mem_resident": "resident", "mongodb_ss_mem_virtual": "virtual"}),
    # The exporter's suffix mapping reaches only the cache's total (its other keys never match a name).
    _Fold("mongodb_mongod_wiredtiger_cache_bytes", "type",
          {"mongodb_ss_wt_cache_bytes_currently_in_the_cache": "total"}),
)


def compat_families(families: list[MetricFamily], set_name: str | None) -> list[MetricFamily]:
    """The compatible-mode families derived from ``families`` (one collection's); ``set_name``: the replica
    set's, for ``mongodb_mongod_replset_my_state{set}``."""
    by_name = {family.name: family for family in families}
    derived = []
    for rename in _RENAMES:
        source = by_name.get(rename.new)
        if source is None or not source.samples:
            continue
        family = MetricFamily(rename.old, source.type, source.help,
                              tuple(rename.labels.get(name, name) for name in source.labelnames))
        for values, value in source.samples:
            family.add(tuple(rename.values.get(v, v) for v in values), value)
        derived.append(family)
    for fold in _FOLDS:
        sources = [(by_name[name], label) for name, label in fold.sources.items() if name in by_name]
        if not sources:
            continue
        family = MetricFamily(fold.old, sources[0][0].type, fold.old, (fold.label,))
        for source, label in sources:
            for _, value in source.samples:
                family.add((label,), value)
        derived.append(family)
    state = by_name.get(MY_STATE[1])
    if state is not None and state.samples and set_name:
        my_state = MetricFamily(MY_STATE[0], state.type, state.help, ("set",))
        my_state.add((set_name,), state.samples[0][1])
        derived.append(my_state)
    return derived


def compat_specs(core: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
    """Catalog entries for the families above, typed like their sources in ``core`` (the collector's own)."""
    types = {spec.name: spec for spec in core}
    specs = []
    for rename in _RENAMES:
        source = types[rename.new]
        specs.append(MetricSpec(rename.old, source.type, f"`{rename.new}` under mongodb_exporter's compatible-mode "
                                f"name.", tuple(rename.labels.get(n, n) for n in source.labels), "mongodb"))
    for fold in _FOLDS:
        first = types[next(iter(fold.sources))]
        specs.append(MetricSpec(fold.old, first.type, "Compatible-mode name folding " + ", ".join(
            f"`{name}` ({label})" for name, label in fold.sources.items()) + f" by `{fold.label}`.", (fold.label,),
            "mongodb"))
    specs.append(MetricSpec(MY_STATE[0], types[MY_STATE[1]].type, f"`{MY_STATE[1]}` under mongodb_exporter's "
                            "compatible-mode name, labelled with the replica set.", ("set",), "mongodb"))
    return tuple(specs)
