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

import re
from typing import Callable

from dbwatch.collectors.logtail import MAX_RECORD
from dbwatch.collectors.slowlog_event import SlowEvent, SlowParser, _new_event, _valid
from dbwatch.collectors.slowlog_neo4j import Neo4jQueryLogParser, looks_like_neo4j
from dbwatch.collectors.slowlog_pg import PostgresCsvParser, PostgresJsonParser, PostgresStderrParser

__all__ = ["SlowEvent", "MySQLSlowLogParser", "PostgresStderrParser", "PostgresCsvParser",
           "PostgresJsonParser", "AutoParser", "FORMATS", "make_parser", "format_name", "sniff"]

FORMATS = ("auto", "mysql", "postgres-stderr", "postgres-csv", "postgres-json", "neo4j")


def _parsers() -> dict[str, Callable[[int], SlowParser]]:
    return {"auto": AutoParser, "mysql": MySQLSlowLogParser, "postgres-stderr": PostgresStderrParser,
            "postgres-csv": PostgresCsvParser, "postgres-json": PostgresJsonParser, "neo4j": Neo4jQueryLogParser}


def make_parser(fmt: str, max_record: int = MAX_RECORD) -> SlowParser:
    if fmt not in FORMATS:
        raise ValueError(f"expected a format among {', '.join(FORMATS)}, got {fmt!r}")
    return _parsers()[fmt](max_record)


def format_name(parser: SlowParser) -> str:
    """The format a parser reads: for ``auto``, the one it recognised (``auto`` until it has)."""
    parser = getattr(parser, "chosen", None) or parser
    return next((name for name, cls in _parsers().items() if type(parser) is cls), "auto")


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


class MySQLSlowLogParser(SlowParser):
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
        return self._pending.endswith(";\n") and _has_statement(self._pending)

    def idle(self) -> list[SlowEvent]:
        # The server may write a record's header and ``SET timestamp=...;`` in one write and its statement in
        # the next: a record without its statement yet waits for it (or for the next record).
        return self.flush() if _has_statement(self._pending) else []

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
            if query.startswith(_META):  # meta lines the regex did not take (or no statement at all)
                return self._parse_any(text)
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


def _has_statement(record: str) -> bool:
    """Whether a record's last line is a statement's, not a header (``#``) or ``use``/``SET timestamp``."""
    last = record.rstrip("\n").rpartition("\n")[2]
    return bool(last) and not last.startswith(("#", *_META))


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


_CSV_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Za-z0-9+:-]+,")


class AutoParser(SlowParser):
    """Recognises the format from the first lines, then hands everything to that format's parser."""

    def __init__(self, max_record: int = MAX_RECORD) -> None:
        self.chosen: SlowParser | None = None
        self._skipped = 0
        super().__init__(max_record)

    @property
    def skipped(self) -> int:
        return self.chosen.skipped if self.chosen else self._skipped

    @skipped.setter
    def skipped(self, value: int) -> None:
        if self.chosen:
            self.chosen.skipped = value
        else:
            self._skipped = value

    @property
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
            chosen = self.chosen = make_parser(fmt, self.max_record)
            chosen.skipped = self._skipped
            text, self._pending = self._pending, ""
            return chosen.feed(text)
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
    if looks_like_neo4j(stripped.split("\n", 1)[0]):
        return "neo4j"
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
