"""Fewer concurrent queries on an overloaded server: each server (host:port) has a gate whose limit on the
collections in flight halves when one holding a place times out and grows back as they succeed
(agent/pressure.py), shown as dbwatch_server_concurrency_limit."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from dbwatch.agent.pressure import MIN_LIMIT, ServerGate, ServerGates
from tests.agentproc import AgentProcess, sample_value
from tests.helpers import wait_for
from tests.redisserver import RedisServer


def test_a_gate_lets_limit_collections_in_and_queues_the_rest_in_order() -> None:
    async def main() -> list[str]:
        gate = ServerGate("db:5432", limit=2)
        order: list[str] = []
        release = asyncio.Event()

        async def holder(name: str) -> None:
            async with gate.place():
                order.append(name)
                await release.wait()

        tasks = [asyncio.create_task(holder(n)) for n in "abcd"]
        await asyncio.sleep(0)  # let every task reach the gate
        for _ in range(10):
            await asyncio.sleep(0)
        assert order == ["a", "b"] and gate.in_flight == 2
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert gate.in_flight == 0
        return order

    assert asyncio.run(main()) == ["a", "b", "c", "d"]


def test_timeouts_halve_the_limit_and_successes_grow_it_back_one_place_at_a_time() -> None:
    gate = ServerGate("db:5432", limit=16)
    for expected in (8, 4, 2, 1, 1):
        gate.timed_out()
        assert int(gate.limit) == max(MIN_LIMIT, expected)
    successes = 0
    while int(gate.limit) < 4 and successes < 100:
        gate.succeeded()
        successes += 1
    assert int(gate.limit) == 4 and 3 <= successes <= 10  # additive: ~limit successes per extra place
    for _ in range(1000):
        gate.succeeded()
    assert gate.limit == 16  # never above the configured maximum


def test_timeouts_of_one_congestion_halve_the_limit_once() -> None:
    """Collections that were in flight when the limit was halved time out together: that is one congestion
    event, answered by one halving (as TCP halves once per window), not one per collection."""
    gate = ServerGate("db:5432", limit=16)
    before = time.monotonic()
    for _ in range(50):  # a busy server's targets, all started before the first timeout
        gate.timed_out(began=before)
    assert int(gate.limit) == 8 and gate.timeouts == 50
    gate.timed_out(began=time.monotonic())  # one that started under the new limit: congestion again
    assert int(gate.limit) == 4


def test_the_main_collectors_request_is_served_before_the_others() -> None:
    """Urgent requests (a target's main collector: its up) go first, a promoted one too (the main collector
    found another collector of its target already waiting); the rest in order."""
    async def main() -> None:
        gate = ServerGate("db:5432", limit=1)
        holder = gate.request()
        assert holder.done()
        a, b, c = gate.request(), gate.request(), gate.request()
        urgent = gate.request(urgent=True)
        gate.promote(c)
        granted: list[asyncio.Future[None]] = []
        for _ in range(4):
            gate.withdraw(holder)
            [holder] = [f for f in (a, b, c, urgent) if f.done() and f not in granted]
            granted.append(holder)
        assert granted == [urgent, c, a, b]
        gate.withdraw(holder)
        assert gate.in_flight == 0

    asyncio.run(main())


def test_a_waiter_cancelled_in_the_queue_leaves_no_place_taken() -> None:
    async def main() -> None:
        gate = ServerGate("db:5432", limit=1)
        inside = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with gate.place():
                inside.set()
                await release.wait()

        first = asyncio.create_task(holder())
        await inside.wait()
        waiting = asyncio.create_task(holder())
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), 0.05)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        release.set()
        await first
        assert gate.in_flight == 0
        async with gate.place():  # the place is free again
            assert gate.in_flight == 1

    asyncio.run(main())


def test_gates_report_their_limit_and_forget_servers_no_longer_watched() -> None:
    gates = ServerGates(limit=8)
    gates.gate("a:6379").timed_out()
    gates.gate("b:5432")
    families = {f.name: f for f in gates.metrics()}
    assert families["dbwatch_server_concurrency_limit"].value(server="a:6379") == 4
    assert families["dbwatch_server_concurrency_limit"].value(server="b:5432") == 8
    gates.configure(2, {"a:6379"})
    families = {f.name: f for f in gates.metrics()}
    assert families["dbwatch_server_concurrency_limit"].value(server="a:6379") == 2
    assert families["dbwatch_server_concurrency_limit"].value(server="b:5432") is None


def test_an_agent_eases_off_a_frozen_server_and_comes_back_when_it_answers(tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        targets = [{"name": f"r{i}", "engine": "redis", "dsn": server.dsn(), "interval": "1s", "timeout": "1s",
                    "collectors": {"slowlog": {"enabled": False}}} for i in range(6)]
        agent = AgentProcess(tmp_path, {"targets": targets,
                                        "collection": {"max_concurrent_per_server": 4}}).start()
        endpoint = f"127.0.0.1:{server.port}"

        def limit() -> float | None:
            return sample_value(agent.metrics(), "dbwatch_server_concurrency_limit", server=endpoint)

        try:
            wait_for(lambda: limit() == 4 and sample_value(agent.metrics(), "redis_up", target="r5") == 1, 30,
                     "every target up at the configured limit")
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                wait_for(lambda: limit() == 1, 40, "the limit down to one while the server is frozen")
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            wait_for(lambda: all(sample_value(agent.metrics(), "redis_up", target=f"r{i}") == 1 for i in range(6)),
                     60, "every target up again")
            wait_for(lambda: (limit() or 0) >= 2, 60, "the limit growing back")
            log = agent.log()
            assert "Traceback" not in log and "internal error" not in log, log[-3000:]
        finally:
            assert agent.stop() == 0
    finally:
        server.destroy()


def test_a_waiter_cancelled_after_a_place_freed_up_is_skipped_without_error() -> None:
    async def main() -> None:
        gate = ServerGate("db:5432", limit=1)
        inside, release = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with gate.place():
                inside.set()
                await release.wait()

        first = asyncio.create_task(holder())
        await inside.wait()
        # Timed out while queued (the daemon's wait_for), in the same loop turn as the holder leaving: the
        # gate skips the cancelled waiter before the waiter's task sees its cancellation.
        queued = asyncio.create_task(holder())
        for _ in range(3):
            await asyncio.sleep(0)
        release.set()  # the holder's wake-up is queued first...
        queued.cancel()  # ...and the queued waiter's future is cancelled before either runs
        results = await asyncio.gather(first, queued, return_exceptions=True)
        assert results[0] is None and isinstance(results[1], asyncio.CancelledError), results
        assert gate.in_flight == 0 and not gate._turns

    asyncio.run(main())


def test_the_collections_of_one_target_share_one_place() -> None:
    """A gate of one place, two targets with two collections each: the collections of a target share the
    target's place (they take turns on its session anyway), everything completes and the place is free."""
    from dbwatch.agent.jobs import TargetJobs

    async def main() -> list[str]:
        gate = ServerGate("db:6379", limit=1)
        done: list[str] = []

        class Jobs(TargetJobs):
            def __init__(self, name: str) -> None:  # only what _gated needs: no session, no collectors
                self.gate, self._place, self._place_users, self.name = gate, None, 0, name
                self.lock = asyncio.Lock()

        class Collector:
            def __init__(self, jobs: Jobs, label: str) -> None:
                self.jobs, self.label = jobs, label

            async def collect(self, snapshot: object) -> None:
                async with self.jobs.lock:  # the target's session turn
                    await asyncio.sleep(0.01)
                    done.append(self.label)

        a, b = Jobs("a"), Jobs("b")
        runs = [jobs._gated(Collector(jobs, f"{jobs.name}{i}"), None, [False], i == 1)  # type: ignore[arg-type]
                for jobs in (a, b) for i in (1, 2)]
        await asyncio.wait_for(asyncio.gather(*runs), 10)
        assert gate.in_flight == 0 and a._place is None and b._place is None
        return done

    assert sorted(asyncio.run(main())) == ["a1", "a2", "b1", "b2"]


def test_a_server_whose_main_collections_queue_defers_the_other_collectors_never_the_main_one(caplog) -> None:
    """As many main collections waiting for places as the limit lets in: a target's other collectors are not
    run (counted, said once) and back off as if they had timed out; the main one always runs. Once a main
    collection succeeds and the queue is short, they run again."""
    from dbwatch.agent.jobs import TargetJobs
    from dbwatch.model import CollectorSettings, Target

    async def main() -> None:
        gates = ServerGates(limit=2)
        gate = gates.gate("db:5432")
        target = Target(name="t", engine="postgres", dsn="postgresql://u@127.0.0.1:1/db", labels={},
                        collectors={"postgres": CollectorSettings(15, 5.0), "stats": CollectorSettings(15, 5.0)})
        jobs = TargetJobs(target, gate=gate)
        assert jobs.up_collector == "postgres"
        held = [gate.request() for _ in range(2)]  # both places taken
        queued = [gate.request(urgent=True)]  # one main collection waiting: not yet congested
        assert jobs.due("stats") and gate.deferred == 0
        queued.append(gate.request(urgent=True))  # two: as many as the limit lets in at once
        assert jobs.due("postgres")
        assert not jobs.due("stats") and not jobs.due("stats") and gate.deferred == 1  # backing off: asked once
        assert jobs.effective_interval("stats") == 30.0 and jobs.effective_interval("postgres") == 15.0
        families = {f.name: f for f in gates.metrics()}
        assert families["dbwatch_server_collections_deferred_total"].value(server="db:5432") == 1
        for place in queued + held:
            gate.withdraw(place)
        jobs._pace("postgres", 0.0, True, False)  # the target's main collection succeeded
        assert jobs.due("stats") and jobs.effective_interval("stats") == 15.0

    with caplog.at_level("WARNING", logger="dbwatch.agent.pressure"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if "deferred" in r.getMessage()] == [
        "server db:5432: its targets' main collections queue for places (limit 2): their other collections are "
        "deferred while they do"]
