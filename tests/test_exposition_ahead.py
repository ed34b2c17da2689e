"""Whole bodies made ahead of the scrapes expected (exporters/ahead.py), on recorded snapshots: a scraper at a steady
spacing is served a body made before it came, which holds what the store held then (what landed after is in the
next scrape); a scrape much later than expected, or a scraper seen once, makes its own; gzip bodies too."""

from __future__ import annotations

import asyncio
import gzip
import time

from dbwatch.exporters.ahead import Ahead
from dbwatch.exporters.joined import Joined
from tests.test_exposition_freshness import exposition, lines, snapshot

SPACING = 0.4  # seconds between two scrapes of the test's "Prometheus"


def _setup():
    store, exp = exposition()
    store.put(snapshot(["app"], time.time()))
    made: list[float] = []
    join = exp._joined_async

    async def counted(openmetrics: bool, now: float) -> Joined:
        made.append(time.monotonic())
        return await join(openmetrics, now)

    exp.ahead = Ahead(counted)
    exp.ahead.young_for = 0.0  # no stand-ins but by a test's choice: each scrape is made for, or makes its own

    async def scrape(gzipped: bool = False, who: str = "10.0.0.9:4711") -> tuple[float, bytes]:
        asked = time.monotonic()
        body = b"".join((await exp.scrape_chunks(gzip=gzipped, scraper=who))[1])
        return asked, gzip.decompress(body) if gzipped else body

    return store, exp, made, scrape


async def _until(condition, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


def test_a_steady_scraper_is_served_a_body_made_ahead_and_a_late_one_makes_its_own():
    store, exp, made, scrape = _setup()

    async def main() -> None:
        exp.ahead.start()
        try:
            await scrape()  # seen once: no spacing yet
            await asyncio.sleep(SPACING)
            await scrape()  # a spacing: the next is expected SPACING from now
            assert made == []  # both made their own (through the exposition's cache, not the builder)
            store.put(snapshot(["app", "new"], time.time()))  # lands before the next body is made
            await asyncio.sleep(SPACING)
            asked, body = await scrape()
            assert len(made) == 1 and made[0] < asked  # made ahead of the scrape, not by it
            assert any("new" in line for line in lines(body, "pg_stat_database_xact_commit"))
            # A collection landing after the body was made is in the next scrape, not this one.
            await _until(lambda: len(made) == 2)
            store.put(snapshot(["app", "new", "later"], time.time()))
            asked, body = await scrape()
            assert made[1] < asked and len(made) == 2
            assert not any("later" in line for line in lines(body, "pg_stat_database_xact_commit"))
            # Much later than expected: what was made then is too old, the scrape makes its own (and sees "later").
            await _until(lambda: len(made) == 3)
            cadence = exp.ahead._cadences[("10.0.0.9", False, False)]
            await _until(lambda: cadence.ready is not None)
            await _until(lambda: cadence.ready is None)  # its scrape did not come: let go of, not kept
            await asyncio.sleep(2 * SPACING)
            _, body = await scrape()
            assert any("later" in line for line in lines(body, "pg_stat_database_xact_commit"))
        finally:
            await exp.ahead.stop()

    asyncio.run(main())


def test_gzip_bodies_are_made_ahead_per_scraper():
    store, exp, made, scrape = _setup()

    async def main() -> None:
        exp.ahead.start()
        try:
            for _ in range(2):
                await scrape(gzipped=True, who="10.0.0.7:80")
                await asyncio.sleep(SPACING)
            await scrape(gzipped=False, who="10.0.0.8:80")  # another scraper: seen once, nothing made for it
            asked, body = await scrape(gzipped=True, who="10.0.0.7:80")
            assert len(made) == 1 and made[0] < asked
            assert lines(body, "pg_up") and lines(body, "dbwatch_build_info") and body.endswith(b"\n")
        finally:
            await exp.ahead.stop()
        assert not exp.ahead._cadences

    asyncio.run(main())


def test_a_scrape_during_its_build_waits_for_it_and_stopping_leaves_none_waiting():
    from dbwatch.exporters.joined import DeflateCache

    release = asyncio.Event()
    started: list[float] = []

    async def slow(openmetrics: bool, now: float) -> Joined:
        started.append(now)
        await release.wait()
        return Joined(len(started), [], DeflateCache())

    async def main() -> None:
        ahead = Ahead(slow)
        ahead.young_for = 0.0  # the body before is never young enough to stand in: a scrape waits for its own
        ahead.start()
        assert await ahead.take("h", False, False) is None
        await asyncio.sleep(SPACING)
        assert await ahead.take("h", False, False) is None
        await _until(lambda: len(started) == 1)  # the build for the next scrape is under way
        waiting = asyncio.create_task(ahead.take("h", False, False))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        release.set()
        ready = await waiting
        assert ready is not None and ready.joined.key == 1 and ready.at == started[0]
        # The next build is under way when the agent stops: a scrape waiting for it gets None, not a hang.
        release.clear()
        await asyncio.sleep(1.0)  # a spacing longer than the first build took (it waited on the test)
        assert await ahead.take("h", False, False) is None
        await _until(lambda: len(started) == 2)
        waiting = asyncio.create_task(ahead.take("h", False, False))
        await asyncio.sleep(0.05)
        await ahead.stop()
        assert await asyncio.wait_for(waiting, 2) is None

    asyncio.run(main())


def test_a_scrape_with_no_body_of_its_own_ready_is_served_the_newest_young_one_and_a_newer_one_is_started():
    from dbwatch.exporters.ahead import Ready
    from dbwatch.exporters.joined import DeflateCache

    release = asyncio.Event()
    started: list[float] = []

    async def slow(openmetrics: bool, now: float) -> Joined:
        started.append(now)
        await release.wait()
        return Joined(len(started), [], DeflateCache())

    async def main() -> None:
        ahead = Ahead(slow)
        ahead.young_for = 1.0
        ahead.start()
        try:
            assert await ahead.take("a", False, False) is None  # nothing made yet: it makes its own, and says so
            own = Ready(Joined(0, [], DeflateCache()), time.time(), time.monotonic())
            ahead.made(False, False, own, 0.01)
            # Another scraper, nothing made for it: the newest body stands in at once, a newer one is started.
            assert await asyncio.wait_for(ahead.take("b", False, False), 0.5) is own
            await _until(lambda: len(started) == 1)
            assert await asyncio.wait_for(ahead.take("c", False, False), 0.5) is own  # one build at a time
            assert await ahead.take("d", False, True) is None  # gzip is another kind: nothing stands in for it
            await asyncio.sleep(0.05)
            assert len(started) == 1
            release.set()
            await _until(lambda: ahead._young((False, False)) is not own)
            newer = await ahead.take("b", False, False)
            assert newer is not None and newer.joined.key == 1 and newer.at == started[0]
            # Too old to stand in: the scrape makes its own, and the old body is not kept in memory meanwhile.
            await _until(lambda: not ahead._newest, seconds=5)
            assert await ahead.take("e", False, False) is None
        finally:
            await ahead.stop()

    asyncio.run(main())


def test_a_steady_scraper_whose_body_is_still_being_made_is_served_the_newest_young_one_without_waiting():
    from dbwatch.exporters.ahead import Ready
    from dbwatch.exporters.joined import DeflateCache

    release = asyncio.Event()
    started: list[float] = []

    async def slow(openmetrics: bool, now: float) -> Joined:
        started.append(now)
        await release.wait()
        return Joined(len(started), [], DeflateCache())

    async def main() -> None:
        ahead = Ahead(slow)
        ahead.start()
        try:
            assert await ahead.take("h", False, False) is None
            ahead.made(False, False, Ready(Joined(0, [], DeflateCache()), time.time(), time.monotonic()), 0.01)
            await asyncio.sleep(SPACING)
            await ahead.take("h", False, False)  # a spacing: the next one's body is started ahead of it
            await _until(lambda: len(started) >= 1)
            cadence = ahead._cadences[("h", False, False)]
            await _until(lambda: cadence.building is not None)
            ours = Ready(Joined(-1, [], DeflateCache()), time.time(), time.monotonic())
            ahead.made(False, False, ours, 0.01)  # e.g. another scraper's own, made meanwhile
            assert await asyncio.wait_for(ahead.take("h", False, False), 0.5) is ours
            assert not cadence.building  # its build goes on for the scrapes after: the newest when done
            release.set()
            await _until(lambda: (young := ahead._young((False, False))) is not None and young.joined.key > 0)
        finally:
            await ahead.stop()

    asyncio.run(main())
