"""The agent's own latency (agent/loophealth.py): a loop held shows in ``dbwatch_event_loop_lag_seconds``, a run
of the cyclic collector in ``dbwatch_gc_pause_seconds``; after stop, neither is measured any more."""

from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import CollectorRegistry

from dbwatch.agent.loophealth import PROBE_EVERY, LoopHealth


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_held_loop_and_a_collection_are_measured_until_stop():
    registry = CollectorRegistry()
    health = LoopHealth(registry)

    async def main() -> None:
        health.start()
        health.start()  # twice: still one probe, one callback
        assert gc.callbacks.count(health._on_gc) == 1
        # A probe on time first: the loop is idle.
        while _value(registry, "dbwatch_event_loop_lag_seconds_count") < 1:
            await asyncio.sleep(PROBE_EVERY / 5)
        assert _value(registry, "dbwatch_event_loop_lag_seconds_bucket", le="0.1") >= 1
        # The loop held for 0.65 s: the next probe is late by more than 0.25 s.
        time.sleep(PROBE_EVERY + 0.4)
        while _value(registry, "dbwatch_event_loop_lag_seconds_bucket", le="+Inf") == _value(
                registry, "dbwatch_event_loop_lag_seconds_bucket", le="0.25"):
            await asyncio.sleep(PROBE_EVERY / 5)
        assert _value(registry, "dbwatch_event_loop_lag_seconds_sum") >= 0.25
        before = _value(registry, "dbwatch_gc_pause_seconds_count", generation="2")
        gc.collect()
        assert _value(registry, "dbwatch_gc_pause_seconds_count", generation="2") == before + 1
        gc.collect(0)
        assert _value(registry, "dbwatch_gc_pause_seconds_count", generation="0") >= 1
        health.stop()
        probes = _value(registry, "dbwatch_event_loop_lag_seconds_count")
        gc.collect()
        await asyncio.sleep(PROBE_EVERY * 3)
        assert health._on_gc not in gc.callbacks
        assert _value(registry, "dbwatch_gc_pause_seconds_count", generation="2") == before + 1
        assert _value(registry, "dbwatch_event_loop_lag_seconds_count") == probes

    asyncio.run(main())
