"""The exposition's timestamps, tombstones and cached gzip (docs/metrics-freshness.md), on recorded snapshots.

No server: snapshots are built by hand and put into a SnapshotStore, as collectors would. The same mechanism on
a real Prometheus: tests/test_freshness_prometheus.py.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import yaml

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.engines import engine
from dbwatch.exporters.prometheus import Exposition
from dbwatch.exporters.staleness import LOOKBACK, Scrapers
from dbwatch.model import Snapshot, counter, gauge

STARTED = 1_700_000_000.0


def snapshot(databases: list[str], started: float, target: str = "db") -> Snapshot:
    snap = Snapshot(target=target, engine="postgres", collector="postgres", started_at=started, duration=0.25)
    commits = counter("pg_stat_database_xact_commit", "Commits.", ("datname",))
    for index, name in enumerate(databases):
        commits.add((name,), 100 + index)
    up = gauge("pg_up", "Up.")
    up.add((), 1)
    snap.families = [commits, up]
    return snap


def lines(body: bytes, prefix: str) -> list[str]:
    return [line for line in body.decode().splitlines() if line.startswith(prefix)]


def exposition(labels: dict[str, dict[str, str]] | None = None) -> tuple[SnapshotStore, Exposition]:
    store = SnapshotStore()
    exp = Exposition(store, version="test")
    exp.set_target_labels(labels if labels is not None else {"db": {"cluster": "c1"}})
    return store, exp


def test_collected_samples_carry_the_middle_of_their_collection_in_ms_or_seconds_and_live_ones_none():
    store, exp = exposition()
    store.put(snapshot(["app"], STARTED))
    text = exp.render()
    assert lines(text, "pg_up") == ['pg_up{target="db",cluster="c1"} 1.0 1700000000125']
    [sample] = next(f for f in parse_text(text.decode()) if f.name == "pg_up").samples
    assert sample.timestamp == 1700000000.125
    om = exp.render(openmetrics=True)
    assert lines(om, "pg_up") == ['pg_up{target="db",cluster="c1"} 1.0 1700000000.125']
    [sample] = next(f for f in parse_openmetrics(om.decode()) if f.name == "pg_up").samples
    assert float(sample.timestamp) == 1700000000.125
    # What the agent computes at scrape time is true at scrape time: no timestamp.
    assert all(len(line.split()) == 2 for line in lines(text, "dbwatch_build_info"))


def test_a_label_value_with_a_newline_gets_its_timestamp_once_at_the_end_of_its_line():
    store, exp = exposition()
    store.put(snapshot(["a\nb"], STARTED))
    assert lines(exp.render(), "pg_stat_database_xact_commit") == [
        'pg_stat_database_xact_commit{target="db",cluster="c1",datname="a\\nb"} 100.0 1700000000125']


def test_gzip_is_one_member_whose_snapshot_part_is_compressed_once_per_change():
    store, exp = exposition()
    store.put(snapshot([f"db{i}" for i in range(500)], STARTED))
    packed = exp.scrape(gzip=True)
    inflater = zlib.decompressobj(31)
    body = inflater.decompress(packed)
    assert inflater.eof and not inflater.unused_data  # one member: clients that read only the first see all
    assert body.endswith(b"\n") and lines(body, "pg_") == lines(exp.render(), "pg_")
    joined = exp._cache[False]
    assert exp.scrape(gzip=True) and exp._cache[False] is joined and joined._deflated is not None
    assert gzip.decompress(exp.scrape(openmetrics=True, gzip=True)).endswith(b"# EOF\n")


def test_a_scrape_holds_no_copy_of_the_collections_lines_and_recompresses_only_the_names_that_changed():
    def collection(target: str, started: float, value: int) -> Snapshot:
        snap = Snapshot(target=target, engine="redis", collector=f"only_{target}", started_at=started, duration=0.25)
        own = gauge(f"own_{target}", "A family of one target.", ("k",))
        for i in range(200):
            own.add((str(i),), value + i)
        snap.families = [own]
        return snap

    store, exp = exposition({"a": {}, "b": {}})
    store.put(collection("a", STARTED, 0))
    store.put(collection("b", STARTED, 0))
    first = gzip.decompress(exp.scrape(gzip=True))
    lines_of = {family.name: body for fragment in exp._fragments.values() for family, body in fragment.entries(False)}
    joined = exp._cache[False]
    served = {id(part) for group in joined.groups for part in group.parts}
    assert {id(body) for body in lines_of.values()} <= served  # the fragments' own bytes, not copies
    packed_b = dict(zip([g.name for g in joined.groups], joined.deflated()))["own_b"]
    store.put(collection("a", STARTED + 15, 1))  # only a's name changes
    second = gzip.decompress(exp.scrape(gzip=True))
    again = dict(zip([g.name for g in exp._cache[False].groups], exp._cache[False].deflated()))
    assert again["own_b"] is packed_b and again["own_a"] is not None
    assert lines(second, "own_b") == lines(first, "own_b") and lines(second, "own_a") != lines(first, "own_a")
    assert lines(second, "own_") == lines(exp.render(), "own_")  # the gzip body is the plain one
    length, pieces = exp._respond(exp._cache[False], False, False, None, STARTED)
    body = b"".join(pieces)
    assert len(body) == length and lines(body, "own_") == lines(second, "own_")


def test_a_vanished_label_set_is_served_untimestamped_until_every_active_scraper_fetched_it():
    store, exp = exposition()
    store.put(snapshot(["app", "gone"], STARTED))
    for who in ("prom-a", "prom-a", "prom-b", "prom-b"):  # two scrape loops, each seen twice: active
        exp.scrape(scraper=who)
    store.put(snapshot(["app"], STARTED + 15))
    gone = 'pg_stat_database_xact_commit{target="db",cluster="c1",datname="gone"} 101.0'
    assert gone in lines(exp.scrape(scraper="prom-a"), "pg_stat_database_xact_commit")
    assert gone in lines(exp.scrape(scraper="curl"), "pg_stat_database_xact_commit")  # one-off: not waited for
    assert exp.tombstones() == 1
    assert gone in lines(exp.scrape(scraper="prom-b"), "pg_stat_database_xact_commit")
    assert exp.tombstones() == 1  # prom-b got it in that scrape; it goes before the next one
    after = lines(exp.scrape(scraper="prom-a"), "pg_stat_database_xact_commit")
    assert exp.tombstones() == 0 and not [line for line in after if "gone" in line]


def test_a_series_back_before_its_tombstone_retired_is_served_once_with_its_timestamp():
    store, exp = exposition()
    store.put(snapshot(["app", "flaky"], STARTED))
    exp.scrape(scraper="p")
    exp.scrape(scraper="p")
    store.put(snapshot(["app"], STARTED + 15))
    store.put(snapshot(["app", "flaky"], STARTED + 30))
    flaky = [line for line in lines(exp.scrape(scraper="p"), "pg_stat") if "flaky" in line]
    assert flaky == ['pg_stat_database_xact_commit{target="db",cluster="c1",datname="flaky"} 101.0 1700000030125']
    assert exp.tombstones() == 0


def test_a_removed_target_and_a_relabelled_one_leave_tombstones_of_their_old_series():
    store, exp = exposition({"db": {"cluster": "c1"}, "other": {}})
    store.put(snapshot(["app"], STARTED))
    store.put(snapshot(["app"], STARTED, target="other"))
    exp.scrape(scraper="p")
    exp.scrape(scraper="p")
    store.forget_target("other")
    exp.set_target_labels({"db": {"cluster": "c2"}})
    body = exp.scrape(scraper="p")
    assert 'pg_up{target="other"} 1.0' in lines(body, "pg_up")
    assert 'pg_up{target="db",cluster="c1"} 1.0' in lines(body, "pg_up")
    assert 'pg_up{target="db",cluster="c2"} 1.0 1700000000125' in lines(body, "pg_up")
    assert lines(exp.scrape(scraper="p"), "pg_up") == ['pg_up{target="db",cluster="c2"} 1.0 1700000000125']


def test_scrapers_count_while_they_keep_their_rhythm_and_tombstones_outlive_no_more_than_the_lookback():
    scrapers = Scrapers()
    scrapers.served("p", 0.0)
    assert scrapers.all_served_since(5.0, 10.0)  # seen once: its rhythm unknown, not waited for
    scrapers.served("p", 15.0)
    assert not scrapers.all_served_since(20.0, 30.0)  # active (every 15 s), not served since 20
    assert scrapers.all_served_since(20.0, 15.0 + 3 * 15 + 2)  # silent for three of its intervals: not active
    store, exp = exposition()
    store.put(snapshot(["app", "gone"], STARTED))
    store.put(snapshot(["app"], STARTED + 15))
    assert exp.tombstones() == 1
    grave = exp._graves._graves[0]
    slow = Scrapers()
    slow.served("every-2-min", grave.created - 121)
    slow.served("every-2-min", grave.created - 1)
    assert not exp._graves.retire(slow, grave.created + 1)  # created after its last scrape: waits for it
    assert exp._graves.retire(slow, grave.created + LOOKBACK + 1) and exp.tombstones() == 0


def test_the_shipped_scrape_config_keeps_timestamps_and_scrapes_at_the_default_collection_interval():
    config = yaml.safe_load((Path(__file__).parent.parent / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert all(job["honor_timestamps"] is True for job in config["scrape_configs"])
    assert config["global"]["scrape_interval"] == "15s"
    assert engine("postgres").defaults["postgres"].interval == 15.0 == engine("redis").defaults["redis"].interval


def test_a_reload_that_only_reorders_a_targets_labels_leaves_no_tombstone():
    store, exp = exposition({"db": {"cluster": "c1", "env": "prod"}})
    store.put(snapshot(["app"], STARTED))
    exp.scrape(scraper="p")
    exp.scrape(scraper="p")
    exp.set_target_labels({"db": {"env": "prod", "cluster": "c1"}})
    assert exp.tombstones() == 0


async def test_scrape_async_deflates_in_a_thread_and_serves_the_same_single_member_body():
    store, exp = exposition()
    store.put(snapshot([f"db{i}" for i in range(2000)], STARTED))
    packed = await exp.scrape_async(gzip=True, scraper="p")
    assert lines(gzip.decompress(packed), "pg_") == lines(exp.render(), "pg_")
    assert exp._cache[False]._deflated is not None and exp._cache[False]._crc is not None


def test_a_family_shared_by_the_next_collection_is_served_with_the_new_timestamp_as_if_rendered_again():
    store, exp = exposition()
    first = snapshot(["app", "a\nb 1700000000125"], STARTED)
    store.put(first)
    exp.render()
    second = snapshot(["app", "a\nb 1700000000125"], STARTED + 15)
    second.families[0] = first.families[0]  # unchanged: the store's history shares the same object
    store.put(second)
    reused = exp.render()
    _, fresh = exposition()
    fresh.store.put(second)  # type: ignore[attr-defined]
    rendered = fresh.render()
    assert lines(reused, "pg_stat_database_xact_commit") == lines(rendered, "pg_stat_database_xact_commit") == [
        'pg_stat_database_xact_commit{target="db",cluster="c1",datname="app"} 100.0 1700000015125',
        'pg_stat_database_xact_commit{target="db",cluster="c1",datname="a\\nb 1700000000125"} 101.0 1700000015125']
    assert lines(reused, "pg_up") == ['pg_up{target="db",cluster="c1"} 1.0 1700000015125']
