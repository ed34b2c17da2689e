"""The listener's own thread (agent/httpthread.py): a per-target scrape whose body was made ahead of it, and a
whole scrape whose body was (or a young one of its kind stands in), are answered while the agent's event loop is
held; other whole bodies and the JSON API are made on the agent's loop and still answered; a POST's body reaches
its handler on the agent's loop. In-process, on a loopback port, with recorded snapshots."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import threading
import time
import urllib.error
import urllib.request

from aiohttp import web

from dbwatch.agent.http import _SEND_SLICE, HttpServer, _slices
from dbwatch.agent.store import SnapshotStore
from dbwatch.exporters.ahead import Ready
from tests.helpers import wait_until
from tests.test_exposition_freshness import STARTED, exposition, lines, snapshot


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
        return bytes(response.read())


def _scraped_while_the_loop_is_held(url: str, what: str) -> bytes:
    """A gzip scrape of ``url`` from another thread, its body decompressed, while the calling event loop is held
    (it does not await until the scrape is answered): it must be answered without that loop."""
    answered = threading.Event()
    got: list[bytes] = []

    def scrape() -> None:
        got.append(_get(url, {"Accept-Encoding": "gzip"}))
        answered.set()

    threading.Thread(target=scrape, daemon=True).start()
    assert answered.wait(20), f"{what} waited for the held event loop"
    return gzip.decompress(got[0])


async def _serve(**routes: web.RouteDef) -> tuple[HttpServer, SnapshotStore]:
    store, exp = exposition({"db": {"cluster": "c1"}, "other": {}})
    server = HttpServer(exp, store, expected_jobs=lambda: [], targets=lambda: [{"name": "db"}])
    server.app.add_routes(list(routes.values()))
    await server.start("127.0.0.1:0")
    return server, store


async def test_a_ready_per_target_body_is_served_while_the_event_loop_is_held():
    server, store = await _serve()
    try:
        store.put(snapshot(["app"], STARTED))
        url = f"http://{server.address}/metrics?target=db"
        first = await asyncio.to_thread(_get, url, {"Accept-Encoding": "gzip"})  # made on the loop, kind learnt
        assert lines(gzip.decompress(first), "pg_up") == ['pg_up{target="db",cluster="c1"} 1.0 1700000000125']
        await asyncio.sleep(1.0)  # a scrape loop one second apart: its spacing is learnt from two scrapes
        await asyncio.to_thread(_get, url, {"Accept-Encoding": "gzip"})
        store.put(snapshot(["app", "b"], STARTED + 15))
        assert server.targets.ready("db", gzip=True) is None  # what landed is not in the body yet
        # made ahead of the next scrape expected (LEAD seconds before it), without a scrape asking
        await wait_until(lambda: server.targets.ready("db", gzip=True) is not None, 10,
                         "the landed collection's body made ahead")
        body = _scraped_while_the_loop_is_held(url, "the per-target scrape")
        assert len(lines(body, "pg_stat_database_xact_commit")) == 2
    finally:
        await server.stop()


async def test_whole_body_api_and_posted_bodies_are_made_on_the_agents_loop():
    main = threading.get_ident()
    seen: dict[str, object] = {}

    async def echo(request: web.Request) -> web.Response:
        seen["thread"] = threading.get_ident()
        return web.json_response(json.loads(await request.text()))

    server, store = await _serve(echo=web.post("/echo", echo))
    try:
        store.put(snapshot(["app"], STARTED))
        body = await asyncio.to_thread(_get, f"http://{server.address}/metrics")
        assert lines(body, "pg_up") == ['pg_up{target="db",cluster="c1"} 1.0 1700000000125']
        targets = json.loads(await asyncio.to_thread(_get, f"http://{server.address}/api/v1/targets"))
        assert targets == [{"name": "db"}]
        request = urllib.request.Request(f"http://{server.address}/echo", data=b'{"a": [1, 2]}',
                                         headers={"Content-Type": "application/json"}, method="POST")
        posted = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=30).read())
        assert json.loads(posted) == {"a": [1, 2]} and seen["thread"] == main
        missing = urllib.request.Request(f"http://{server.address}/metrics?target=nope")
        status = await asyncio.to_thread(_status, missing)
        assert status == 404
    finally:
        await server.stop()
    assert not any(t.name == "dbwatch-http" for t in threading.enumerate())


def _scrapes(body: bytes, kind: str, served: str = "") -> float:
    """dbwatch_scrape_seconds' count of gzip scrapes of ``kind`` (answered ``served``, or any way) in a body."""
    total = 0.0
    for line in lines(body, "dbwatch_scrape_seconds_count{"):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels["body"] == kind and labels["encoding"] == "gzip" and served in ("", labels["served"]):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


async def test_a_whole_body_made_ahead_is_served_while_the_event_loop_is_held():
    server, store = await _serve()
    try:
        store.put(snapshot(["app"], STARTED))
        url = f"http://{server.address}/metrics"
        for _ in range(2):  # a steady scraper (one host), one second apart: its next scrape is anticipated
            await asyncio.to_thread(_get, url, {"Accept-Encoding": "gzip"})
            await asyncio.sleep(1.0)
        await wait_until(lambda: len(server.exposition.prepared) == 1, 10, "the next scrape's body made ahead")
        before = time.time()
        body = _scraped_while_the_loop_is_held(url, "the whole-body scrape")
        assert lines(body, "pg_up") == ['pg_up{target="db",cluster="c1"} 1.0 1700000000125']
        ages = lines(body, "dbwatch_collect_age_seconds{")  # as of the body's making, before the scrape
        assert ages and all(float(line.rsplit(" ", 1)[1]) <= before - (STARTED + 0.25) for line in ages), ages
        assert lines(body, "process_cpu_seconds_total") and lines(body, "dbwatch_build_info")
        # each scrape counted by how it was answered: the two before it through the loop or a stand-in ...
        assert _scrapes(body, "whole") == 2 and not _scrapes(body, "whole", "ahead")
        # the event loop was told: the spacing learnt again, the body after it made ahead too
        await wait_until(lambda: len(server.exposition.prepared) == 1, 10, "the body after it made ahead")
        after = gzip.decompress(await asyncio.to_thread(_get, url, {"Accept-Encoding": "gzip"}))
        assert _scrapes(after, "whole", "ahead") == 1  # ... and the held one from the body made ahead
    finally:
        await server.stop()
    assert len(server.exposition.prepared) == 0


async def test_a_young_body_of_its_kind_stands_in_on_the_http_thread_and_a_newer_one_is_started():
    store, exp = exposition({"db": {"cluster": "c1"}})
    store.put(snapshot(["app"], STARTED))
    at = time.time()
    joined = await exp._joined_async(False, at)
    # made 0.5 s long, with what was true then (the ages, stamped then): may stand in for a while
    ready = Ready(joined, at, time.monotonic(), 0.5, exp._live(False, at))
    exp.prepared.newest((False, False), ready, time.time() + 10)
    answered = await asyncio.to_thread(exp.prepared_scrape, "10.0.0.7:4711", False, False)  # a new scraper
    assert answered is not None
    length, chunks, served, stood_in = answered
    assert stood_in
    body = b"".join(chunks)
    assert len(body) == length and lines(body, "pg_up") == ['pg_up{target="db",cluster="c1"} 1.0 1700000000125']
    ages = lines(body, "dbwatch_collect_age_seconds{")  # as of the body's making, without a timestamp
    assert ages and all(line.count(" ") == 1 for line in ages), ages
    served()  # on the event loop: the scraper is learnt and a newer body is under way for the scrapes after it
    assert ("10.0.0.7", False, False) in exp.ahead._cadences and (False, False) in exp.ahead._building
    await exp.ahead.stop()
    exp.prepared.newest((False, False), None, 0.0)
    assert await asyncio.to_thread(exp.prepared_scrape, "10.0.0.7:4711", False, False) is None  # none young: the loop


def test_a_body_goes_out_in_writes_of_about_a_slice_small_pieces_joined_large_ones_cut():
    pieces = [bytes([i % 251]) * 3000 for i in range(2000)]  # a gzip body's deflated pieces
    large = bytes(range(256)) * 4000  # a plain body's part of 1 MB
    chunks = [b"\x1f\x8b", *pieces[:1000], large, *pieces[1000:], b"tail"]
    writes = [bytes(w) for w in _slices(chunks)]
    assert b"".join(writes) == b"".join(chunks)
    assert all(len(w) < 2 * _SEND_SLICE for w in writes)
    assert len(writes) <= 2 * (len(b"".join(chunks)) // _SEND_SLICE + 2)  # not one write per piece
