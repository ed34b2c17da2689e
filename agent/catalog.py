"""The metric families the agent itself exports beside its targets' (the scheduler, rules, alerts, delivery).

docs/metrics.md is generated from this declaration and the collectors' (``dbwatch.collectors.catalog``).
"""

from __future__ import annotations

from dbwatch.model.catalog import C, G, I, MetricSpec

TITLE = "The agent itself"
INTRO = """\
Series about dbwatch itself: the collections it runs, its rules, alerts and notifications, and the process.
"""

FAMILIES: tuple[MetricSpec, ...] = (
    MetricSpec('dbwatch_target_up', G,
               "Whether the target's last collection by its main collector succeeded (1 = yes); one name for "
               'every engine, read by `TargetDown`.',
               (), 'agent'),
    MetricSpec('dbwatch_build_info', G,
               "dbwatch's version (always 1)",
               ('version', 'python'), 'agent'),
    MetricSpec('dbwatch_collector_duration_seconds', G,
               'duration of the last collection',
               ('collector',), 'agent'),
    MetricSpec('dbwatch_collector_runs_total', C,
               'collections run',
               ('collector',), 'agent'),
    MetricSpec('dbwatch_collector_errors_total', C,
               'collections that failed',
               ('collector',), 'agent'),
    MetricSpec('dbwatch_collector_last_success_timestamp_seconds', G,
               'end of the last successful collection',
               ('collector',), 'agent'),
    MetricSpec('dbwatch_collect_age_seconds', G,
               'seconds since the last collection ended (staleness without sample timestamps)',
               ('collector',), 'agent'),
    MetricSpec('dbwatch_collector_effective_interval_seconds', G,
               'the interval the collector runs at now: the configured one, or up to 4 times longer (2 min at most '
               'unless configured longer) while its collections time out (the agent easing off an overloaded '
               'server); back as soon as one succeeds',
               ('collector',), 'agent'),
    MetricSpec('dbwatch_server_concurrency_limit', G,
               'collections the agent runs at once on a server (host:port of its targets) now: '
               'collection.max_concurrent_per_server, halved when collections time out (once per congestion), '
               'one place back per that many successes', ('server',), 'agent'),
    MetricSpec('dbwatch_server_collections_in_flight', G, 'collections running on the server (host:port) now',
               ('server',), 'agent'),
    MetricSpec('dbwatch_server_collections_deferred_total', C,
               "secondary collections (not a target's main collector) not run because the server's main "
               'collections queued for places: they back off as if they had timed out, and run again once the '
               'queue is short', ('server',), 'agent'),
    MetricSpec('dbwatch_alerts', G,
               'pending and firing alerts',
               ('alertname', 'severity', 'state', 'target'), 'agent'),
    MetricSpec('dbwatch_silences', G,
               'silences by state: active (muting matching alerts for dbwatch\'s own receivers), pending, expired',
               ('state',), 'agent'),
    MetricSpec('dbwatch_recommendation', I,
               'a recommendation in force',
               ('rule', 'target', 'severity', 'fingerprint', 'summary'), 'agent'),
    MetricSpec('dbwatch_rules_loaded', G,
               'rules in force (threshold, python)',
               ('kind',), 'agent'),
    MetricSpec('dbwatch_rule_errors_total', C,
               'evaluations of a rule that failed: a needed fact missing or of the wrong type, or an exception',
               ('rule', 'target', 'reason'), 'agent'),
    MetricSpec('dbwatch_rule_sql_parse_failures_total', C,
               "statements a rule's SQL analysis could not parse (skipped: no hint from them)",
               ('rule', 'dialect'), 'agent'),
    MetricSpec('dbwatch_notifications_total', C,
               'notification requests: sent, retried, failed',
               ('receiver', 'result'), 'agent'),
    MetricSpec('dbwatch_notifications_failed_total', C,
               'notifications given up on',
               ('receiver',), 'agent'),
    MetricSpec('dbwatch_notification_queue_length', G,
               'notifications in the outbox not yet delivered',
               ('receiver',), 'agent'),
    MetricSpec('dbwatch_notification_queue_oldest_age_seconds', G,
               'age of the oldest undelivered notification',
               ('receiver',), 'agent'),
    MetricSpec('dbwatch_state_store_degraded', G,
               '1 while a state file (alerts.db, outbox.db, failover.db) cannot be written; its state is kept '
               'in memory until it can (docs/troubleshooting.md)',
               ('file',), 'agent'),
    MetricSpec('dbwatch_state_write_errors_total', C,
               'writes to a state file that failed',
               ('file',), 'agent'),
    MetricSpec('dbwatch_state_file_moved_aside', I,
               'a damaged state file found at start, moved aside (1 until the next restart)',
               ('file', 'moved_to'), 'agent'),
    MetricSpec('dbwatch_http_connections', G,
               "open connections to dbwatch's HTTP listener",
               (), 'agent'),
    MetricSpec('dbwatch_http_connections_max', G,
               'the cap on open HTTP connections (a quarter of the file limit, at most 1024)',
               (), 'agent'),
    MetricSpec('dbwatch_http_connections_closed_total', C,
               'HTTP connections closed by the cap: idle_evicted (the longest idle), refused (503, all busy)',
               ('reason',), 'agent'),
    MetricSpec('dbwatch_event_loop_lag_seconds', None,
               "a histogram of how late a timer of the agent's event loop fired (probed every 0.25 s): the wait of "
               'a scrape or a round trip ready then (agent/loophealth.py)', (), 'agent'),
    MetricSpec('dbwatch_scrape_seconds', None,
               'a histogram of /metrics scrapes by body (whole, target, agent) and how each was answered: ahead '
               "(made before it came) or stand_in (a young whole body), on the listener's thread; loop (made on "
               "the agent's event loop); encoding: gzip or identity", ('body', 'served', 'encoding'), 'agent'),
    MetricSpec('dbwatch_gc_pause_seconds', None,
               "a histogram of the runs of Python's cyclic garbage collector, by generation, and how long each "
               'held the agent', ('generation',), 'agent'),
    MetricSpec('process_*', None,
               "the agent's own CPU, memory, file descriptors (prometheus-client)",
               (), 'agent'),
)
