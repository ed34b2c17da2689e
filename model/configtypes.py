"""Building blocks of the configuration models: a strict base model and a duration type.

Every section of the configuration (targets, server, rules, receivers) is a :class:`StrictModel`, so an
unknown key is an error, and every duration accepts ``"15s"``, ``"1m30s"``, ``"500ms"`` or a number of
seconds (``10`` or ``"10"``), and is stored as seconds (float).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

__all__ = ["StrictModel", "Duration", "parse_duration", "format_duration", "format_validation_error", "yaml_path"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def parse_duration(value: Any) -> float:
    """``"1m30s"`` → 90.0. Raises ValueError with the message shown to the user."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration like "15s", got {value!r}')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f'expected a duration like "15s", got a negative number {value!r}')
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _SECONDS.fullmatch(text):  # a number of seconds, quoted ("10"): what YAML from a template often gives
            return float(text)
        if text and _PART.sub("", text) == "":
            return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    raise ValueError(f'expected a duration like "15s", got "{value}"')


def format_duration(seconds: float) -> str:
    """90.0 → ``"1m30s"``: the form Prometheus rule files and humans read."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    out = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


Duration = Annotated[float, BeforeValidator(parse_duration)]


def yaml_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    """``("targets", 1, "interval")`` → ``targets[1].interval``: the path as the user wrote it."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union", "literal[")) or part in _PYDANTIC_BRANCHES:
            continue  # pydantic's internal branch names mean nothing to the user
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: the YAML path, then what was expected, then what was found.

    The offending value is shown only for type problems on short scalars, and never for keys whose
    name says they hold a secret.
    """
    lines = []
    for problem in err.errors():
        path = yaml_path(tuple(problem["loc"]), prefix)
        kind = problem["type"]
        if kind == "extra_forbidden":
            lines.append(f"{path}: unknown key (check its spelling)")
            continue
        if kind == "missing":
            lines.append(f"{path}: required key is missing")
            continue
        message = problem["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        value = problem.get("input")
        if _shows_value(kind, path, value) and "got" not in message:
            message += f", got {value!r}"
        lines.append(f"{path}: {message[0].lower()}{message[1:]}")
    return lines


_PYDANTIC_BRANCHES = {"str", "int", "float", "bool", "list", "dict", "constrained-str"}
_SECRET_WORDS = ("password", "secret", "token", "key", "dsn", "url")


def _shows_value(kind: str, path: str, value: Any) -> bool:
    if any(word in path.lower() for word in _SECRET_WORDS):
        return False
    return isinstance(value, (str, int, float, bool)) and len(str(value)) <= 60 and kind != "value_error"
