"""Threshold rules as data: the YAML schema, the shipped defaults, overrides and custom rules.

A threshold rule selects a metric of one target (name and label matchers), optionally applies a function
over the target's short history (``rate``, ``increase``, ``delta``, ``max``/``min``/``avg`` over ``window``),
optionally aggregates (``sum``/``max``/``min``/``avg``/``count`` ``by`` labels), optionally divides by a
second selection (``divide_by``: a ratio of two metrics), and compares every resulting series with a
threshold. ``for`` is how long the comparison must hold before the alert fires; ``keep_firing_for``
keeps it firing that long after it stops holding (flap damping).

``summary`` and ``description`` use the subset of Prometheus' template language that both dbwatch and
Prometheus render alike: ``{{ $labels.NAME }}``, ``{{ $value }}``, optionally piped through ``humanize``,
``humanizeDuration`` or ``humanizePercentage`` — so ``dbwatch rules export`` emits them unchanged. A rule
with ``info`` (an info-style metric joined on the ``join`` labels) may also show that metric's ``labels`` there: they
describe the alert (a DDL's pid and statement) without becoming its labels; the export reads them with
Prometheus' ``query`` template function.

:func:`load_rules` merges ``rules/defaults.yaml`` (shipped), the config's ``rules.files`` and
``rules.custom``, then applies ``rules.overrides``. Every problem names its place: the file and the
YAML path (``rules.custom[0].op: expected one of ...``).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from dbwatch.model.configtypes import Duration, StrictModel, format_validation_error

__all__ = [
    "InfoJoin",
    "RuleOverride",
    "RulesConfig",
    "RulesError",
    "Selector",
    "ThresholdRule",
    "load_rule_file",
    "load_rules",
    "shipped_rules",
]

Function = Literal["value", "rate", "increase", "delta", "max", "min", "avg", "predict_linear"]
Aggregate = Literal["sum", "max", "min", "avg", "count"]
Op = Literal[">", ">=", "<", "<=", "==", "!="]
SeverityName = Literal["info", "warning", "critical"]

WINDOW_FUNCTIONS = {"rate", "increase", "delta", "max", "min", "avg", "predict_linear"}
DEFAULT_WINDOW = 300.0

_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ALERT = re.compile(r"^[A-Z][A-Za-z0-9]*$")
#: ``{{ $labels.x }}``, ``{{ $value }}``, ``{{ $value | humanize }}`` and nothing else
TEMPLATE = re.compile(
    r"\{\{\s*(\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)|\$value)"
    r"(?:\s*\|\s*(humanize|humanizeDuration|humanizePercentage))?\s*\}\}"
)
RESERVED_LABELS = ("alertname", "severity", "target")


def default_summary(rule: dict[str, Any]) -> str:
    """The summary of a rule written without one: which target, what was measured against what."""
    what = f"{rule.get('metric')} {rule.get('op')} {rule.get('threshold')}"
    return f"{rule.get('alert')} on {{{{ $labels.target }}}}: {what} (value {{{{ $value }}}})"


class RulesError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Selector(StrictModel):
    """Which series of a target, and what to compute from their recent history."""

    metric: str
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    function: Function = "value"
    window: Duration | None = Field(default=None, gt=0)
    aggregate: Aggregate | None = None
    by: tuple[str, ...] = ()
    #: predict_linear: how far ahead the least-squares line over the window is read (PromQL's predict_linear)
    horizon: Duration | None = Field(default=None, gt=0)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if not _METRIC.match(value):
            raise ValueError(f"expected a Prometheus metric name, got {value!r}")
        return value

    @field_validator("match", "match_re")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _LABEL.match(name):
                raise ValueError(f"expected label names, got {name!r}")
        return value

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{name}: not a regular expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _window(self) -> "Selector":
        if self.window is not None and self.function not in WINDOW_FUNCTIONS:
            raise ValueError(f"window: only used with one of {', '.join(sorted(WINDOW_FUNCTIONS))}")
        if self.by and self.aggregate is None:
            raise ValueError("by: only used with aggregate")
        if (self.horizon is not None) != (self.function == "predict_linear"):
            raise ValueError("horizon: given with function predict_linear, and only with it")
        return self

    @property
    def effective_window(self) -> float:
        return self.window if self.window is not None else DEFAULT_WINDOW


class InfoJoin(StrictModel):
    """An info-style metric (value 1) whose ``labels`` a rule's summary and description show as
    ``{{ $labels.NAME }}``: of its series, the first that agrees with the alert's series on ``join`` (and the
    target). Its labels describe the alert without being its labels, so a changing pid is not a new alert."""

    metric: str
    join: tuple[str, ...] = ()  # not ``on``: YAML reads a bare on as true
    labels: tuple[str, ...] = Field(min_length=1)

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if not _METRIC.match(value):
            raise ValueError(f"expected a Prometheus metric name, got {value!r}")
        return value

    @field_validator("join", "labels")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _LABEL.match(name) or name in RESERVED_LABELS:
                raise ValueError(f"expected label names other than {', '.join(RESERVED_LABELS)}, got {name!r}")
        return value


class ThresholdRule(Selector):
    alert: str
    divide_by: Selector | None = None
    info: InfoJoin | None = None
    op: Op
    threshold: float
    for_: Duration = Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    severity: SeverityName = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""  # a custom rule without one gets :func:`default_summary`
    description: str = ""
    engines: tuple[str, ...] = ()
    enabled: bool = True

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @model_validator(mode="before")
    @classmethod
    def _default_summary(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("summary"):
            return {**data, "summary": default_summary(data)}
        return data

    @property
    def alert_labels(self) -> dict[str, str]:
        """The rule's labels on its alerts: its own, plus ``engine`` when it applies to exactly one engine
        (so the per-engine variants of one name stay distinct alerts, in dbwatch and in Prometheus)."""
        if len(self.engines) == 1 and "engine" not in self.labels:
            return {"engine": self.engines[0], **self.labels}
        return dict(self.labels)

    @field_validator("alert")
    @classmethod
    def _alert(cls, value: str) -> str:
        if not _ALERT.match(value):
            raise ValueError(f"expected a CamelCase name of letters and digits, like ReplicationLagHigh, got {value!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _LABEL.match(name) or name.startswith("__"):
                raise ValueError(f"expected Prometheus label names, got {name!r}")
            if name in RESERVED_LABELS:
                raise ValueError(f"{name!r} is set by dbwatch; choose another label")
        return value

    @field_validator("summary", "description")
    @classmethod
    def _template(cls, value: str) -> str:
        rest = TEMPLATE.sub("", value)
        if "{{" in rest or "}}" in rest:
            bad = rest[rest.find("{{"):][:40] if "{{" in rest else "}}"
            raise ValueError(
                f"unsupported template {bad!r}: use {{{{ $labels.NAME }}}} or {{{{ $value }}}}, "
                "optionally with | humanize, | humanizeDuration or | humanizePercentage"
            )
        return value


class RuleOverride(StrictModel):
    """What the config may change in a shipped (or file-loaded) rule, by its name."""

    enabled: bool | None = None
    threshold: float | None = None
    for_: Duration | None = Field(default=None, alias="for")
    keep_firing_for: Duration | None = None
    window: Duration | None = Field(default=None, gt=0)
    horizon: Duration | None = Field(default=None, gt=0)  # predict_linear rules (DiskWillFillIn)
    severity: SeverityName | None = None
    labels: dict[str, str] | None = None
    summary: str | None = None
    description: str | None = None

    model_config = StrictModel.model_config | {"populate_by_name": True}


class RulesConfig(StrictModel):
    defaults: bool = True  # false: ship no rules at all, only files and custom ones
    files: list[str] = Field(default_factory=list)
    overrides: dict[str, RuleOverride] = Field(default_factory=dict)
    custom: list[ThresholdRule] = Field(default_factory=list)


# -- loading ------------------------------------------------------------------------------------------


def shipped_rules() -> list[ThresholdRule]:
    text = resources.files("dbwatch.rules").joinpath("defaults.yaml").read_text(encoding="utf-8")
    return _parse_rule_file(text, "rules/defaults.yaml")


def load_rule_file(path: str | Path) -> list[ThresholdRule]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    return _parse_rule_file(text, str(path))


def _parse_rule_file(text: str, source: str) -> list[ThresholdRule]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise RulesError([f"{source}:{where} not valid YAML ({getattr(exc, 'problem', None) or exc})"]) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list) or set(raw) != {"rules"}:
        raise RulesError([f"{source}: expected a mapping with one key, rules: a list of rules"])
    rules: list[ThresholdRule] = []
    problems: list[str] = []
    for index, item in enumerate(raw["rules"]):
        try:
            rules.append(ThresholdRule.model_validate(item))
        except ValidationError as exc:
            problems.extend(f"{source}: {line}" for line in format_validation_error(exc, f"rules[{index}]"))
    if problems:
        raise RulesError(problems)
    return rules


def load_rules(config: RulesConfig | None = None) -> list[ThresholdRule]:
    """The rules in force: shipped, from files, custom; overrides applied; disabled ones left out."""
    config = config or RulesConfig()
    problems: list[str] = []
    rules: dict[tuple[str, tuple[str, ...]], ThresholdRule] = {}
    origin: dict[tuple[str, tuple[str, ...]], str] = {}

    # One name may have a variant per engine (ReplicationLagHigh reads pg_ and mysql_ metrics): the
    # variants' engines must not overlap, and an override by name changes every variant.
    def add(rule: ThresholdRule, where: str) -> None:
        key = (rule.alert, rule.engines)
        clash = [k for k in rules if k[0] == rule.alert and (not k[1] or not rule.engines or set(k[1]) & set(rule.engines))]
        if clash:
            problems.append(f"{where}.alert: {rule.alert!r} is already defined in {origin[clash[0]]} "
                            "(change a shipped rule with rules.overrides; variants need disjoint engines)")
            return
        rules[key], origin[key] = rule, where

    batches: list[tuple[str, list[ThresholdRule]]] = []
    if config.defaults:
        batches.append(("rules/defaults.yaml", shipped_rules()))
    for index, path in enumerate(config.files):
        try:
            batches.append((f"rules.files[{index}] ({path})", load_rule_file(path)))
        except RulesError as exc:
            problems.extend(exc.problems)
    batches.append(("rules.custom", list(config.custom)))
    for source, batch in batches:
        for index, rule in enumerate(batch):
            add(rule, f"{source}[{index}]" if source == "rules.custom" else source)
    for name, override in config.overrides.items():
        keys = [k for k in rules if k[0] == name]
        if not keys:
            known = ", ".join(sorted({k[0] for k in rules}))
            problems.append(f"rules.overrides.{name}: no rule of that name; known rules: {known}")
            continue
        try:
            for key in keys:
                rules[key] = _apply(rules[key], override)
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, f"rules.overrides.{name}"))
    if problems:
        raise RulesError(problems)
    return [rule for rule in rules.values() if rule.enabled]


def _apply(rule: ThresholdRule, override: RuleOverride) -> ThresholdRule:
    changes: dict[str, Any] = {k: v for k, v in override.model_dump(by_alias=True).items() if v is not None}
    if "window" in changes and rule.function not in WINDOW_FUNCTIONS:
        raise ValidationError.from_exception_data(
            "RuleOverride", [{"type": "value_error", "loc": ("window",), "input": changes["window"],
                              "ctx": {"error": f"rule {rule.alert} has no window function"}}]
        )
    data = rule.model_dump(by_alias=True) | changes
    return ThresholdRule.model_validate(data)
