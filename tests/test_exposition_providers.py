"""Families computed at scrape time (the providers of exporters/prometheus.py): a family given again as the same
object keeps the text it was rendered to, a new object is rendered anew, one no longer given is let go of; the
alert tracker gives ``dbwatch_alerts`` as the same object while its counts do not change."""

from __future__ import annotations

import asyncio
import os

from dbwatch.agent.alerts import AlertTracker
from dbwatch.model import MetricFamily, gauge
from tests.test_alerts import durations, finding
from tests.test_exposition_freshness import exposition, lines
from tests.helpers import wait_until
from tests.notifyutil import Clock


def test_a_provided_family_is_rendered_again_only_when_it_is_another_object():
    _, exp = exposition()
    given: list[MetricFamily] = []
    exp.add_provider(lambda: given)
    first = gauge("dbwatch_thing", "A thing.", ("name",))
    first.add(("a",), 1)
    given.append(first)
    assert lines(exp.render(), "dbwatch_thing") == ['dbwatch_thing{name="a"} 1.0']
    # The same object again: its text as rendered (a provider gives a new object when the family changes).
    first.add(("b",), 2)
    assert lines(exp.render(), "dbwatch_thing") == ['dbwatch_thing{name="a"} 1.0']
    second = gauge("dbwatch_thing", "A thing.", ("name",))
    second.add(("c",), 3)
    given[:] = [second]
    assert lines(exp.render(), "dbwatch_thing") == ['dbwatch_thing{name="c"} 3.0']
    assert lines(exp.render(openmetrics=True), "dbwatch_thing") == ['dbwatch_thing{name="c"} 3.0']
    given.clear()
    assert lines(exp.render(), "dbwatch_thing") == [] and lines(exp.render(openmetrics=True), "dbwatch_thing") == []
    assert all(family is not first and family is not second for family, _ in exp._rendered.values())


def test_the_alerts_family_is_the_same_object_until_the_counts_change(tmp_path):
    tracker = AlertTracker(tmp_path / "alerts.db", Clock())
    [before] = tracker.metrics()
    assert tracker.metrics()[0] is before and not before.samples
    tracker.update("db1", [finding("Now")], durations)
    [firing] = tracker.metrics()
    assert firing is not before and dict(firing.samples) == {("Now", "warning", "firing", "db1"): 1}
    tracker.update("db1", [finding("Now", value=12)], durations)  # the same alert again: the same counts
    assert tracker.metrics()[0] is firing


def test_process_metrics_are_served_from_a_reading_the_agents_loop_makes_every_second():
    _, exp = exposition()

    def open_fds() -> float:
        return float(lines(exp.scrape_agent(), "process_open_fds ")[0].split()[1])

    async def main() -> None:
        exp.process.start()
        reading = open_fds()  # the reading made at start (other tests' files may close meanwhile: counts move)
        pipes = [os.pipe() for _ in range(32)]
        try:
            assert open_fds() == reading  # served from that reading, not the 64 files opened since
            await wait_until(lambda: open_fds() >= reading + 32, 5, "the next reading (within a second)")
            exp.process.stop()
            assert open_fds() >= reading + 32  # stopped: read at the scrape
        finally:
            for read, write in pipes:
                os.close(read)
                os.close(write)
        assert open_fds() < reading + 32  # read at the scrape again: the pipes are gone

    asyncio.run(main())
