"""What a silence is (Alertmanager API v2's shape and matching) and how the API's JSON is checked.

The store that keeps silences and answers "is this alert muted" is agent/silences.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Literal

__all__ = ["Matcher", "Silence", "SilenceError", "State", "check_text", "check_time", "parse_matchers", "rfc3339"]

MAX_MATCHERS = 32
MAX_TEXT = 1000  # characters of createdBy and comment
State = Literal["active", "pending", "expired"]
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class SilenceError(ValueError):
    """What is wrong with a silence, one line per problem, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.name, "")
        hit = re.fullmatch(self.value, value) is not None if self.is_regex else value == self.value
        return hit == self.is_equal

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    def __str__(self) -> str:
        op = ("=~" if self.is_regex else "=") if self.is_equal else ("!~" if self.is_regex else "!=")
        return f"{self.name}{op}{json.dumps(self.value)}"


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> State:
        if now >= self.ends_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def as_json(self, now: float) -> dict[str, Any]:
        """Alertmanager's API v2 ``gettableSilence``."""
        return {
            "id": self.id,
            "status": {"state": self.state(now)},
            "updatedAt": rfc3339(self.updated_at),
            "comment": self.comment,
            "createdBy": self.created_by,
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "matchers": [m.as_json() for m in self.matchers],
        }


def parse_matchers(raw: Iterable[Matcher | dict[str, Any]] | Any, problems: list[str]) -> list[Matcher]:
    """Matchers from the API's JSON (``isRegex`` and ``isEqual`` optional); problems are appended."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        problems.append("matchers: expected a list of {name, value, isRegex, isEqual}")
        return []
    items = list(raw)
    out: list[Matcher] = []
    for index, item in enumerate(items):
        where = f"matchers[{index}]"
        if isinstance(item, Matcher):
            out.append(item)
            continue
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object {{name, value, isRegex, isEqual}}")
            continue
        unknown = sorted(set(item) - {"name", "value", "isRegex", "isEqual"})
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(unknown)}")
        name, value = item.get("name"), item.get("value")
        is_regex, is_equal = item.get("isRegex", False), item.get("isEqual", True)
        bad = len(problems)
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            problems.append(f"{where}.name: expected a label name like \"alertname\", got {json.dumps(name)}")
        if not isinstance(value, str):
            problems.append(f"{where}.value: expected a string, got {json.dumps(value)}")
        for field, flag in (("isRegex", is_regex), ("isEqual", is_equal)):
            if not isinstance(flag, bool):
                problems.append(f"{where}.{field}: expected true or false, got {json.dumps(flag)}")
        if is_regex is True and isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                problems.append(f"{where}.value: not a valid regular expression ({exc})")
        if len(problems) == bad:
            out.append(Matcher(str(name), str(value), bool(is_regex), bool(is_equal)))
    if not out and not problems:
        problems.append("matchers: at least one matcher is needed")
    elif len(out) > MAX_MATCHERS:
        problems.append(f"matchers: at most {MAX_MATCHERS}")
    elif out and len(out) == len(items) and all(m.matches({}) for m in out):
        # Alertmanager's rule too: such a silence would mute every alert, including ones not yet written.
        problems.append("matchers: at least one matcher must not match an empty or missing label")
    return out


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_time(field: str, value: Any, problems: list[str]) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
    problems.append(f'{field}: expected an RFC 3339 time like "2026-01-02T15:04:05Z", got {json.dumps(value)}')
    return None


def check_text(field: str, value: Any, problems: list[str], required: bool) -> None:
    if not isinstance(value, str):
        problems.append(f"{field}: expected a string, got {json.dumps(value)}")
    elif required and not value.strip():
        problems.append(f"{field}: required, and not empty")
    elif len(value) > MAX_TEXT:
        problems.append(f"{field}: at most {MAX_TEXT} characters")
