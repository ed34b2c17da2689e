"""``dbwatch check``: collect every target once, concurrently, and summarise what was seen.

A target is up when the collector that answers for its ``<engine>_up`` metric succeeded (or, for an
engine without one, when every collector did). Key numbers come from each snapshot's ``summary`` fact,
which collectors fill with the few figures a person checking a target wants to see.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from dbwatch.agent.jobs import TargetJobs
from dbwatch.model import Target
from dbwatch.model.facts.common import Summary


@dataclass(slots=True)
class CheckResult:
    target: str
    engine: str
    up: bool
    version: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``--format json``: ``numbers`` holds numbers only ("11/100" becomes ``connections`` 11 and
        ``connections max`` 100); a figure that is text (a role, a version, a state) goes to ``details``."""
        out = asdict(self)
        numbers: dict[str, float | int] = {}
        details: dict[str, str] = {}
        for key, value in self.numbers.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                numbers[key] = value
            elif isinstance(value, str) and (ratio := _RATIO.fullmatch(value)):
                numbers[key], numbers[f"{key} max"] = _number(ratio[1]), _number(ratio[2])
            else:
                details[key] = str(value)
        out["numbers"], out["details"] = numbers, details
        return out


_RATIO = re.compile(r"(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)")


def _number(text: str) -> float | int:
    return float(text) if "." in text else int(text)


async def check_targets(targets: list[Target]) -> list[CheckResult]:
    return list(await asyncio.gather(*(_check_one(t) for t in targets)))


async def _check_one(target: Target) -> CheckResult:
    jobs = TargetJobs(target)
    result = CheckResult(target=target.name, engine=target.engine, up=True)
    try:
        for name in jobs.one_shot():
            snapshot = await jobs.collect(name)
            result.durations[name] = round(snapshot.duration, 4)
            result.version = result.version or snapshot.version
            if (summary := snapshot.fact(Summary)) is not None:
                result.numbers.update(summary.numbers)
            result.notes.extend(snapshot.notes)
            if snapshot.error:
                result.errors[name] = snapshot.error
            if name == jobs.up_collector and not snapshot.ok:
                result.up = False
    finally:
        await jobs.close()
    return result


def render_text(results: list[CheckResult]) -> str:
    lines = []
    for r in results:
        state = "UP" if r.up else "DOWN"
        head = f"{r.target} ({r.engine}): {state}"
        if r.version:
            head += f", version {r.version}"
        lines.append(head)
        for key, value in r.numbers.items():
            lines.append(f"  {key}: {value}")
        for collector, seconds in r.durations.items():
            lines.append(f"  collector {collector}: {seconds * 1000:.0f} ms")
        for collector, error in r.errors.items():
            lines.append(f"  error ({collector}): {error}")
        for note in r.notes:
            lines.append(f"  note: {note}")
    up = sum(r.up for r in results)
    lines.append(f"{up}/{len(results)} target(s) up")
    return "\n".join(lines)
