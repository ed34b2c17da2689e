"""Parsers of slow query logs: MySQL/MariaDB slow log, PostgreSQL stderr, csvlog and jsonlog.

Each parser is a :class:`~dbwatch.collectors.logtail.LineParser`: it receives whole lines and returns
:class:`SlowEvent` for the records it knows to be complete, keeping the last one until the next record starts
(or the follower says the writer is quiet). A record that cannot be parsed, holds invalid UTF-8 or is larger
than ``max_record`` characters is counted in ``skipped`` and dropped; it never stops the parse.

PostgreSQL's logs are read for ``log_min_duration_statement`` lines only (``duration: X ms  statement: ...``
and ``... execute <name>: ...``); ``parse``/``bind`` durations of the extended protocol are not queries run
and are left out, like every other message. Messages must be in English (``lc_messages = 'C'``).
"""

from __future__ import annotations

import calendar
import csv
import json
import re
from typing import NamedTuple

from dbwatch.collectors.logtail import MAX_RECORD, LineParser

__all__ = ["SlowEvent", "MySQLSlowLogParser", "PostgresStderrParser", "PostgresCsvParser",
           "PostgresJsonParser", "AutoParser", "FORMATS", "make_parser"]

FORMATS = ("auto", "mysql", "postgres-stderr", "postgres-csv", "postgres-json")


class SlowEvent(NamedTuple):
    query: str
    query_time: float  # seconds
    lock_time: float = 0.0
    rows_sent: int = 0
    rows_examined: int = 0
    rows_affected: int = 0
    timestamp: float | None = None  # Unix time the server logged
    db: str = ""
    user: str = ""
    full_scan: bool = False
    tmp_table_on_disk: bool = False
    postgres: bool = False  # fingerprint with PostgreSQL's quoting rules


_new_event = tuple.__new__  # SlowEvent from a full tuple without NamedTuple's Python-level __new__


def make_parser(fmt: str, max_record: int = MAX_RECORD) -> LineParser[SlowEvent]:
    if fmt not in FORMATS:
        raise ValueError(f"expected a format among {', '.join(FORMATS)}, got {fmt!r}")
    return {"auto": AutoParser, "mysql": MySQLSlowLogParser, "postgres-stderr": PostgresStderrParser,
            "postgres-csv": PostgresCsvParser, "postgres-json": PostgresJsonParser}[fmt](max_record)


def _valid(text: str) -> bool:
    """False when the text holds bytes that were not UTF-8 (decoded as lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Parser(LineParser[SlowEvent]):
    def __init__(self, max_record: int = MAX_RECORD) -> None:
        self.max_record = max_record
        self.skipped = 0
        self.skipped_lines = 0
        self._pending = ""

    def pending(self) -> str:
        return self._pending

    def discard_pending(self) -> None:
        self._pending = ""


# -- MySQL / MariaDB ----------------------------------------------------------------------------------------

_UH = "# User@Host: "
_BODY = re.compile(r"\n(?=[^#])")
_TIMES = re.compile(r"Query_time: +(\S+) +Lock_time: +(\S+) +Rows_sent: +(\S+) +Rows_examined: +(\S+)")
_SERVER_HEADER = re.compile(
    r"(?:\S*(?:mysqld|mariadbd)(?:\.exe)?, Version: .*|Tcp port: .*|T[cC][pP] [pP]ort: .*|Time\s+Id\s+Command.*|)$"
)
_COMMON = re.compile(
    r"(?:# Time: [^\n]*\n)?"
    r"# User@Host: ([^\[\n]*)\[[^\n]*\n"
    r"(?:# Thread_id: [^\n]*?Schema: (\S*) [^\n]*\n)?"
    r"# Query_time: ([0-9.]+) +Lock_time: ([0-9.]+) +Rows_sent: (\d+) +Rows_examined: (\d+)[^\n]*\n"
    r"(?:# Rows_affected: (\d+)[^\n]*\n)?"
    r"((?:#[^\n]*\n)*)"
    r"(?:use ([^\n;]*);\n)?"
    r"(?:SET timestamp=(\d+);\n)?"
    r"(?=[^#\s])"
)
_META = ("use ", "SET timestamp=", "SET insert_id=", "SET last_insert_id=")
_RESTART = re.compile(r"\n\S*(?:mysqld|mariadbd)(?:\.exe)?, Version: .*started with:\n")


class MySQLSlowLogParser(_Parser):
    """The slow log of MySQL 5.x/8.x, Percona Server and MariaDB (``log_slow_verbosity`` lines included)."""

    def __init__(self, max_record: int = MAX_RECORD) -> None:
        super().__init__(max_record)
        self._db = ""  # the last ``use``: MySQL writes it only when the session's database changes
        self._dropping = False  # inside a record dropped for its size

    def feed(self, text: str) -> list[SlowEvent]:
        buf = self._pending + text if self._pending else text
        starts = _event_starts(buf)
        if not starts:
            if self._dropping:
                return []  # the rest of a record already counted as too large
            self._pending = buf
            if len(buf) > self.max_record:
                self._drop_oversized()
            return []
        if starts[0] > 0 and not self._dropping:
            self._junk(buf[: starts[0]])
        self._dropping = False
        events: list[SlowEvent] = []
        parse = self._parse
        for begin, end in zip(starts, starts[1:]):
            event = parse(buf[begin:end])
            if event is not None:
                events.append(event)
        self._pending = buf[starts[-1]:]
        if len(self._pending) > self.max_record:
            self._drop_oversized()
        return events

    def flush(self) -> list[SlowEvent]:
        pending, self._pending = self._pending, ""
        if not pending:
            return []
        if not pending.startswith("#"):
            self._junk(pending)
            return []
        event = self._parse(pending)
        return [] if event is None else [event]

    def pending_looks_complete(self) -> bool:
        return self._pending.endswith(";\n")

    def _drop_oversized(self) -> None:
        self._pending = ""
        self._dropping = True
        self.skipped += 1

    def discard_pending(self) -> None:
        self._drop_oversized()
        self.skipped -= 1  # the follower counted it

    def _junk(self, text: str) -> None:
        for line in text.splitlines():
            if not _SERVER_HEADER.match(line):
                self.skipped_lines += 1

    def _parse(self, text: str) -> SlowEvent | None:
        if len(text) > self.max_record:
            self.skipped += 1
            return None
        m = _COMMON.match(text)
        if m is not None:  # the layout every MySQL and MariaDB writes, in one regex
            user, schema, qt, lock, sent, examined, affected, more, use, ts = m.groups()
            query = text[m.end():].rstrip()
            if ", Version: " in query:
                query = _cut_restart(query)
            if query.endswith(";"):
                query = query[:-1]
            if use is not None:
                self._db = use.strip("`")
            if query and (query.isascii() or _valid(query)):
                return _new_event(SlowEvent, (
                    query, float(qt), float(lock), int(sent), int(examined), int(affected) if affected else 0,
                    float(ts) if ts else None, schema or self._db, user.strip(),
                    "Full_scan: Yes" in more, "Tmp_table_on_disk: Yes" in more, False))
        return self._parse_any(text)

    def _parse_any(self, text: str) -> SlowEvent | None:
        split = _BODY.search(text)
        if split is None:
            header, body = text, ""
        else:
            header, body = text[: split.start()], text[split.end():]
        times = _TIMES.search(header)
        ts = None
        while body.startswith(_META):
            end = body.find("\n")
            line = body[:end] if end >= 0 else body
            body = body[end + 1:] if end >= 0 else ""
            if line[0] == "u":
                self._db = line[4:].rstrip().rstrip(";").strip("`")
            elif line[4] == "t":
                try:
                    ts = float(line[14:].rstrip().rstrip(";"))
                except ValueError:
                    pass
        if body.startswith("# administrator command: "):
            body = body[2:]
        elif not body:
            admin = header.find("# administrator command: ")
            if admin < 0 or times is None:
                self.skipped += 1
                return None
            body = header[admin + 2:]
        query = body.rstrip()
        if ", Version: " in query:
            query = _cut_restart(query)
        if query.endswith(";"):
            query = query[:-1]
        if times is None or not query or not _valid(query):
            self.skipped += 1
            return None
        try:
            qt, lock, sent, examined = (float(times.group(1)), float(times.group(2)), int(times.group(3)),
                                        int(times.group(4)))
        except ValueError:
            self.skipped += 1
            return None
        affected = 0
        at = header.find("Rows_affected: ")
        if at >= 0:
            value = header[at + 15: header.find(" ", at + 15)].strip()
            affected = int(value) if value.isdigit() else 0
        db = self._db
        at = header.find("Schema: ")
        if at >= 0:
            value = header[at + 8: header.find(" ", at + 8)].strip()
            if value:
                db = value
        user = ""
        at = header.find(_UH)
        if at >= 0:
            user = header[at + 13: header.find("[", at + 13)].strip()
        return SlowEvent(query, qt, lock, sent, examined, affected, ts, db, user,
                         "Full_scan: Yes" in header, "Tmp_table_on_disk: Yes" in header)


def _cut_restart(query: str) -> str:
    """The statement without the header a restarted server appends to its slow log right after it."""
    m = _RESTART.search(query)
    return query[: m.start()].rstrip() if m else query


def _event_starts(buf: str) -> list[int]:
    """Where events begin: at ``# User@Host:``, or at the ``# Time:`` line right before it."""
    starts = []
    find = buf.find
    i = find(_UH)
    while i != -1:
        if i == 0 or buf[i - 1] == "\n":
            previous = buf.rfind("\n", 0, i - 1) + 1 if i else 0
            starts.append(previous if i and buf.startswith("# Time: ", previous) else i)
        i = find(_UH, i + 13)
    return starts


# -- PostgreSQL ---------------------------------------------------------------------------------------------

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
        seconds = calendar.timegm(tuple(int(g) for g in m.groups()[:6]))  # type: ignore[arg-type]
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


class PostgresStderrParser(_Parser):
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
            self._pending = buf[last:]
        else:
            record_start = 0
            find = buf.find
            pos = find("\n")
            while pos != -1 and pos + 1 < len(buf):
                if buf[pos + 1] != "\t":
                    self._record(buf[record_start:pos], events)
                    record_start = pos + 1
                pos = find("\n", pos + 1)
            self._pending = buf[record_start:]
        if len(self._pending) > self.max_record:
            self._pending = ""
            self.skipped += 1
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


class PostgresCsvParser(_Parser):
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
        self._pending = "".join(lines[complete:])
        if len(self._pending) > self.max_record:
            self._pending = ""
            self.skipped += 1
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


class PostgresJsonParser(_Parser):
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


_CSV_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Za-z0-9+:-]+,")


class AutoParser(_Parser):
    """Recognises the format from the first lines, then hands everything to that format's parser."""

    def __init__(self, max_record: int = MAX_RECORD) -> None:
        self.chosen: _Parser | None = None
        self._skipped = 0
        super().__init__(max_record)

    @property  # type: ignore[override]
    def skipped(self) -> int:
        return self.chosen.skipped if self.chosen else self._skipped

    @skipped.setter
    def skipped(self, value: int) -> None:
        if self.chosen:
            self.chosen.skipped = value
        else:
            self._skipped = value

    @property  # type: ignore[override]
    def skipped_lines(self) -> int:
        return self.chosen.skipped_lines if self.chosen else 0

    @skipped_lines.setter
    def skipped_lines(self, value: int) -> None:
        pass

    def feed(self, text: str) -> list[SlowEvent]:
        if self.chosen is None:
            self._pending += text
            fmt = sniff(self._pending)
            if fmt is None:
                return []
            self.chosen = make_parser(fmt, self.max_record)  # type: ignore[assignment]
            self.chosen.skipped = self._skipped
            text, self._pending = self._pending, ""
        return self.chosen.feed(text)

    def flush(self) -> list[SlowEvent]:
        return self.chosen.flush() if self.chosen else []

    def pending(self) -> str:
        return self.chosen.pending() if self.chosen else self._pending

    def discard_pending(self) -> None:
        if self.chosen:
            self.chosen.discard_pending()
        else:
            self._pending = ""

    def pending_looks_complete(self) -> bool:
        return self.chosen.pending_looks_complete() if self.chosen else False

    def idle(self) -> list[SlowEvent]:
        return self.chosen.idle() if self.chosen else []


def sniff(text: str) -> str | None:
    """The format of a log from its first lines, or None when there is not enough to tell."""
    stripped = text.lstrip()
    if not stripped:
        return None
    if stripped[0] == "{":
        return "postgres-json"
    if "# User@Host: " in text or text.startswith("# Time: ") or _SERVER_HEADER.match(stripped.split("\n", 1)[0]) \
            and "Version: " in stripped.split("\n", 1)[0]:
        return "mysql"
    if _CSV_START.match(stripped):
        return "postgres-csv"
    if "\n" in text:
        return "postgres-stderr"
    return None
