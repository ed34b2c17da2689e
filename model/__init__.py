"""The bottom layer: the vocabulary every other folder of dbwatch speaks, importing none of them.

Targets, metric families, snapshots, findings and alerts, the configuration's value types and the typed
facts collectors hand to rules. ``from dbwatch.model import Snapshot`` is the usual way in.
"""

from dbwatch.model.findings import Alert, AlertState, Finding, FindingKind, Severity, fingerprint, now
from dbwatch.model.metrics import LabelValues, MetricFamily, MetricType, counter, gauge, info
from dbwatch.model.snapshot import Snapshot
from dbwatch.model.target import BackupSpec, CollectorSettings, RestoreTestSpec, SecretUnavailable, Target

__all__ = [
    "Alert", "AlertState", "BackupSpec", "CollectorSettings", "Finding", "FindingKind", "LabelValues",
    "MetricFamily", "MetricType", "RestoreTestSpec", "SecretUnavailable", "Severity", "Snapshot", "Target", "counter",
    "fingerprint", "gauge", "info", "now",
]
