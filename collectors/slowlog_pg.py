"""Parsers of PostgreSQL's logs for ``log_min_duration_statement`` lines: stderr, csvlog and jsonlog.

See :mod:`dbwatch.collectors.slowlog_formats` for what every parser promises; this module holds the three
PostgreSQL formats so that each module stays one concern.
"""

from __future__ import annotations

import calendar
import csv
import json
import re

from dbwatch.collectors.slowlog_event import SlowEvent, SlowParser, _new_event, _valid

__all__ = ["PostgresCsvParser", "PostgresJsonParser", "PostgresStderrParser"]

# -- shared by the three formats ---------------------------------------------------------------------------------------------

_PG_DURATION = re.compile(r"duration: ([0-9.]+) ms  (?:statement|execute [^:]*): ", re.S)
_PG_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)? (UTC|GMT|[+-]\d\d)?")


def _pg_query(text: str) -> str:
    """The statement as logged, without the final semicolon psql sends (``select 1;`` is ``select 1``)."""
    return text.strip().rstrip(";").rstrip()


def _pg_time(text: str) -> float | None:
    m = _PG_TIME.match(text)
    if m is None:
        return None
    stamp = m.group()
    seconds = _PG_TIMES.get(stamp)  # the same second is logged by many lines: timegm once per second
    if seconds is None:
        seconds = calendar.timegm(tuple(int(g) for g in m.groups()[:6]))
        zone = m.group(8)
        if zone and zone[0] in "+-":
            seconds -= int(zone) * 3600
        if len(_PG_TIMES) >= 4096:
            _PG_TIMES.clear()
        _PG_TIMES[stamp] = seconds
    return seconds + (float(m.group(7)) if m.group(7) else 0.0)


_PG_TIMES: dict[str, float] = {}


def _prefix_field(prefix: str, name: str) -> str:
    """``user=`` / ``db=`` from a ``log_line_prefix``, as a whole word; "" when the prefix has none."""
    at = prefix.find(name)
    while at > 0 and (prefix[at - 1].isalnum() or prefix[at - 1] == "_"):
        at = prefix.find(name, at + 1)
    if at < 0:
        return ""
    m = _PG_FIELD.match(prefix, at + len(name))
    return m.group() if m else ""


_PG_FIELD = re.compile(r"[^,\s@]+")


class PostgresStderrParser(SlowParser):
    """``log_destination = 'stderr'`` (any ``log_line_prefix``); continuation lines start with a tab."""

    def feed(self, text: str) -> list[SlowEvent]:
        buf = self._pending + text if self._pending else text
        events: list[SlowEvent] = []
        # The last line stays pending: its continuation lines (tab first) may come with the next read.
        last = buf.rfind("\n", 0, len(buf) - 1) + 1
        if "\n\t" not in buf:  # the common case: one line, one record
            record = self._record
            for line in buf[:last].split("\n"):
                if "duration: " in line:
                    record(line, events)
            pending = buf[last:]
        else:
            record_start = 0
            find = buf.find
            pos = find("\n")
            while pos != -1 and pos + 1 < len(buf):
                if buf[pos + 1] != "\t":
                    self._record(buf[record_start:pos], events)
                    record_start = pos + 1
                pos = find("\n", pos + 1)
            pending = buf[record_start:]
        self._keep(pending)
        return events

    def flush(self) -> list[SlowEvent]:
        events: list[SlowEvent] = []
        pending, self._pending = self._pending, ""
        if pending:
            self._record(pending.rstrip("\n"), events)
        return events

    def _record(self, record: str, events: list[SlowEvent]) -> None:
        if "duration: " not in record:
            return
        m = _PG_DURATION.search(record)
        if m is None:
            return  # a parse/bind duration, or log_duration without the statement
        if len(record) > self.max_record or not _valid(record):
            self.skipped += 1
            return
        prefix = record[: m.start()]
        query = record[m.end():]
        if "\n\t" in query:
            query = query.replace("\n\t", "\n")
        events.append(_new_event(SlowEvent, (
            _pg_query(query), float(m.group(1)) / 1000, 0.0, 0, 0, 0, _pg_time(prefix),
            _prefix_field(prefix, "db="), _prefix_field(prefix, "user="), False, False, True)))


class PostgresCsvParser(SlowParser):
    """``log_destination = 'csvlog'``: one CSV record per message, quoted fields may span lines."""

    def feed(self, text: str) -> list[SlowEvent]:
        buf = self._pending + text if self._pending else text
        lines = buf.splitlines(keepends=True)
        complete = 0
        inside = False
        for i, line in enumerate(lines):
            if line.count('"') % 2:
                inside = not inside
            if not inside:
                complete = i + 1
        events: list[SlowEvent] = []
        if complete:
            for row in csv.reader(lines[:complete]):
                self._row(row, events)
        self._keep("".join(lines[complete:]))
        return events

    def flush(self) -> list[SlowEvent]:
        pending, self._pending = self._pending, ""
        if pending:
            self.skipped += 1  # an unterminated quoted field at the end of a finished file
        return []

    def pending_looks_complete(self) -> bool:
        return False

    def idle(self) -> list[SlowEvent]:
        return []  # what is kept is a record whose quoted field is not closed yet: it is still being written

    def _row(self, row: list[str], events: list[SlowEvent]) -> None:
        if len(row) < 14:
            if row:
                self.skipped += 1
            return
        message = row[13]
        if not message.startswith("duration: "):
            return
        m = _PG_DURATION.match(message)
        if m is None:
            return
        if len(message) > self.max_record or not _valid(message):
            self.skipped += 1
            return
        events.append(SlowEvent(_pg_query(message[m.end():]), float(m.group(1)) / 1000, timestamp=_pg_time(row[0]),
                                db=row[2], user=row[1], postgres=True))


class PostgresJsonParser(SlowParser):
    """``log_destination = 'jsonlog'`` (PostgreSQL 15+): one JSON object per line."""

    def feed(self, text: str) -> list[SlowEvent]:
        events: list[SlowEvent] = []
        for line in text.splitlines():
            if "duration: " not in line:
                continue
            try:
                record = json.loads(line)
                message = record["message"]
            except (ValueError, KeyError, TypeError):
                self.skipped += 1
                continue
            m = _PG_DURATION.match(message)
            if m is None:
                continue
            if len(message) > self.max_record or not _valid(message):
                self.skipped += 1
                continue
            events.append(SlowEvent(_pg_query(message[m.end():]), float(m.group(1)) / 1000,
                                    timestamp=_pg_time(str(record.get("timestamp", ""))),
                                    db=str(record.get("dbname", "")), user=str(record.get("user", "")),
                                    postgres=True))
        return events

    def flush(self) -> list[SlowEvent]:
        return []


