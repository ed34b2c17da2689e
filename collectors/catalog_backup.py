"""The metric families the backup collector (any engine, on when `backups:` is set) can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import G, MetricSpec

TITLE = 'Backups'
ENGINES: tuple[str, ...] = ('*',)
INTRO = """\
The `backup` collector, on any engine whose target lists `backups:` ([Backups](failover-and-backups.md#backups)).
"""
NOTES = """\
Backup types: `full`, `diff`, `incr` (pgBackRest), `full` (Barman, or its `backup_type`), `full`, `delta`
(WAL-G), `file`. A source that fails keeps exporting the timestamps of its last good read, so its
backups keep ageing while it cannot be read.
"""

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_backup_source_up', G,
               'Whether the source could be read (0: the command failed, timed out or printed something '
               'unreadable; the error is a note in `/api/v1/targets` and in the facts).',
               ('source',), 'backup'),
    MetricSpec('dbwatch_backup_last_success_timestamp_seconds', G,
               'When the newest good backup of this type finished (Unix time); `type="any"` is the newest of '
               'any type.',
               ('source', 'type'), 'backup'),
    MetricSpec('dbwatch_backup_age_seconds', G,
               'Its age when the source was read.',
               ('source', 'type'), 'backup'),
    MetricSpec('dbwatch_backup_rpo_seconds', G,
               'The configured RPO (`type="any"`).',
               ('source', 'type'), 'backup'),
    MetricSpec('dbwatch_backup_count', G,
               'Good backups the source lists, by type.',
               ('source', 'type'), 'backup'),
    MetricSpec('dbwatch_backup_failed_count', G,
               'Backups the source lists as failed or unusable.',
               ('source',), 'backup'),
)
