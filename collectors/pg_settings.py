"""Every numeric and boolean ``pg_settings`` entry as ``pg_settings_<name>``, postgres_exporter's way.

Units are converted as postgres_exporter converts them: times (ms, s, min, h, d) to seconds with a
``_seconds`` suffix, sizes (B, kB, MB, GB, TB and block units such as 8kB) to bytes with ``_bytes``; -1
(disabled) stays -1; booleans are 1 for ``on``; dots and dashes in extension settings become underscores
(``pg_stat_statements.max`` -> ``pg_settings_pg_stat_statements_max``). String and enum settings have no
number and are not exported, as there.

Two groups are left out: the settings the server-wide collector already exports (the same names, so a
scrape never carries one series twice), and the ones dbwatch's own monitoring session sets for itself
(``statement_timeout``, ``lock_timeout``, ``idle_in_transaction_session_timeout``,
``default_transaction_read_only`` and with it ``transaction_read_only``): pg_settings would show dbwatch's
values, not the server's. ``extra_float_digits`` is the client driver's, here as in the exporter.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from dbwatch.collectors import postgres_sql
from dbwatch.collectors.base import Collector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.model import MetricFamily, Snapshot, gauge
from dbwatch.model.options import CollectorOptions

__all__ = ["SESSION_SETTINGS", "SETTINGS", "SettingsCollector", "setting_metric"]

# The values dbwatch's session sets at connect time (see PostgresSession.connect).
SESSION_SETTINGS = frozenset({"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
                              "default_transaction_read_only", "transaction_read_only", "application_name"})

# Azure's sync_commit_cancel_wait and Cloud SQL's google_dataplex.max_messages carry values that are not
# numbers; postgres_exporter skips them by name.
SETTINGS = """
SELECT name, setting, coalesce(unit, '') AS unit, vartype
FROM pg_settings
WHERE vartype IN ('bool', 'integer', 'real')
  AND name NOT IN ('sync_commit_cancel_wait', 'google_dataplex.max_messages')
  AND NOT (name = ANY($1::text[]))
ORDER BY name
"""

_TIME = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^(\d*)(B|kB|MB|GB|TB)$")
_SIZE_FACTOR = {"B": 1, "kB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}
_NAME = re.compile(r"[.\-]")


def setting_metric(name: str, setting: str, unit: str, vartype: str) -> tuple[str, str, float] | None:
    """``(metric name, help, value)`` for one pg_settings row, or None when the value is not a number."""
    naming = _naming(name, "" if vartype == "bool" else unit)
    if naming is None:
        return None  # a unit the exporter does not know either: it skips the setting
    metric, help, factor = naming
    if vartype == "bool":
        return metric, help, 1.0 if setting == "on" else 0.0
    try:
        value = float(setting)
    except ValueError:
        return None
    return metric, help, value if value == -1 else value * factor


@functools.lru_cache(maxsize=4096)
def _naming(name: str, unit: str) -> tuple[str, str, float] | None:
    """``(metric name, help, factor)`` of a setting with its unit. Cached: the names are the same on every
    server, so a fleet's targets (~250 settings each) share one string of each instead of holding their own."""
    metric, help = f"pg_settings_{_NAME.sub('_', name)}", f"Server Parameter: {name}"
    if not unit:
        return metric, help, 1.0
    if unit in _TIME:
        factor, suffix = _TIME[unit], "seconds"
    elif (size := _SIZE.match(unit)) is not None:
        factor, suffix = int(size.group(1) or 1) * _SIZE_FACTOR[size.group(2)], "bytes"
    else:
        return None
    return f"{metric}_{suffix}", f"{help} [Units converted to {suffix}.]", factor


class SettingsCollector(Collector[PostgresSession, CollectorOptions]):
    """All of pg_settings that has a number (the server-wide collector keeps its own few)."""

    name = "settings"
    options_model = CollectorOptions

    async def collect(self, snapshot: Snapshot) -> None:
        skipped = sorted(SESSION_SETTINGS | set(postgres_sql.EXPORTED_SETTINGS))
        async with self.session.lock:
            rows = await self.session.run(SETTINGS, skipped)
        snapshot.families.extend(_families((r["name"], r["setting"], r["unit"], r["vartype"]) for r in rows))


def _families(rows: Iterable[tuple[str, str, str, str]]) -> list[MetricFamily]:
    families = []
    for row in rows:
        converted = setting_metric(*row)
        if converted is None:
            continue
        metric, help, value = converted
        family = gauge(metric, help)
        family.samples.append(((), value))
        families.append(family)
    return families
