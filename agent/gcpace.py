"""Python's cyclic garbage collector run on a timer, in short steps, instead of when allocations say so.

The collector holds every thread while it runs. Left to itself, its young collection starts when the objects
allocated exceed the ones freed by a threshold, and in a fleet the agent frees last cycle's snapshots as fast
as it makes the new ones: the count stays low while the young generation grows, until one collection walks
~170,000 objects of fresh snapshots (0.1-0.25 s at 1,400 targets, every few seconds; a scrape waiting
behind it is that late). Its survivors then go to the older generations, walked again there.

Here the automatic collector is off; instead the young generation is collected every :data:`YOUNG_EVERY`
seconds of the event loop, so it only ever holds what was made since (a few milliseconds of walking), and
what survives is frozen (``gc.freeze``: out of every later collection, as it would be in the oldest
generation; refcounting still frees it the moment it is no longer used, which is how snapshots go). A
reference cycle among frozen objects is found by the full collection every :data:`FULL_EVERY` seconds,
which unfreezes everything, collects it and freezes what is left.

The full collection walks the whole heap: ~1.4 million objects and 0.9-1.1 s of a stalled loop at 1,400
targets (bench/fleet.py's fleet; every scrape and collection in flight waits that long). What it finds
depends on the fleet's health: 0-10 objects in cycles per minute with every target up, ~8,000 a minute with
200 targets failing every 5 s (a failed collection's exception, traceback and frames, older than a young
step when they became garbage). So it comes every 10 minutes: a scraper every 15 s meets it in ~0.2 % of its
scrapes (under the p99), and a failing fleet's cycles are kept at most that long.
A young run every 0.25 s rather than 0.1 s walks 40 % less in all (more of what is made dies before it
is looked at) for runs of ~3 ms.

Every :data:`TRIM_EVERY` seconds glibc's malloc is also asked to give its free pages back (``malloc_trim``): a
fleet's collections free and remake bodies, lists and dicts too big for Python's own allocator, and the heap
kept ~15 MiB of free pages resident at 1,400 targets (given back in ~2 ms). Elsewhere (musl, macOS) nothing
is done.

``dbwatch_gc_pause_seconds`` (agent/loophealth.py) shows each run. :meth:`GcPacer.stop` gives the collector
back its own thresholds.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
from typing import Callable

__all__ = ["GcPacer", "YOUNG_EVERY", "FULL_EVERY"]

YOUNG_EVERY = 0.25  # seconds between two young collections
TRIM_EVERY = 30.0  # seconds between two calls of malloc_trim
FULL_EVERY = 600.0  # seconds between two full collections (a reference cycle's longest life)


class GcPacer:
    """Runs the cyclic collector on the running loop's timer from :meth:`start` until :meth:`stop`."""

    def __init__(self, young_every: float = YOUNG_EVERY, full_every: float = FULL_EVERY,
                 trim_every: float = TRIM_EVERY) -> None:
        self.young_every = young_every
        self.full_every = full_every
        self.trim_every = trim_every
        self.trims = 0  # malloc_trim calls made (tests)
        self._trim = _malloc_trim()
        self._timer: asyncio.TimerHandle | None = None
        self._next_full = 0.0
        self._next_trim = 0.0
        self._was_enabled = True

    def start(self) -> None:
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._next_full = loop.time() + self.full_every
        self._next_trim = loop.time() + self.trim_every
        self._timer = loop.call_later(self.young_every, self._step, loop)

    def stop(self) -> None:
        if self._timer is None:
            return
        self._timer.cancel()
        self._timer = None
        gc.unfreeze()  # what was frozen goes to the oldest generation, where the collector finds it again
        if self._was_enabled:
            gc.enable()

    def _step(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        if now >= self._next_full:
            self._next_full = now + self.full_every
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(0)
        gc.freeze()
        if now >= self._next_trim and self._trim is not None:
            self._next_trim = now + self.trim_every
            self._trim(0)
            self.trims += 1
        self._timer = loop.call_later(self.young_every, self._step, loop)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim
