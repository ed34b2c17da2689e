"""The metric families the backup collector (any engine, on when `backups:` is set) can emit.

docs/metrics.md is generated from this declaration (`make docs`); the collector tests check that every family
a collection from a real server emits is declared here with its type and labels, so docs and code agree.
"""

from __future__ import annotations

from dbwatch.model.catalog import G, MetricSpec

TITLE = 'Backups'
ENGINES: tuple[str, ...] = ('*',)
INTRO = """\
The `backup` collector, on any engine whose target lists `backups:` ([Backups](failover-and-backups.md#backups)),
and the `restore_drill` collector, on when a source has `restore_test:` ([Restore drills](restore-drills.md)).
"""
NOTES = """\
Backup types: `full`, `diff`, `incr` (pgBackRest), `full` (Barman, or its `backup_type`), `full`, `delta`
(WAL-G), `file`, `full` (pg_basebackup), `full`, `incr` (mariabackup). A source that fails keeps exporting the timestamps of its last good read, so its
backups keep ageing while it cannot be read. Restore drill steps: `check_space`, `initdb`, `restore`, `prepare`, `start`,
`recover`, `verify`, `compare`, `cleanup`, and `total` (up to a verified, running copy; a successful drill only).
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
    MetricSpec('dbwatch_pitr_earliest_timestamp_seconds', G,
               'pgBackRest, pg_basebackup, mariabackup (with `archive:`): the earliest point the target can be '
               'recovered to, the end of the oldest good backup (Unix time).',
               ('source',), 'backup'),
    MetricSpec('dbwatch_pitr_latest_timestamp_seconds', G,
               'The latest point the target can be recovered to: when the newest WAL segment (binary log) reached '
               'the archive (Unix time; the newest backup\'s end when later).',
               ('source',), 'backup'),
    MetricSpec('dbwatch_wal_archive_missing_segments', G,
               'WAL segments missing from the archive (or found invalid by `pgbackrest verify`) between the first '
               'one the oldest good backup needs and the newest archived; `mariabackup`: binary logs missing or '
               'damaged from the oldest backup\'s to the newest (`WalArchiveGap` above 0).',
               ('source',), 'backup'),
    MetricSpec('dbwatch_backup_verify_last_run_timestamp_seconds', G,
               'pgBackRest (`verify_every`): when the last `pgbackrest verify` finished (Unix time).',
               ('source',), 'backup'),
    MetricSpec('dbwatch_backup_verify_success', G,
               'pgBackRest: 1 when the last verify ran and found every file valid, else 0.',
               ('source',), 'backup'),
    MetricSpec('dbwatch_backup_verify_invalid_files', G,
               'pgBackRest: files the last verify found invalid (checksum, size, unreadable), by `kind` '
               '(`wal`, `backup`).',
               ('source', 'kind'), 'backup'),
    MetricSpec('dbwatch_backup_check_failures', G,
               'Barman (one `server`): the checks `barman check` reports FAILED (named, with their hints, in a note).',
               ('source',), 'backup'),
    MetricSpec('dbwatch_restore_test_success', G,
               'Whether the last restore drill succeeded (1) or failed (0).',
               ('source',), 'restore_drill'),
    MetricSpec('dbwatch_restore_test_duration_seconds', G,
               'How long the last restore drill took, per step; `step="total"` is the measured restore time '
               '(up to a verified, running copy).',
               ('source', 'step'), 'restore_drill'),
    MetricSpec('dbwatch_restore_test_last_run_timestamp_seconds', G,
               'When the last restore drill finished (Unix time).',
               ('source',), 'restore_drill'),
    MetricSpec('dbwatch_restore_test_rto_seconds', G,
               'The configured recovery time objective (`restore_test.rto`).',
               ('source',), 'restore_drill'),
    MetricSpec('dbwatch_restore_test_restored_data_age_seconds', G,
               'How old the newest data of the restored copy was when the drill finished (the end of the WAL '
               'replay, or the dump file\'s time).',
               ('source',), 'restore_drill'),
    MetricSpec('dbwatch_restore_test_overdue_seconds', G,
               'How long past its schedule (`every`, plus the drill\'s timeout) the next drill is; 0 when not late.',
               ('source',), 'restore_drill'),
)
