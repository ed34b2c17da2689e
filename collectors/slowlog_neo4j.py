"""Neo4j's query log (``query.log``), read like a slow log: one event per completed query.

Two layouts, told apart per record:

- the text layout of Neo4j 3.5 to 5 (``db.logs.query.enabled``, ``dbms.logs.query.enabled`` before 5):
  ``<time> INFO  [id:<n> - ][transaction id:<n> - ]<ms> ms: [(planning: ..., waiting: ...) - ][<bytes> B - ]
  [<hits> page hits, <faults> page faults - ]<session info, tab separated>\t[<database> - ]<user> - <query>
  - <parameters> - [runtime=<runtime> - ]<metadata>``; a query with line breaks continues on the next lines,
  until the next line starting with a time. ``Query started:`` lines (``db.logs.query.enabled=VERBOSE``) are
  not completed queries and are left out; failed queries (``ERROR``) are counted like the others.
- Neo4j 5's JSON layout (``JsonTemplateLayout`` in ``server-logs.xml``): one object per line with ``event``,
  ``elapsedTimeMs``, ``query``, ``database`` and ``username``; ``start`` events and transaction events are left
  out.

Neither layout says how many rows a query returned or examined; page hits are Neo4j's measure of reads and go
into ``rows_examined``. Cypher literals are replaced like SQL ones to group the queries into classes.
"""

from __future__ import annotations

import calendar
import json
import re

from dbwatch.collectors.slowlog_event import SlowEvent, SlowParser, _new_event, _valid

__all__ = ["Neo4jQueryLogParser", "looks_like_neo4j"]

_START = re.compile(r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)[.,](\d{3})([+-]\d{4}|Z)? +(INFO|WARN|ERROR)\s+")
_RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d{3}", re.M)
_HEAD = re.compile(r"(?:id:\d+ - )?(?:transaction id:\d+ - )?(\d+) ms: (?:\([^)]*\) - )?(?:(\d+) B - )?"
                   r"(?:(\d+) page hits, \d+ page faults - )?")
_TAIL_RUNTIME = re.compile(r" - runtime=[^ ]* - ")
_PARAMS = re.compile(r" - (?:\{.*\}|null)$", re.S)


def looks_like_neo4j(first_line: str) -> bool:
    """Whether a log's first line is a Neo4j query log's (text or JSON)."""
    if first_line.startswith("{"):
        return '"elapsedTimeMs"' in first_line
    m = _START.match(first_line)
    return m is not None and " ms: " in first_line


class Neo4jQueryLogParser(SlowParser):
    def feed(self, text: str) -> list[SlowEvent]:
        buf = self._pending + text if self._pending else text
        events: list[SlowEvent] = []
        starts = [m.start() for m in _RECORD_START.finditer(buf)] if not buf.startswith("{") else []
        if buf.startswith("{"):  # JSON: one record per line
            last = buf.rfind("\n") + 1
            for line in buf[:last].splitlines():
                self._json(line, events)
            self._pending = buf[last:]
            return events
        if starts and starts[0] > 0:
            self.skipped_lines += buf.count("\n", 0, starts[0])
        for begin, end in zip(starts, starts[1:]):
            self._text(buf[begin:end].rstrip("\n"), events)
        if starts or len(buf) <= self.max_record:
            self._keep(buf[starts[-1]:] if starts else buf)
        else:
            self._pending = ""  # no record starts in it: not a record to count
        return events

    def flush(self) -> list[SlowEvent]:
        events: list[SlowEvent] = []
        pending, self._pending = self._pending, ""
        if pending.startswith("{"):
            self._json(pending.strip(), events)
        elif pending:
            self._text(pending.rstrip("\n"), events)
        return events

    def _text(self, record: str, events: list[SlowEvent]) -> None:
        m = _START.match(record)
        if m is None or not _valid(record) or len(record) > self.max_record:
            self.skipped += 1
            return
        rest = record[m.end():]
        if rest.startswith("Query started:"):
            return
        head = _HEAD.match(rest)
        if head is None or not head.group(1):
            self.skipped += 1
            return
        body = rest[head.end():]
        # The session info is tab separated; the bolt one ends with "server/<address>>\t".
        cut = body.find(">\t")
        body = body[cut + 2:] if cut >= 0 else body[body.rfind("\t", 0, body.find(" - ")) + 1:]
        runtime = _TAIL_RUNTIME.search(body)
        if runtime is not None:  # 4.x and 5: "<database> - <user> - <query> - <params> - runtime=... - {}"
            fields = body[: runtime.start()].split(" - ", 2)
            database, user, query = fields if len(fields) == 3 else ["", fields[0], fields[-1]]
        else:  # 3.5: "<user> - <query> - <params> - <metadata>"
            user, _, query = body.partition(" - ")
            database = ""
            query = query[: query.rfind(" - ")] if " - " in query else query
        query = _PARAMS.sub("", query).strip().rstrip(";").rstrip()
        stamp = calendar.timegm(tuple(int(g) for g in m.groups()[:6])) + int(m.group(7)) / 1000
        zone = m.group(8)
        if zone and zone != "Z":
            stamp -= (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60) * (1 if zone[0] == "+" else -1)
        hits = int(head.group(3)) if head.group(3) else 0
        events.append(_new_event(SlowEvent, (
            query, int(head.group(1)) / 1000, 0.0, 0, hits, 0, stamp, database, user, False, False, False)))

    def _json(self, line: str, events: list[SlowEvent]) -> None:
        if not line:
            return
        try:
            record = json.loads(line)
            if record.get("event") == "start" or record.get("type") == "transaction" or "query" not in record:
                return
            query = str(record["query"]).strip().rstrip(";").rstrip()
            elapsed = float(record["elapsedTimeMs"]) / 1000
        except (ValueError, TypeError, KeyError, AttributeError):
            self.skipped += 1
            return
        events.append(_new_event(SlowEvent, (
            query, elapsed, 0.0, 0, int(record.get("pageHits") or 0), 0, None, str(record.get("database") or ""),
            str(record.get("username") or ""), False, False, False)))
