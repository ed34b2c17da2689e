"""postgres_exporter's own metrics, for the dashboards and alert rules that read them, from dbwatch's jobs.

postgres_exporter scrapes on request and reports on itself: ``pg_exporter_last_scrape_error`` (1 when the
last scrape failed), ``pg_exporter_scrapes_total``, ``pg_exporter_last_scrape_duration_seconds``, and per
collector ``pg_scrape_collector_success`` / ``pg_scrape_collector_duration_seconds``. dbwatch collects on
its own schedule, so the equivalents are its collections: for every PostgreSQL target, the main
(``postgres``) collector stands for the exporter's scrape, and every PostgreSQL collector for one of the
exporter's collectors. Each series carries the ``target`` label (several targets share one agent). They are
columns of the per-job figures (exporters/job_lines.py): written when a collection lands, not per scrape.
"""

from __future__ import annotations

from typing import Callable

from dbwatch.exporters.job_lines import JobColumn, JobFigures
from dbwatch.model import MetricFamily, MetricType, Snapshot

__all__ = ["ENGINE", "MAIN_COLLECTOR", "PG_EXPORTER_COLUMNS"]

ENGINE = "postgres"
MAIN_COLLECTOR = "postgres"

Value = Callable[[JobFigures, Snapshot], float | None]


def _postgres(value: Value, main_only: bool = False) -> Value:
    """``value`` for a PostgreSQL target's job (its main collector's only, with ``main_only``), else none."""
    def of(stats: JobFigures, latest: Snapshot) -> float | None:
        if latest.engine != ENGINE or (main_only and stats.collector != MAIN_COLLECTOR):
            return None
        return value(stats, latest)
    return of


PG_EXPORTER_COLUMNS = (
    JobColumn(MetricFamily("pg_exporter_last_scrape_error", MetricType.GAUGE,
                           "Whether the last scrape of metrics from PostgreSQL resulted in an error (1 for error, "
                           "0 for success): dbwatch's last collection by the postgres collector.", ("target",)),
              _postgres(lambda _, latest: int(not latest.ok), main_only=True)),
    JobColumn(MetricFamily("pg_exporter_scrapes_total", MetricType.COUNTER,
                           "Total number of times PostgreSQL was scraped for metrics: dbwatch's collections by "
                           "the postgres collector.", ("target",)),
              _postgres(lambda stats, _: stats.runs, main_only=True)),
    JobColumn(MetricFamily("pg_exporter_last_scrape_duration_seconds", MetricType.GAUGE,
                           "Duration of the last scrape of metrics from PostgreSQL: dbwatch's last collection "
                           "by the postgres collector.", ("target",)),
              _postgres(lambda stats, _: stats.last_duration, main_only=True)),
    JobColumn(MetricFamily("pg_scrape_collector_success", MetricType.GAUGE,
                           "postgres_exporter: Whether a collector succeeded (dbwatch's collectors).",
                           ("target", "collector")),
              _postgres(lambda _, latest: int(latest.ok))),
    JobColumn(MetricFamily("pg_scrape_collector_duration_seconds", MetricType.GAUGE,
                           "postgres_exporter: Duration of a collector scrape (dbwatch's collectors).",
                           ("target", "collector")),
              _postgres(lambda stats, _: stats.last_duration)),
)
