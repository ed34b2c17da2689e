"""postgres_exporter's own metrics, for the dashboards and alert rules that read them, from dbwatch's jobs.

postgres_exporter scrapes on request and reports on itself: ``pg_exporter_last_scrape_error`` (1 when the
last scrape failed), ``pg_exporter_scrapes_total``, ``pg_exporter_last_scrape_duration_seconds``, and per
collector ``pg_scrape_collector_success`` / ``pg_scrape_collector_duration_seconds``. dbwatch collects on
its own schedule, so the equivalents are its collections: for every PostgreSQL target, the main
(``postgres``) collector stands for the exporter's scrape, and every PostgreSQL collector for one of the
exporter's collectors. Each series carries the ``target`` label (several targets share one agent).
"""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence

from dbwatch.model import MetricFamily, MetricType, Snapshot

__all__ = ["ENGINE", "MAIN_COLLECTOR", "pg_exporter_families"]

ENGINE = "postgres"
MAIN_COLLECTOR = "postgres"


class _Job(Protocol):
    target: str
    collector: str
    runs: int
    last_duration: float | None


class _Store(Protocol):
    def latest(self, target: str, collector: str) -> Snapshot | None: ...
    def stats(self) -> Sequence[_Job]: ...


def pg_exporter_families(store: _Store) -> list[MetricFamily]:
    """The exporter-self families for every PostgreSQL target's collectors (empty without such targets)."""
    error = MetricFamily("pg_exporter_last_scrape_error", MetricType.GAUGE,
                         "Whether the last scrape of metrics from PostgreSQL resulted in an error (1 for error, "
                         "0 for success): dbwatch's last collection by the postgres collector.", ("target",))
    scrapes = MetricFamily("pg_exporter_scrapes_total", MetricType.COUNTER,
                           "Total number of times PostgreSQL was scraped for metrics: dbwatch's collections by "
                           "the postgres collector.", ("target",))
    duration = MetricFamily("pg_exporter_last_scrape_duration_seconds", MetricType.GAUGE,
                            "Duration of the last scrape of metrics from PostgreSQL: dbwatch's last collection "
                            "by the postgres collector.", ("target",))
    success = MetricFamily("pg_scrape_collector_success", MetricType.GAUGE,
                           "postgres_exporter: Whether a collector succeeded (dbwatch's collectors).",
                           ("target", "collector"))
    seconds = MetricFamily("pg_scrape_collector_duration_seconds", MetricType.GAUGE,
                           "postgres_exporter: Duration of a collector scrape (dbwatch's collectors).",
                           ("target", "collector"))
    for job, latest in _postgres_jobs(store):
        success.add((job.target, job.collector), int(latest.ok))
        seconds.add((job.target, job.collector), job.last_duration)
        if job.collector == MAIN_COLLECTOR:
            error.add((job.target,), int(not latest.ok))
            scrapes.add((job.target,), job.runs)
            duration.add((job.target,), job.last_duration)
    return [family for family in (error, scrapes, duration, success, seconds) if family.samples]


def _postgres_jobs(store: _Store) -> Iterator[tuple[_Job, Snapshot]]:
    for job in store.stats():
        latest = store.latest(job.target, job.collector)
        if latest is not None and latest.engine == ENGINE:
            yield job, latest
