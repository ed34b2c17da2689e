"""``dbwatch slowlog analyze``: an offline report over whole slow logs, like pt-query-digest's.

The files are streamed through the same follower, parsers and aggregator as the live ``slowlog`` collector
(1 MiB chunks; one record at most 1 MiB), so memory depends on the number of query classes, never on the
size of the files, and the classes are capped (:data:`MAX_CLASSES`). The report ranks the classes by total
query time and is written a class at a time.

``--format json`` writes a JSON list, one object per class, costliest first (the keys are :data:`JSON_KEYS`,
documented in docs/slowlog.md; new keys may be added, none will be renamed or removed).
"""

from __future__ import annotations

import heapq
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TextIO

from dbwatch.collectors.logtail import LogFollower
from dbwatch.collectors.slowlog import Aggregator
from dbwatch.model.facts.slowlog import SlowClass
from dbwatch.collectors.slowlog_formats import SlowEvent, format_name, make_parser, sniff

__all__ = ["TYPES", "JSON_KEYS", "Report", "InputError", "analyze_files", "text_chunks", "json_chunks", "render_text",
           "render_json", "Progress", "wants_progress", "unrecognised_lines"]

TYPES = ("auto", "mysql", "postgres", "neo4j")
JSON_KEYS = ("rank", "class_id", "fingerprint", "count", "query_time_total", "query_time_mean", "query_time_p95",
             "query_time_max", "lock_time_total", "rows_examined_total", "rows_sent_total", "rows_affected_total",
             "db", "user", "first_seen", "last_seen", "sample")
PROGRESS_MIN_BYTES = 8 << 20  # smaller inputs are read before a bar would be worth drawing
MAX_CLASSES = 10_000  # past this, the cheapest half is folded away: memory stays under 64 MiB
SNIFF_BYTES = 64 << 10


class InputError(Exception):
    """A file that cannot be read (missing, a directory, no permission): the command exits 2."""


@dataclass
class Report:
    classes: list[SlowClass]
    events: int = 0
    bytes_read: int = 0
    parse_errors: int = 0  # records skipped: malformed, not UTF-8, over the record limit
    lines_skipped: int = 0  # lines belonging to no record
    seconds: float = 0.0
    formats: dict[str, str] = field(default_factory=dict)  # file -> format read
    folded_events: int = 0  # events of classes folded away when there were more than MAX_CLASSES
    folded_seconds: float = 0.0
    unrecognised: dict[str, int] = field(default_factory=dict)  # file with bytes but no event -> its lines


def analyze_files(paths: Iterable[str], kind: str = "auto", sample_length: int = 1000,
                  progress: Callable[[int, int], None] | None = None, max_classes: int = MAX_CLASSES) -> Report:
    """Read every file to its end; ``progress(bytes_done, events)`` is called after each chunk.

    Classes are exact up to ``max_classes``. Past it, the half with the least total time is folded into
    ``folded_events``/``folded_seconds``; a folded class that comes back later starts again from zero."""
    if kind not in TYPES:
        raise ValueError(f"expected a log type among {', '.join(TYPES)}, got {kind!r}")
    paths = list(paths)
    for path in paths:
        _check_readable(path)
    began = time.perf_counter()
    aggregator = Aggregator(sample_length)
    report = Report(classes=[])
    done = 0
    for path in paths:
        fmt = _format(path, kind)
        parser = make_parser(fmt)
        follower = LogFollower(path, parser, None, from_beginning=True)
        base = done
        events_before = aggregator.events

        def sink(events: list[SlowEvent], follower: LogFollower[SlowEvent] = follower, base: int = base) -> None:
            aggregator.add(events)
            if len(aggregator.interval) > max_classes:
                _fold(aggregator, report, max_classes // 2)
            if progress is not None:
                progress(base + follower.offset, aggregator.events)

        try:
            while follower.poll(sink, 1 << 62):
                pass
            follower.finish(sink)
        finally:
            follower.close()
        done += follower.stats.bytes_read
        report.parse_errors += parser.skipped
        report.lines_skipped += parser.skipped_lines
        report.formats[path] = format_name(parser)
        if aggregator.events == events_before and follower.stats.bytes_read:
            report.unrecognised[path] = _count_lines(path)  # only then: a second read of a file read in vain
    report.classes = aggregator.close_interval()
    report.events = aggregator.events
    report.bytes_read = done
    report.seconds = time.perf_counter() - began
    return report


def unrecognised_lines(report: Report) -> list[str]:
    """One line per file that held bytes but no event: what it was read as, and how many lines matched none."""
    return [f"{path}: no slow query event in {lines:,} line(s) read as {report.formats.get(path, '?')}: every line "
            f"matched no event (not a slow log, or another --type: auto, mysql, postgres, neo4j)"
            for path, lines in report.unrecognised.items()]


def _count_lines(path: str) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _fold(aggregator: Aggregator, report: Report, keep: int) -> None:
    classes = aggregator.interval
    kept = set(heapq.nlargest(keep, classes, key=lambda fp: classes[fp].time))
    for fp in [fp for fp in classes if fp not in kept]:
        st = classes.pop(fp)
        report.folded_events += st.count
        report.folded_seconds += st.time


def render_json(report: Report, limit: int = 0) -> str:
    return "".join(json_chunks(report, limit))


def json_chunks(report: Report, limit: int = 0) -> Iterator[str]:
    """The JSON list a class at a time, so that printing thousands of classes needs no more memory."""
    separator = "[\n  "
    for rank, c in enumerate(_limited(report.classes, limit), 1):
        row = {"rank": rank, **{key: getattr(c, key) for key in JSON_KEYS if key != "rank"}}
        yield separator + json.dumps(row, ensure_ascii=False)
        separator = ",\n  "
    yield "[]\n" if separator.startswith("[") else "\n]\n"


def render_text(report: Report, limit: int = 0) -> str:
    return "".join(text_chunks(report, limit))


def text_chunks(report: Report, limit: int = 0) -> Iterator[str]:
    """The text report a line at a time (a profile table, then each class), so memory stays flat."""
    total_time = sum(c.query_time_total for c in report.classes) or 1e-12
    shown = _limited(report.classes, limit)
    rate = report.events / report.seconds if report.seconds else 0.0
    yield (f"# {report.events:,} events, {len(report.classes):,} classes, {report.bytes_read / 1e6:,.1f} MB read "
           f"in {report.seconds:.2f} s ({rate:,.0f} events/s)\n")
    yield (f"# total query time {_duration(sum(c.query_time_total for c in report.classes))}; "
           f"files: {', '.join(f'{p} ({f})' for p, f in report.formats.items())}\n")
    yield ("# class ids are pt-query-digest --preserve-embedded-numbers Query IDs; p95 is computed as pt-query-digest "
           "computes it (the lower edge of its 5 % bucket)\n")
    yield "\n# Profile (classes ranked by total query time)\n"
    header = ("Rank", "Query ID", "Total", "%", "Count", "Mean", "p95", "Max", "Rows exam", "Rows sent",
              "Fingerprint")

    def row(rank: int, c: SlowClass) -> tuple[str, ...]:
        fp = c.fingerprint if len(c.fingerprint) <= 60 else c.fingerprint[:59] + "…"
        return (str(rank), c.class_id, _duration(c.query_time_total), f"{100 * c.query_time_total / total_time:.1f}",
                f"{c.count:,}", _duration(c.query_time_mean), _duration(c.query_time_p95),
                _duration(c.query_time_max), f"{c.rows_examined_total:,}", f"{c.rows_sent_total:,}", fp)

    widths = [len(h) for h in header[:-1]]
    for rank, c in enumerate(shown, 1):  # formatted twice rather than kept: thousands of rows
        widths = [max(w, len(cell)) for w, cell in zip(widths, row(rank, c))]
    for cells in (header, *(row(rank, c) for rank, c in enumerate(shown, 1))):
        padded = [cell.ljust(widths[i]) if i == 1 else cell.rjust(widths[i]) for i, cell in enumerate(cells[:-1])]
        yield "  ".join(padded + [cells[-1]]).rstrip() + "\n"
    if len(shown) < len(report.classes):
        rest = report.classes[len(shown):]
        yield (f"# … and {len(rest):,} more classes ({sum(c.count for c in rest):,} events, "
               f"{_duration(sum(c.query_time_total for c in rest))}); --limit 0 shows all\n")
    for rank, c in enumerate(shown, 1):
        lines = [
            "",
            f"# Query {rank}: {c.class_id}  {c.count:,} events, {100 * c.query_time_total / total_time:.1f} % "
            f"of the time" + (f", db {c.db}" if c.db else "") + (f", user {c.user}" if c.user else ""),
            f"#   time: total {_duration(c.query_time_total)}, mean {_duration(c.query_time_mean)}, "
            f"p95 {_duration(c.query_time_p95)}, max {_duration(c.query_time_max)}; "
            f"lock {_duration(c.lock_time_total)}",
            f"#   rows: examined {c.rows_examined_total:,}, sent {c.rows_sent_total:,}, "
            f"affected {c.rows_affected_total:,}" + (f"; full scans {c.full_scans:,}" if c.full_scans else ""),
            f"#   fingerprint: {c.fingerprint}",
            "#   sample (the slowest):",
            *("    " + line for line in c.sample.splitlines()),
        ]
        yield "\n".join(lines) + "\n"
    if report.folded_events:
        yield (f"\n# more than {MAX_CLASSES:,} classes: {report.folded_events:,} events "
               f"({_duration(report.folded_seconds)}) of the cheapest classes were folded away\n")
    yield (f"\n# parse errors (records skipped: malformed, not UTF-8 or over 1 MiB): {report.parse_errors:,}; "
           f"lines belonging to no event: {report.lines_skipped:,}\n")


class Progress:
    """A one-line progress bar on a terminal: bytes read / total, events/s; redrawn at most 5 times a second."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.began = time.monotonic()
        self._drawn = 0.0

    def __call__(self, done: int, events: int) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.2:
            return
        self._drawn = now
        self._draw(done, events, now)

    def close(self, done: int, events: int) -> None:
        self._draw(done, events, time.monotonic())
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, done: int, events: int, now: float) -> None:
        share = min(done / self.total, 1.0)
        filled = int(30 * share)
        elapsed = max(now - self.began, 1e-9)
        self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * share:5.1f} %  "
                          f"{done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB  {events / elapsed:,.0f} events/s ")
        self.stream.flush()


def wants_progress(paths: list[str], stream: TextIO = sys.stderr) -> int:
    """The total size when a bar is worth drawing (``stream`` is a terminal, the files are big), else 0."""
    try:
        if not stream.isatty():
            return 0
        total = sum(os.path.getsize(p) for p in paths)
    except (OSError, ValueError):
        return 0
    return total if total >= PROGRESS_MIN_BYTES else 0


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a log file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


def _format(path: str, kind: str) -> str:
    """The parser for a file: ``mysql`` as is; ``postgres`` as stderr, csvlog or jsonlog from its first lines."""
    if kind in ("mysql", "neo4j"):
        return kind
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES).decode("utf-8", "replace")
    sniffed = sniff(head)
    if kind == "postgres":
        return sniffed if sniffed in ("postgres-csv", "postgres-json") else "postgres-stderr"
    return sniffed or "auto"


def _limited(classes: list[SlowClass], limit: int) -> list[SlowClass]:
    return classes if limit <= 0 else classes[:limit]


def _duration(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:,.0f}s"
    if seconds >= 1:
        return f"{seconds:.2f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds * 1e6:.0f}us"
