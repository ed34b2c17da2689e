"""The collector on a timer (agent/gcpace.py): young collections in short steps, survivors frozen, a reference
cycle among them found by the next full collection; stop gives the collector back."""

from __future__ import annotations

import asyncio
import gc
import weakref

from dbwatch.agent.gcpace import GcPacer


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_young_steps_freeze_survivors_and_a_full_collection_finds_their_cycles():
    runs: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    async def wait(condition, what: str, seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            while not condition():
                await asyncio.sleep(0.02)

    async def main() -> None:
        pacer = GcPacer(young_every=0.05, full_every=2.0)
        pacer.start()
        pacer.start()  # twice: one timer
        assert not gc.isenabled()
        # A cycle alive now: the next young step finds it alive and freezes it.
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        await wait(lambda: 0 in runs and gc.get_freeze_count() > 0, "a young step")
        frozen = gc.get_freeze_count()
        assert gc.is_tracked(a) and frozen > 0
        del a, b  # now garbage, but frozen: no young step sees it
        steps = len(runs)
        await wait(lambda: len(runs) >= steps + 3, "three more young steps")
        if 2 not in runs[steps:]:  # (a machine slow enough may have reached the full collection already)
            assert gone() is not None
        # The full collection (every 2 s here) unfreezes, collects, and the cycle is gone.
        await wait(lambda: gone() is None, "the full collection")
        assert 2 in runs
        pacer.stop()
        pacer.stop()
        assert gc.isenabled() and gc.get_freeze_count() == 0
        gc.disable()  # the collector's own runs aside: no timed step comes any more
        count = len(runs)
        await asyncio.sleep(0.3)
        assert len(runs) == count

    gc.callbacks.append(on_gc)
    try:
        asyncio.run(main())
    finally:
        gc.callbacks.remove(on_gc)
        gc.enable()


def test_free_heap_pages_are_given_back_on_the_trim_timer():
    """malloc_trim runs every trim_every seconds of the pacer's steps (glibc here), not on each young step."""
    async def main() -> tuple[int, int]:
        pacer = GcPacer(young_every=0.02, full_every=3600.0, trim_every=0.2)
        assert pacer._trim is not None, "glibc's malloc_trim was not found"
        pacer.start()
        try:
            async with asyncio.timeout(10):
                while pacer.trims < 2:
                    await asyncio.sleep(0.02)
            began, trims = asyncio.get_running_loop().time(), pacer.trims
            await asyncio.sleep(0.5)
            elapsed = asyncio.get_running_loop().time() - began
            return pacer.trims - trims, int(elapsed / 0.2) + 1
        finally:
            pacer.stop()

    try:
        more, most = asyncio.run(main())
    finally:
        gc.enable()
    assert 1 <= more <= most, f"{more} trims in 0.5 s at one every 0.2 s"
