"""A collector's own options: one model per collector, with its defaults, checked once when the config loads.

The options sit beside ``enabled``/``interval``/``timeout`` in a collector's section of the configuration
(``collectors: {statements: {interval: 30s, top_n: 7}}``). Each collector class names its model
(``options_model``); the config validates the section against it and hands the collector the instance, so a
collector reads ``self.options.top_n`` and never repeats a default or a type.

Option values are taken as written: ``top_n: "7"`` is refused rather than converted, the same as a
misspelt key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, get_args, get_origin

from pydantic import Field, Strict, StrictBool, StrictInt, StrictStr, ValidationError

from dbwatch.model.configtypes import StrictModel

__all__ = ["Count", "CollectorOptions", "Flag", "Number", "OptionProblem", "Text", "Texts", "option_problems"]

#: a whole number of at least 0 (a cap, a length, a size in bytes)
Count = Annotated[StrictInt, Field(ge=0)]
#: any number (an int is taken as a float)
Number = Annotated[float, Strict()]
Flag = StrictBool
Text = StrictStr
#: a list of strings in the YAML, kept as a tuple (the model is frozen)
Texts = tuple[StrictStr, ...]


class CollectorOptions(StrictModel):
    """The options of a collector that has none; every collector's options model subclasses it."""


#: one problem: the option's key (as written, or the first key of the path) and what was expected
OptionProblem = tuple[tuple[str | int, ...], str, str]


def option_problems(model: type[CollectorOptions], raw: Mapping[str, Any]) -> list[OptionProblem]:
    """Every problem of ``raw`` against ``model``: ``(location, pydantic error type, message)``.

    The messages say which type was expected and show the value written (``expected int, got 'many'``);
    an unknown key keeps pydantic's own error type, so the config reports it like any unknown key.
    """
    try:
        model.model_validate(dict(raw))
    except ValidationError as exc:
        # dict.fromkeys: a list with several bad items is one problem of its key, said once
        return list(dict.fromkeys(_problem(model, raw, error["loc"], error["type"]) for error in exc.errors()))
    return []


def _problem(model: type[CollectorOptions], raw: Mapping[str, Any], loc: tuple[str | int, ...],
             kind: str) -> OptionProblem:
    key = str(loc[0]) if loc else ""
    if kind == "extra_forbidden" or key not in model.model_fields:
        return (loc, kind, "unknown key (check its spelling)")
    value = raw.get(key)
    expected = _expected(model.model_fields[key].annotation)
    if kind in ("greater_than_equal", "greater_than") and expected == "int":
        return ((key,), "value_error", f"expected a non-negative number, got {value!r}")
    return ((key,), "value_error", f"expected {expected}, got {value!r}")


def _expected(annotation: Any) -> str:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (tuple, list):
        return "a list of strings"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))
