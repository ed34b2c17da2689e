"""Redis: slow commands (SLOWLOG) since the previous collection, and latency spikes (LATENCY LATEST).

A collector of its own beside ``redis``: it keeps state between collections (the newest entry already
counted), it can be turned off on its own (slow log arguments hold key names, which some sites will not
export), and a SLOWLOG renamed away or denied never takes ``redis_up`` down with it.

Entries are aggregated by command and key pattern (digits and UUIDs in the key folded to ``*``), so the
series stay few; the entries themselves go to the facts. Entries of dbwatch's own connection are skipped.
"""

from __future__ import annotations

import re
from typing import Any

from dbwatch.model import MetricFamily, Snapshot, counter, gauge
from dbwatch.collectors.base import Collector, CollectorError
from dbwatch.collectors.redis import CLIENT_NAME, RedisSession
from dbwatch.model.facts.redis import LatencyEvent, LatencyEvents, SlowEntry, SlowGroup, Slowlog
from dbwatch.model.options import CollectorOptions, Count

OTHER = ("other", "")


class SlowlogOptions(CollectorOptions):
    max_entries: Count = 1024  # SLOWLOG GET count per collection
    max_series: Count = 200  # (command, key pattern) series exported; the rest are summed as "other"


class SlowlogCollector(Collector[RedisSession, SlowlogOptions]):
    """Facts: :class:`Slowlog` and :class:`LatencyEvents`."""

    name = "slowlog"
    up_metric = None
    options_model = SlowlogOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_id: int | None = None  # id of the newest entry already seen; None before any
        self._last_started = 0.0
        self._baselined = False
        self._totals: dict[tuple[str, str], list[float]] = {}  # (command, pattern) -> [count, seconds]
        self._lost = 0

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        limit = self.options.max_entries
        async with session.lock:
            # One round trip. SLOWLOG GET last, so that the entries of the commands before it are read next time
            # (and skipped as ours).
            (threshold, _), (latency, latency_error), (length, _), (entries, slowlog_error) = await session.try_many(
                ("CONFIG", "GET", "slowlog-log-slower-than"), ("LATENCY", "LATEST"), ("SLOWLOG", "LEN"),
                ("SLOWLOG", "GET", limit))
        if latency_error is None:
            snapshot.families.extend(self._latency(latency or [], snapshot))
        else:
            snapshot.notes.append(f"LATENCY LATEST is not available ({latency_error}): latency spikes are not "
                                  f"collected")
        if slowlog_error is not None:
            snapshot.notes.append(f"SLOWLOG is not available ({slowlog_error}): slow commands are not collected")
            return
        raws = list(entries or [])
        try:
            parsed = sorted(map(_entry, self._to_parse(raws)), key=lambda e: e.id)
        except (TypeError, ValueError, IndexError) as exc:
            raise CollectorError(f"SLOWLOG GET gave an unexpected reply: {exc}") from None
        log_slower_than = _threshold(threshold)
        length = length if isinstance(length, int) else len(raws)
        snapshot.families.extend(self._slowlog(parsed, length, log_slower_than, session, snapshot))
        if log_slower_than is not None and log_slower_than < 0:
            snapshot.notes.append("the slow log is off (slowlog-log-slower-than < 0): "
                                  "CONFIG SET slowlog-log-slower-than 10000 logs commands slower than 10 ms")

    def _to_parse(self, raws: list[Any]) -> list[Any]:
        """The raw entries worth parsing: all of them at the first collection and after a restart (the newest id
        went down), else the newest one (the last id and duration) and those :meth:`_new_entries` may find new.
        A server's slow log mostly holds entries already seen (up to slowlog-max-len, 128 by default), and
        parsing each one every collection was most of this collector's cost in a fleet."""
        last_id, last_started = self._last_id, self._last_started
        if last_id is None or not raws:
            return raws
        newest = max(raws, key=_id)
        if _id(newest) < last_id:
            return raws
        return [raw for raw in raws if raw is newest or _id(raw) > last_id or float(raw[1]) > last_started]

    def _slowlog(self, entries: list[SlowEntry], length: int, log_slower_than: float | None,
                 session: RedisSession, snapshot: Snapshot) -> list[MetricFamily]:
        new, lost = self._new_entries(entries)
        if entries:
            self._last_id, self._last_started = entries[-1].id, entries[-1].started_at
        baseline = not self._baselined
        self._baselined = True
        if baseline:
            new, lost = [], 0
        theirs = [e for e in new if not ((session.named and e.client_name == CLIENT_NAME)
                                         or e.client_addr in session.addresses)]
        self._lost += lost
        max_series = self.options.max_series
        groups: dict[tuple[str, str], list[float]] = {}
        for entry in theirs:
            key = (entry.command, entry.key_pattern)
            group = groups.setdefault(key, [0, 0.0, 0.0])
            group[0] += 1
            group[1] += entry.duration_seconds
            group[2] = max(group[2], entry.duration_seconds)
            if key not in self._totals and len(self._totals) >= max_series:
                key = OTHER  # bounded series: later newcomers share one
            total = self._totals.setdefault(key, [0, 0.0])
            total[0] += 1
            total[1] += entry.duration_seconds
        snapshot.put(Slowlog(
            baseline=baseline,
            entries=theirs,
            groups=sorted((SlowGroup(cmd, pattern, int(g[0]), g[1], g[2]) for (cmd, pattern), g in groups.items()),
                          key=lambda g: -g.total_seconds),
            lost=lost,
            length=length,
            log_slower_than_seconds=log_slower_than,
        ))
        labels = ("command", "key_pattern")
        count = counter("dbwatch_redis_slowlog_entries_total",
                        "Slow log entries seen by dbwatch (since it started), by command and key pattern.", labels)
        seconds = counter("dbwatch_redis_slowlog_duration_seconds_total",
                          "Execution time of those entries (without I/O), by command and key pattern.", labels)
        for key, (calls, spent) in self._totals.items():
            count.add(key, calls)
            seconds.add(key, spent)
        lost_total = counter(
            "dbwatch_redis_slowlog_lost_entries_total",
            "Entries that left the slow log (slowlog-max-len, SLOWLOG RESET) before dbwatch read them.",
        )
        lost_total.add((), self._lost)
        families = [count, seconds, lost_total]
        # redis_exporter's three slow log metrics.
        length_fam = gauge("redis_slowlog_length", "Total slowlog")
        length_fam.add((), length)
        last_id = gauge("redis_slowlog_last_id", "Last id of slowlog")
        last_duration = gauge("redis_last_slow_execution_duration_seconds",
                              "The amount of time needed for last slow execution, in seconds")
        if entries:
            last_id.add((), entries[-1].id)
            last_duration.add((), entries[-1].duration_seconds)
        return [*families, length_fam, last_id, last_duration]

    def _new_entries(self, entries: list[SlowEntry]) -> tuple[list[SlowEntry], int]:
        """The entries not seen before, and how many ids were skipped (entries lost to us).

        Ids grow within a server's life and survive SLOWLOG RESET; a restart starts them again at 0. An entry is
        new if its id is above the last one seen, or if it started in a later second than that one (a restarted
        server whose ids have not yet passed the old ones). Ids below the last seen, newest included: restarted.
        """
        if self._last_id is None:
            return entries, 0
        if entries and entries[-1].id < self._last_id:
            return entries, max(0, entries[-1].id + 1 - len(entries))
        new = [e for e in entries if e.id > self._last_id or e.started_at > self._last_started]
        if not new or any(e.id <= self._last_id for e in new):
            return new, 0
        return new, max(0, new[-1].id - self._last_id - len(new))

    def _latency(self, rows: list[Any], snapshot: Snapshot) -> list[MetricFamily]:
        # redis_exporter's names: the last spike's time and duration per event.
        last = gauge("redis_latency_spike_last", "When the latest latency spike happened (Unix time)", ("event_name",))
        duration = gauge("redis_latency_spike_duration_seconds", "Length of the last latency spike in seconds",
                         ("event_name",))
        worst = gauge("dbwatch_redis_latency_spike_max_seconds",
                      "Longest latency spike of this event since the server started or LATENCY RESET.",
                      ("event_name",))
        events = []
        for row in rows:
            event = LatencyEvent(event=str(row[0]), last_spike_at=float(row[1]), latest_seconds=float(row[2]) / 1000,
                                 max_seconds=float(row[3]) / 1000)
            events.append(event)
            last.add((event.event,), event.last_spike_at)
            duration.add((event.event,), event.latest_seconds)
            worst.add((event.event,), event.max_seconds)
        snapshot.put(LatencyEvents(tuple(events)))
        return [last, duration, worst]


def _threshold(reply: Any) -> float | None:
    if isinstance(reply, dict):
        reply = list(reply.items())[0] if reply else None
    if isinstance(reply, (list, tuple)) and len(reply) >= 2:
        try:
            return int(reply[1]) / 1e6
        except ValueError:
            return None
    return None


def _id(raw: Any) -> int:
    return int(raw[0])


def _entry(raw: Any) -> SlowEntry:
    # id, start (Unix time), duration (µs), arguments, and since Redis 4 the client's address and name.
    args = [str(arg) for arg in raw[3]]
    command, key = classify(args)
    return SlowEntry(
        id=int(raw[0]), started_at=float(raw[1]), duration_seconds=int(raw[2]) / 1e6, command=command,
        key_pattern=key_pattern(key) if key else "",
        client_addr=str(raw[4]) if len(raw) > 4 else "", client_name=str(raw[5]) if len(raw) > 5 else "",
    )


# Commands whose first argument is not a key.
_KEYLESS = frozenset(
    "PING ECHO KEYS SCAN FLUSHALL FLUSHDB DBSIZE INFO TIME SELECT AUTH HELLO MULTI EXEC DISCARD SAVE BGSAVE "
    "BGREWRITEAOF LASTSAVE SHUTDOWN WAIT WAITAOF PUBLISH SPUBLISH SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE RANDOMKEY "
    "SWAPDB REPLICAOF SLAVEOF ROLE MONITOR SYNC PSYNC READONLY READWRITE QUIT RESET UNWATCH FAILOVER".split()
)
# Commands with a subcommand: "CONFIG SET", "CLIENT LIST"; the listed ones take a key after it.
_CONTAINERS = frozenset(
    "CONFIG CLIENT DEBUG SLOWLOG LATENCY CLUSTER SCRIPT FUNCTION OBJECT MEMORY XINFO XGROUP ACL COMMAND MODULE "
    "PUBSUB".split()
)
_CONTAINER_WITH_KEY = frozenset("OBJECT MEMORY XINFO XGROUP".split())
_SCRIPTS = frozenset("EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO".split())


def classify(args: list[str]) -> tuple[str, str]:
    """``(command, key)`` of a slow log entry's arguments; key is "" when the command has none."""
    if not args:
        return "", ""
    command = args[0].upper()
    if command in _CONTAINERS and len(args) > 1:
        key = args[2] if command in _CONTAINER_WITH_KEY and len(args) > 2 else ""
        return f"{command} {args[1].upper()}", key
    if command in _KEYLESS or len(args) < 2:
        return command, ""
    if command in _SCRIPTS:  # EVAL script numkeys key [key ...]
        return command, args[3] if len(args) > 3 and args[2].isdigit() and int(args[2]) > 0 else ""
    return command, args[1]


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LONG_HEX = re.compile(r"(?<![0-9a-zA-Z])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}(?![0-9a-zA-Z])")
_DIGITS = re.compile(r"\d+")
_STARS = re.compile(r"\*{2,}")
MAX_PATTERN = 100


def key_pattern(key: str) -> str:
    """``user:1042:cart`` → ``user:*:cart``; UUIDs, long hex ids (hashes) and runs of digits become ``*``."""
    pattern = _DIGITS.sub("*", _LONG_HEX.sub("*", _UUID.sub("*", key)))
    pattern = _STARS.sub("*", pattern)
    return pattern if len(pattern) <= MAX_PATTERN else pattern[: MAX_PATTERN - 1] + "…"
