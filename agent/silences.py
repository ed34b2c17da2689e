"""Silences: "do not page about alerts matching these labels until then", kept in ``state_dir/silences.json``.

A silence has Alertmanager's API v2 shape (``id``, ``matchers`` of ``{name, value, isRegex, isEqual}``,
``startsAt``, ``endsAt``, ``createdBy``, ``comment``) and its semantics: every matcher must hold; a label
the alert lacks reads as ``""``; a regex matcher is anchored at both ends; the state is ``pending`` before
``startsAt``, ``active`` until ``endsAt``, then ``expired``. Expiring a silence sets its ``endsAt`` to now.

While a silence is active the notifier does not deliver the alerts it matches to dbwatch's own receivers
(webhook, Slack, PagerDuty) and still posts them to Alertmanager with ``dbwatch_silenced_by`` noted
(agent/notify.py); once it ends, an alert still firing is delivered as a new one.

The file is rewritten whole at each change, atomically (a temporary file, fsync, rename), so a crash leaves
the old file or the new one. A file that cannot be read as silences is moved aside to
``silences.json.damaged-<UTC time>`` with one log line, and the agent starts with none; a file that cannot be
written (read-only or full ``state_dir``) keeps the silences in memory, says so once, and is written at the
next change or :meth:`SilenceStore.retry` after it recovers. Expired silences are kept
:data:`EXPIRED_RETENTION` (as Alertmanager's default ``--data.retention``), then dropped.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

from dbwatch.agent.silence_model import (
    Matcher, Silence, SilenceError, check_text, check_time, parse_matchers, rfc3339,
)
from dbwatch.model import MetricFamily, gauge
from dbwatch.model.configtypes import parse_duration

__all__ = ["EXPIRED_RETENTION", "Matcher", "Silence", "SilenceError", "SilenceStore", "SILENCES_FILE"]

logger = logging.getLogger(__name__)

SILENCES_FILE = "silences.json"
EXPIRED_RETENTION = 120 * 3600.0
#: longest a silence may last: a forgotten one must not mute a target for years
MAX_DURATION = 366 * 86400.0
MAX_ANSWERS = 100_000  # label sets whose silence is remembered until the next silence starts, ends or changes
STATES = ("active", "pending", "expired")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SilenceStore:
    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        """``path``: the state directory (the file is ``silences.json`` in it) or a ``.json`` file."""
        path = Path(path)
        self.path = path if path.suffix == ".json" else path / SILENCES_FILE
        self.clock = clock
        self.error: str | None = None  # why the file cannot be written now; None while it can
        self.moved_aside: Path | None = None
        self._silences: dict[str, Silence] = {}
        self._unsaved = False
        # The active silences, valid from _window[0] until _window[1] (the next start or end): the notifier asks
        # about every firing alert at every evaluation, and most of the time nothing is active.
        self._active: builtins.list[Silence] = []
        self._window = (float("inf"), float("-inf"))
        self._answers: dict[frozenset[tuple[str, str]], Silence | None] = {}  # by label set, within the window
        self._load()

    # -- what the API and the console call ----------------------------------------------------------

    def add(self, matchers: Iterable[Matcher | dict[str, Any]] | Any, ends_at: float | str | None = None,
            created_by: str = "", comment: str = "", starts_at: float | str | None = None, *,
            duration: float | str | None = None) -> Silence:
        """A new silence from ``starts_at`` (default now) until ``ends_at`` or for ``duration`` (``"2h"``).
        Times are UNIX seconds or RFC 3339 strings. Raises :class:`SilenceError` naming every bad field."""
        return self.put(self.prepare(matchers, ends_at, created_by, comment, starts_at, duration=duration))

    def put(self, silence: Silence) -> Silence:
        """Keep (and save) a silence made by :meth:`prepare`."""
        self._silences[silence.id] = silence
        self._changed()
        logger.info("silence %s created by %s until %s: %s", silence.id, silence.created_by,
                    rfc3339(silence.ends_at), ", ".join(str(m) for m in silence.matchers))
        return silence

    def prepare(self, matchers: Iterable[Matcher | dict[str, Any]] | Any, ends_at: float | str | None = None,
                created_by: str = "", comment: str = "", starts_at: float | str | None = None, *,
                duration: float | str | None = None) -> Silence:
        """The silence :meth:`add` would keep, checked but not kept."""
        now = self.clock()
        problems: list[str] = []
        parsed = parse_matchers(matchers, problems)
        start = check_time("startsAt", starts_at, problems) if starts_at not in (None, "") else now
        end: float | None = None
        if ends_at not in (None, "") and duration not in (None, ""):
            problems.append("endsAt, duration: give one of them, not both")
        elif ends_at not in (None, ""):
            end = check_time("endsAt", ends_at, problems)
        elif duration not in (None, ""):
            try:
                length = parse_duration(duration)
            except ValueError as exc:
                problems.append(f"duration: {exc}")
            else:
                if length <= 0:
                    problems.append(f'duration: expected a positive duration like "2h", got {duration!r}')
                end = None if start is None else start + length
        else:
            problems.append('endsAt: required (or a duration like "2h")')
        check_text("createdBy", created_by, problems, required=True)
        check_text("comment", comment, problems, required=True)
        if start is not None and end is not None:
            if end <= now:
                problems.append(f"endsAt: {rfc3339(end)} is in the past")
            elif end <= start:
                problems.append(f"endsAt: {rfc3339(end)} is not after startsAt {rfc3339(start)}")
            elif end - start > MAX_DURATION:
                problems.append(f"endsAt: a silence lasts at most {MAX_DURATION / 86400:.0f} days")
        if problems:
            raise SilenceError(problems)
        assert start is not None and end is not None
        return Silence(str(uuid.uuid4()), tuple(parsed), max(start, now), end, str(created_by).strip(),
                       str(comment).strip(), now)

    def expire(self, id: str) -> Silence:
        """End a silence now (a pending one never starts). Raises KeyError for an unknown id and
        :class:`SilenceError` for one already expired."""
        silence = self._silences.get(id)
        if silence is None:
            raise KeyError(id)
        now = self.clock()
        if silence.state(now) == "expired":
            raise SilenceError([f"id: silence {id} has already expired"])
        ended = replace(silence, starts_at=min(silence.starts_at, now), ends_at=now, updated_at=now)
        self._silences[id] = ended
        self._changed()
        logger.info("silence %s expired", id)
        return ended

    def get(self, id: str) -> Silence | None:
        return self._silences.get(id)

    def list(self) -> list[Silence]:
        """Every silence kept: active first, then pending, then expired; newest first within each."""
        now = self.clock()
        self._prune(now)
        order = {"active": 0, "pending": 1, "expired": 2}
        return sorted(self._silences.values(), key=lambda s: (order[s.state(now)], -s.updated_at, s.id))

    def silencing(self, labels: dict[str, str]) -> Silence | None:
        """The active silence matching ``labels`` that lasts longest, or None."""
        now = self.clock()
        if not self._window[0] <= now < self._window[1]:
            self._active = [s for s in self._silences.values() if s.state(now) == "active"]
            times = [t for s in self._silences.values() for t in (s.starts_at, s.ends_at)]
            self._window = (max((t for t in times if t <= now), default=float("-inf")),
                            min((t for t in times if t > now), default=float("inf")))
            self._answers.clear()
        if not self._active:
            return None
        key = frozenset(labels.items())
        if key in self._answers:
            return self._answers[key]
        found = [s for s in self._active if s.matches(labels)]
        answer = max(found, key=lambda s: (s.ends_at, s.id)) if found else None
        if len(self._answers) >= MAX_ANSWERS:
            self._answers.clear()
        self._answers[key] = answer
        return answer

    def silenced_by(self, labels: dict[str, str]) -> str | None:
        """The id of the silence muting ``labels`` now (what the notifier asks)."""
        silence = self.silencing(labels)
        return silence.id if silence is not None else None

    def as_json(self) -> builtins.list[dict[str, Any]]:
        now = self.clock()
        return [s.as_json(now) for s in self.list()]

    def metrics(self) -> builtins.list[MetricFamily]:
        self.retry()
        family = gauge("dbwatch_silences", "Silences by state (active, pending, expired and still kept).", ("state",))
        now = self.clock()
        counts = {state: 0 for state in STATES}
        for silence in self._silences.values():
            counts[silence.state(now)] += 1
        for state in STATES:
            family.add((state,), counts[state])
        return [family]

    def _changed(self) -> None:
        self._window = (float("inf"), float("-inf"))
        self._save()

    def retry(self) -> None:
        """Write what a failed write left in memory (called with each scrape of the metrics)."""
        if self._unsaved:
            self._save()

    # -- the file -------------------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.error("silences file %s cannot be read (%s): starting with none", self.path,
                         exc.strerror or type(exc).__name__)
            return
        try:
            silences = [_from_file(item) for item in _items(json.loads(text))]
        except (ValueError, TypeError, KeyError, re.error) as exc:
            self._move_aside(str(exc) or type(exc).__name__)
            return
        self._silences = {s.id: s for s in silences}

    def _move_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            self.path.rename(target)
        except OSError as exc:
            logger.error("silences file %s is damaged (%s) and cannot be moved aside (%s): starting with none",
                         self.path, why, exc.strerror or exc)
            return
        self.moved_aside = target
        logger.error("silences file %s is damaged (%s): moved it aside to %s and started with none",
                     self.path, why, target)

    def _prune(self, now: float) -> None:
        old = [id for id, s in self._silences.items() if now - s.ends_at > EXPIRED_RETENTION]
        for id in old:
            del self._silences[id]
        if old:
            self._changed()

    def _save(self) -> bool:
        body = json.dumps({"silences": [_to_file(s) for s in self._silences.values()]}, indent=1) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            self._unsaved = True
            if self.error is None:
                logger.error("silences file %s cannot be written (%s): keeping silences in memory and retrying",
                             self.path, exc.strerror or type(exc).__name__)
            self.error = exc.strerror or type(exc).__name__
            return False
        if self.error is not None:
            logger.warning("silences file %s is writable again: the silences kept in memory are saved", self.path)
        self.error, self._unsaved = None, False
        return True


def _items(data: Any) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get("silences"), list):
        raise ValueError('expected {"silences": [...]}')
    items: list[Any] = data["silences"]
    return items


def _to_file(s: Silence) -> dict[str, Any]:
    return {"id": s.id, "matchers": [m.as_json() for m in s.matchers], "startsAt": s.starts_at, "endsAt": s.ends_at,
            "createdBy": s.created_by, "comment": s.comment, "updatedAt": s.updated_at}


def _from_file(item: Any) -> Silence:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not _UUID.match(item["id"]):
        raise ValueError("a silence without a valid id")
    problems: list[str] = []
    matchers = parse_matchers(item["matchers"], problems)
    if problems:
        raise ValueError(f"silence {item['id']}: {problems[0]}")
    return Silence(item["id"], tuple(matchers), float(item["startsAt"]), float(item["endsAt"]),
                   str(item["createdBy"]), str(item["comment"]), float(item["updatedAt"]))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename is done either way
    finally:
        os.close(fd)
