"""The metric families the host collector can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import G, MetricSpec

TITLE = 'Host'
ENGINES: tuple[str, ...] = ('host',)
INTRO = """\
The machine or container dbwatch runs on (the `host` engine's `host` collector).
"""
NOTES = ""

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_host_cpu_usage_ratio', G,
               'Share of the CPU capacity available to dbwatch busy since the previous collection (absent on '
               "the first): of the container's CPU quota when its cgroup (v1 or v2) sets one, else of all CPUs.",
               (), 'host'),
    MetricSpec('dbwatch_host_cpu_limit_cores', G,
               "The container's CPU quota in cores (absent without a quota).",
               (), 'host'),
    MetricSpec('dbwatch_host_memory_limit_bytes', G,
               "The container's memory limit (absent without one).",
               (), 'host'),
    MetricSpec('dbwatch_host_cpus', G,
               'Logical CPUs.',
               (), 'host'),
    MetricSpec('dbwatch_host_load1', G,
               'One-minute load average.',
               (), 'host'),
    MetricSpec('dbwatch_host_memory_used_ratio', G,
               "Share of memory in use: of the container's memory limit when one is set, else of the machine's "
               '(not available).',
               (), 'host'),
    MetricSpec('dbwatch_host_filesystem_used_ratio', G,
               "Share of the filesystem's space in use.",
               ('path', 'mountpoint'), 'host'),
    MetricSpec('dbwatch_host_filesystem_size_bytes', G,
               'Filesystem size.',
               ('path', 'mountpoint'), 'host'),
    MetricSpec('dbwatch_host_filesystem_avail_bytes', G,
               'Space available to unprivileged users.',
               ('path', 'mountpoint'), 'host'),
)
