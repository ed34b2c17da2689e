"""The session template's ownership of its connection, against the test session's throwaway PostgreSQL 15
primary (``pg_primary``): one owner, one lock. And the agent's bounds on connecting: connection attempts in
flight at once (against a loopback listener that never answers), first collections spread out.

A collector that times out while it holds the connection leaves it in an unknown state; the session drops it
before the next collector of the target gets its turn, so that collector never runs on a connection another
one invalidated (at many targets on a busy server this used to fail the other collector with
``AttributeError: 'NoneType' object has no attribute 'bind_execute'``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from dbwatch.agent.config import ConfigError, parse_config
from dbwatch.agent.daemon import _first_run
from dbwatch.agent.jobs import TargetJobs
from dbwatch.collectors.base import CollectorError
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.session import DEFAULT_CONNECT_SLOTS, set_connect_slots
from dbwatch.model import CollectorSettings, Target
from tests.helpers import wait_until


def make_target(dsn: str, statements_timeout: float = 1.0) -> Target:
    return Target(
        name="t", engine="postgres", dsn=dsn, labels={},
        collectors={"postgres": CollectorSettings(15, 5.0),
                    "statements": CollectorSettings(60, statements_timeout, {"top_n": 100, "query_text_length": 200})},
    )


async def backend_pid(session: PostgresSession) -> int:
    async with session.lock:
        return (await session.connection()).get_server_pid()


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_collector_timing_out_on_a_stuck_server_never_hands_its_connection_to_the_next(pg_primary):
    """pg_primary: the statements collector's backend is stopped (SIGSTOP), so its query neither answers nor
    hits statement_timeout and the daemon's 1 s timeout cancels it, while the server-wide collector of the
    same target waits for its turn; that one must run on a new connection and succeed."""
    jobs = TargetJobs(make_target(pg_primary.dsn()))
    session = jobs.session
    assert isinstance(session, PostgresSession)
    try:
        assert (await jobs.collect("postgres")).ok
        stuck = await backend_pid(session)
        os.kill(stuck, signal.SIGSTOP)
        try:
            statements = asyncio.create_task(jobs.collect("statements"))
            await until(session.lock.locked)  # the statements collector holds the connection...
            server = asyncio.create_task(jobs.collect("postgres"))  # ...and the server-wide one waits for it
            timed_out, after = await asyncio.gather(statements, server)
        finally:
            os.kill(stuck, signal.SIGCONT)
        assert not timed_out.ok and timed_out.error == "timed out after 1s"
        assert after.ok, after.error
        assert await backend_pid(session) != stuck
        again = await asyncio.gather(jobs.collect("statements"), jobs.collect("postgres"))
        assert all(s.ok for s in again), [s.error for s in again]
    finally:
        await jobs.close()


async def test_a_collector_timing_out_while_it_waits_for_its_turn_leaves_the_connection_alone(pg_primary):
    """pg_primary: the statements collector (1 s timeout) waits behind a holder that keeps the lock for 1.5 s;
    its timeout does not drop the connection the holder goes on using."""
    jobs = TargetJobs(make_target(pg_primary.dsn()))
    session = jobs.session
    assert isinstance(session, PostgresSession)
    try:
        before = await backend_pid(session)
        holding = asyncio.Event()

        async def hold() -> int:
            async with session.lock:
                holding.set()
                await asyncio.sleep(1.5)  # longer than the waiter's timeout
                [row] = await session.run("SELECT pg_backend_pid() AS pid")
                return int(row["pid"])

        holder = asyncio.create_task(hold())
        await holding.wait()
        snapshot = await jobs.collect("statements")
        assert not snapshot.ok and snapshot.error == "timed out after 1s"
        assert await holder == before
        assert await backend_pid(session) == before
    finally:
        await jobs.close()


async def test_the_connection_is_only_for_the_holder_of_the_sessions_lock(pg_primary):
    """pg_primary: used outside the lock, the session refuses (a programming error, not a collection failure)."""
    session = PostgresSession(make_target(pg_primary.dsn()))
    try:
        with pytest.raises(RuntimeError, match="outside the session's lock"):
            await session.run("SELECT 1")
        async with session.lock:
            assert [dict(r) for r in await session.run("SELECT 1 AS one")] == [{"one": 1}]
    finally:
        await session.close()


async def test_a_holder_that_fails_unexpectedly_leaves_no_connection_behind_and_the_next_one_reconnects(pg_primary):
    """pg_primary: a bug inside the lock (not a CollectorError) drops the connection; the next holder gets a new one."""
    session = PostgresSession(make_target(pg_primary.dsn()))
    try:
        first = await backend_pid(session)
        with pytest.raises(ZeroDivisionError):
            async with session.lock:
                await session.run("SELECT 1")
                _ = 1 / 0
        assert await backend_pid(session) != first
    finally:
        await session.close()


async def test_the_agent_opens_at_most_its_configured_number_of_connections_at_once():
    """A loopback listener that accepts and never answers (a server too busy to complete a handshake): six
    targets connecting at once with two connect slots, each held up to the handshake's timeout, never have
    more than two handshakes in flight."""
    in_flight, most = 0, 0
    released = asyncio.Event()

    async def stuck(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await reader.read()  # until the client gives up and closes
        finally:
            in_flight -= 1
            writer.close()
            released.set()

    server = await asyncio.start_server(stuck, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    set_connect_slots(2, hold=60)
    sessions = [PostgresSession(make_target(f"postgresql://dbwatch@127.0.0.1:{port}/postgres")) for _ in range(6)]

    async def connect(session: PostgresSession) -> str:
        async with session.lock:
            with pytest.raises(CollectorError) as failed:
                await session.connection()
        return str(failed.value)

    try:
        errors = await asyncio.gather(*(connect(s) for s in sessions))
    finally:
        set_connect_slots(DEFAULT_CONNECT_SLOTS)
        server.close()
        for session in sessions:
            await session.close()
    assert all(e.startswith(f"cannot connect to 127.0.0.1:{port}") for e in errors), errors
    assert most == 2


def test_the_connect_bound_is_configured_under_collection_and_must_be_positive():
    assert parse_config("collection: {max_concurrent_connects: 5}").collection.max_concurrent_connects == 5
    assert parse_config("targets: []").collection.max_concurrent_connects == DEFAULT_CONNECT_SLOTS
    with pytest.raises(ConfigError) as refused:
        parse_config("collection: {max_concurrent_connects: 0}")
    assert refused.value.problems == ["collection.max_concurrent_connects: input should be greater than or equal "
                                      "to 1, got 0"]


def test_first_collections_of_a_fleet_are_spread_over_the_interval_and_a_few_targets_start_at_once():
    now = time.monotonic()
    fleet = [_first_run(15.0, 1400)[0] - now for _ in range(1400)]
    assert max(fleet) <= 15.5 and sum(1 for s in fleet if s > 7.5) > 400  # about half in the second half
    few = [_first_run(15.0, 3) for _ in range(300)]
    assert max(first for first, _ in few) - now <= 1.5
    # ... but their phases, the runs after the first, are spread over the whole interval, never sooner than an
    # interval after the first run
    phases = [phase - now for _, phase in few]
    assert max(phases) <= 15.5 and sum(1 for p in phases if p > 7.5) > 100
    assert all(phase >= first for first, phase in few)


async def test_a_targets_collectors_share_its_phase_and_targets_have_their_own(tmp_path):
    """Collectors of one target start together (they take turns on its session and are judged once per cycle);
    the targets of a fleet start at phases of their own. Nothing is collected: the scheduler is not started."""
    from dbwatch.agent.daemon import Daemon

    lines = [f"state_dir: {tmp_path}", "targets:"]
    lines += [f"  - {{name: t{i}, engine: postgres, dsn: 'postgresql://u@127.0.0.1:1/db'}}" for i in range(40)]
    config = tmp_path / "c.yaml"
    config.write_text("\n".join(lines) + "\n")
    daemon = Daemon(config, parse_config(config.read_text()))
    for target in daemon.shard_targets(daemon.config):
        daemon._add(target, starting=2000)  # a fleet: spread over the whole interval
    phases: dict[str, set[float]] = {}
    runs = daemon.scheduler.next_runs()
    assert len(runs) >= 40 * 4  # postgres, stats, tables, settings, migrations, ...
    for job_id, due in runs.items():
        phases.setdefault(job_id.split("/")[0], set()).add(due)
    assert len(phases) == 40 and all(len(runs) == 1 for runs in phases.values()), phases
    assert len({runs.pop() for runs in phases.values()}) > 30, "targets do not start at phases of their own"


async def test_closing_a_session_in_use_never_breaks_the_query_under_way(pg_primary):
    """pg_primary: a target removed by a reload while one of its collectors runs a query: the close does not
    wait for that collector, the query finishes, the collector's next query is refused cleanly, and the
    connection is gone once the collector lets go of it."""
    session = PostgresSession(make_target(pg_primary.dsn(), statements_timeout=5.0))
    running = asyncio.Event()

    async def collector() -> tuple[int, str]:
        async with session.lock:
            pid = (await session.connection()).get_server_pid()
            running.set()
            [row] = await session.run("SELECT pg_sleep(0.5), 1 AS one")
            with pytest.raises(CollectorError) as refused:
                await session.run("SELECT 1")
            return int(row["one"]), f"{pid} {refused.value}"

    task = asyncio.create_task(collector())
    await running.wait()
    await asyncio.wait_for(session.close(), 0.2)
    one, pid_and_error = await task
    pid, error = pid_and_error.split(" ", 1)
    assert one == 1 and error.endswith("is closed")
    gone = f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
    async with asyncio.timeout(5):
        while pg_primary.psql(gone) != "0":
            await asyncio.sleep(0.05)


async def test_servers_that_never_answer_do_not_starve_a_healthy_target_of_connect_slots(pg_primary):
    """pg_primary and a loopback listener that accepts and never answers: with two slots and four sessions hung
    on the listener (each waits up to its 4 s handshake timeout), a healthy target still connects at once,
    because a hung attempt gives its slot back after the hold."""
    hung_now = 0

    async def stuck(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hung_now
        hung_now += 1
        try:
            await reader.read()
        finally:
            hung_now -= 1
            writer.close()

    server = await asyncio.start_server(stuck, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    set_connect_slots(2, hold=0.3)
    hung = [PostgresSession(make_target(f"postgresql://dbwatch@127.0.0.1:{port}/postgres")) for _ in range(4)]
    healthy = PostgresSession(make_target(pg_primary.dsn()))

    async def connect(session: PostgresSession) -> None:
        async with session.lock:
            await session.connection()

    attempts = [asyncio.ensure_future(connect(s)) for s in hung]
    try:
        await wait_until(lambda: hung_now >= 2, 5, "two hung handshakes holding both slots")
        began = time.monotonic()
        assert await backend_pid(healthy) > 0
        waited = time.monotonic() - began
        assert hung_now >= 2, "the hung attempts were still waiting"
        assert waited < 3, f"the healthy target waited {waited:.1f}s for a slot"
    finally:
        set_connect_slots(DEFAULT_CONNECT_SLOTS)
        for task in attempts:
            task.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)
        server.close()
        for session in [*hung, healthy]:
            await session.close()


async def test_the_backoff_after_a_timed_out_attempt_eases_off_without_blaming_the_server_again():
    """A connection attempt that timed out (a server that accepts and never answers) is an overloaded
    server; the reconnect backoff that follows says so too (every collector of the target lengthens its
    interval, not only the one whose attempt timed out) but it asked nothing, so it does not count against
    the server's gate. After a refused connection the backoff is not an overload."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = PostgresSession(make_target(f"postgresql://dbwatch@127.0.0.1:{port}/postgres", statements_timeout=0.5))
    try:
        errors = []
        for _ in range(2):
            async with hung.lock:
                with pytest.raises(CollectorError) as caught:
                    await hung.connection()
            errors.append(caught.value)
        assert (errors[0].overloaded, errors[0].asked) == (True, True), errors[0]
        assert "reconnect backoff" in str(errors[1]) and (errors[1].overloaded, errors[1].asked) == (True, False)
    finally:
        await hung.close()
        server.close()
        for writer in held:
            writer.close()
    refused = PostgresSession(make_target(f"postgresql://dbwatch@127.0.0.1:{port}/postgres"))  # closed now
    try:
        for expected in ("cannot connect", "reconnect backoff"):
            async with refused.lock:
                with pytest.raises(CollectorError, match=expected) as caught:
                    await refused.connection()
            assert not caught.value.overloaded
    finally:
        await refused.close()
