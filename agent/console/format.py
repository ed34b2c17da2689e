"""How numbers, times and series look on the console's pages: Jinja filters, and sparklines as inline SVG."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from markupsafe import Markup, escape

__all__ = ["FILTERS", "sparkline_svg"]


def sparkline_svg(values: list[float] | None, width: int = 120, height: int = 24, label: str = "") -> Markup:
    """A line of ``values`` (oldest first) scaled to its own maximum; an empty string when there are none."""
    if not values:
        return Markup("")
    top = max(values) or 1.0
    step = width / max(1, len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values))
    total = sum(values)
    title = f"{label}: {seconds(total)} over the last {len(values)} min, peak {seconds(max(values))}/min"
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/></svg>')


def percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def seconds(value: float | None) -> str:
    """A duration the way a person reads it: 850 ms, 12.3 s, 4 min, 3.5 h, 2.1 d."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 or value == 0 else f"{value * 1000:.2f} ms"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    if value < 86400:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "—"
    delta = (time.time() if now is None else now) - ts
    return "just now" if abs(delta) < 1 else (f"{seconds(delta)} ago" if delta > 0 else f"in {seconds(-delta)}")


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def rfc3339(text: str | None) -> float | None:
    """``2026-12-04T21:04:47.500Z`` (the silences API's times) as Unix time; None when it is not one."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.{digits}f}"
    return str(value)


def size(value: float | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


FILTERS = {"percent": percent, "seconds": seconds, "ago": ago, "iso": iso, "number": number, "size": size, "rfc3339": rfc3339,
           "sparkline": sparkline_svg}
