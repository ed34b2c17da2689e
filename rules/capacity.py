"""Capacity per database: ``DatabaseWillFillDisk``, the per-database side of ``DiskWillFillIn``.

``DiskWillFillIn`` (rules/defaults.yaml) draws a line through a filesystem's free space; it says *that* the
disk fills, not *which* database fills it. This rule reads, for a PostgreSQL or MySQL/MariaDB target whose
server runs on the agent's machine (fact ServerResources: the data directory's filesystem), the database's
growth *measured* from sizes in the agent's history (the ``workload`` collector's profiles, at least
:data:`~dbwatch.rules.strategy_common.MIN_MEASURED_SECONDS` apart: never the one-shot estimate) and fires
when that growth alone uses up the free space within ``DiskWillFillIn``'s horizon (24 h unless
``rules.overrides.DiskWillFillIn.horizon`` says otherwise; disabling DiskWillFillIn disables this too).
"""

from __future__ import annotations

from collections.abc import Iterable

from dbwatch.model import Finding, FindingKind, Severity
from dbwatch.model.facts.server_resources import ServerResources
from dbwatch.model.facts.workload_profile import WorkloadProfile
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig, load_rules
from dbwatch.rules.strategy_common import days_until_full, human_bytes, measured_growth

__all__ = ["DatabaseWillFillDisk", "make_rules"]


def make_rules(config: RulesConfig) -> list[PythonRule]:
    disk = next((r for r in load_rules(config) if r.alert == "DiskWillFillIn"), None)
    if disk is None or disk.horizon is None:
        return []
    return [DatabaseWillFillDisk(disk.horizon)]


class DatabaseWillFillDisk:
    name = "DatabaseWillFillDisk"
    engines = ("postgres", "mysql")
    for_ = 0.0  # the growth is already measured over an hour or more
    keep_firing_for = 0.0

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        resources = view.fact(ServerResources)
        profile = view.fact(WorkloadProfile)
        measured = measured_growth(view)
        if resources is None or profile is None or measured is None or resources.filesystem_avail_bytes is None:
            return
        growth, _, span = measured
        days = days_until_full(resources.filesystem_avail_bytes, growth)
        if days is None or days * 86400 > self.horizon:
            return
        avail = resources.filesystem_avail_bytes
        yield Finding(
            rule=self.name, target=view.target, kind=FindingKind.ALERT, severity=Severity.WARNING,
            summary=f"{profile.database} on {view.target} grows {human_bytes(growth)}/day: at that rate alone it "
                    f"fills {resources.data_path}'s filesystem in {days * 24:.1f} h",
            description=f"Database {profile.database} grew at {human_bytes(growth)} a day over the last "
                        f"{span / 3600:.1f} h of the agent's history; the filesystem of {resources.data_path} has "
                        f"{human_bytes(avail)} free, used up in {days * 24:.1f} h at that growth alone, within "
                        f"DiskWillFillIn's horizon of {self.horizon / 3600:g} h. Other databases and WAL on the same "
                        "filesystem only bring the moment closer. Find what writes (the workload profile's "
                        "table_growth_bytes_per_day), add space, or move data out.",
            labels={**view.labels, "datname": profile.database},
            evidence={"growth_bytes_per_day": round(growth), "measured_over_seconds": round(span),
                      "filesystem_avail_bytes": avail, "filesystem_bytes": resources.filesystem_bytes,
                      "data_path": resources.data_path, "hours_until_full": round(days * 24, 2),
                      "horizon_seconds": self.horizon},
            value=days * 86400)
