"""The catalog-reading strategy findings on MariaDB (collectors/mysql_workload*.py, rules/strategy_mysql.py):
SearchIndexCandidate, DocumentModelCandidate, TimeSeriesLayout and ShardKeyCandidate, each on its planted
pattern beside its near-misses. Runs on the session's shared MariaDB (tests/mariadbserver.py) in a schema of
its own, with the thresholds lowered through the workload collector's options (tables of thousands of rows,
not millions). Table names are unique across the MariaDB tests: digests name tables without their schema."""

from __future__ import annotations

import asyncio
import random

import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_workload import MySQLWorkloadCollector
from dbwatch.collectors.mysql_workload_catalog import TIME_SAMPLE_POINTS, rank_correlation
from dbwatch.collectors.workload_common import classify
from dbwatch.model import Finding
from dbwatch.model.facts.workload_profile import TableActivity, WorkloadProfile
from tests.auditutil import by_rule, collect_once, evaluate, target
from tests.mariadbserver import MariaDBServer, mariadb_primary  # noqa: F401 (fixture)

OPTIONS = {"min_table_rows": 5000, "timeseries_min_inserts": 1000, "shard_min_table_bytes": 512 * 1024}
SCHEMA = """
DROP DATABASE IF EXISTS stratx; CREATE DATABASE stratx; USE stratx;
-- search: a large table LIKE-scanned, a small one, a large one whose column has a FULLTEXT index, and a large
-- one whose LIKE only filters the rows a primary-key range found (5 % of them)
CREATE TABLE articles_my (id int PRIMARY KEY, title varchar(200) NOT NULL) ENGINE=InnoDB;
INSERT INTO articles_my SELECT seq, CONCAT(MD5(seq), ' ', MD5(seq * 7)) FROM seq_1_to_20000;
CREATE TABLE headlines_my (id int PRIMARY KEY, title varchar(200) NOT NULL) ENGINE=InnoDB;
INSERT INTO headlines_my SELECT * FROM articles_my;
CREATE TABLE tags_my (id int PRIMARY KEY, label varchar(100) NOT NULL) ENGINE=InnoDB;
INSERT INTO tags_my SELECT seq, MD5(seq) FROM seq_1_to_500;
CREATE TABLE notes_my (id int PRIMARY KEY, body text NOT NULL, FULLTEXT INDEX notes_body (body)) ENGINE=InnoDB;
INSERT INTO notes_my SELECT seq, CONCAT(MD5(seq), ' ', MD5(seq * 7)) FROM seq_1_to_20000;
-- JSON: MariaDB's JSON is LONGTEXT with a json_valid() check; plain_doc's LONGTEXT has none
CREATE TABLE events_doc (id int PRIMARY KEY, doc JSON NOT NULL) ENGINE=InnoDB;
INSERT INTO events_doc SELECT seq, JSON_OBJECT('kind', seq % 50, 'tag', MD5(seq)) FROM seq_1_to_20000;
CREATE TABLE small_doc (id int PRIMARY KEY, doc JSON NOT NULL) ENGINE=InnoDB;
INSERT INTO small_doc SELECT seq, JSON_OBJECT('kind', seq % 50) FROM seq_1_to_500;
CREATE TABLE plain_doc (id int PRIMARY KEY, attrs LONGTEXT NOT NULL) ENGINE=InnoDB;
INSERT INTO plain_doc SELECT seq, JSON_OBJECT('kind', seq % 50) FROM seq_1_to_20000;
-- time series: appended in time order (and trimmed), the same updated in place, and shuffled times
CREATE TABLE readings_my (id bigint AUTO_INCREMENT PRIMARY KEY, at datetime NOT NULL, v double) ENGINE=InnoDB;
INSERT INTO readings_my (at, v) SELECT '2024-01-01' + INTERVAL seq MINUTE, seq FROM seq_1_to_3000;
DELETE FROM readings_my WHERE id <= 100;
CREATE TABLE visits_my (id bigint AUTO_INCREMENT PRIMARY KEY, at datetime NOT NULL, seen int) ENGINE=InnoDB;
INSERT INTO visits_my (at, seen) SELECT '2024-01-01' + INTERVAL seq MINUTE, 0 FROM seq_1_to_3000;
UPDATE visits_my SET seen = seen + 1;
CREATE TABLE shuffled_my (id bigint AUTO_INCREMENT PRIMARY KEY, at datetime NOT NULL) ENGINE=InnoDB;
INSERT INTO shuffled_my (at) SELECT '2024-01-01' + INTERVAL FLOOR(RAND(7) * 3000) MINUTE FROM seq_1_to_3000;
-- shard keys: customer_id on a large table (InnoDB's index statistics only), the same with one customer in a
-- third of the rows (MariaDB's engine-independent statistics with a JSON_HB histogram), the same below the
-- size floor, and a large table filtered half by one column and half by another
CREATE TABLE orders_my (id int PRIMARY KEY, customer_id int NOT NULL, total int NOT NULL, KEY (customer_id))
  ENGINE=InnoDB;
INSERT INTO orders_my SELECT seq, seq % 2000, seq FROM seq_1_to_30000;
CREATE TABLE orders_hot (id int PRIMARY KEY, customer_id int NOT NULL, total int NOT NULL, KEY (customer_id))
  ENGINE=InnoDB;
INSERT INTO orders_hot SELECT seq, IF(seq % 3 = 0, 1, seq % 2000), seq FROM seq_1_to_30000;
CREATE TABLE orders_small (id int PRIMARY KEY, customer_id int NOT NULL, total int NOT NULL, KEY (customer_id))
  ENGINE=InnoDB;
INSERT INTO orders_small SELECT seq, seq % 200, seq FROM seq_1_to_500;
CREATE TABLE logs_my (id int PRIMARY KEY, level int NOT NULL, host int NOT NULL, KEY (level), KEY (host))
  ENGINE=InnoDB;
INSERT INTO logs_my SELECT seq, seq % 5, seq % 3000 FROM seq_1_to_30000;
ANALYZE TABLE articles_my, headlines_my, tags_my, notes_my, events_doc, small_doc, plain_doc, readings_my, visits_my,
  shuffled_my, orders_my, orders_small, logs_my;
SET SESSION histogram_type = JSON_HB;
ANALYZE TABLE orders_hot PERSISTENT FOR ALL;
"""


def _workload() -> list[str]:
    lines = ["USE stratx;"]
    for i in range(20):
        word = f"{i:x}{i + 3:x}"
        lines += [f"SELECT id FROM articles_my WHERE title LIKE '%{word}%';",
                  f"SELECT id FROM tags_my WHERE label LIKE '%{word}%';",
                  f"SELECT id FROM notes_my WHERE body LIKE '%{word}%';",
                  f"SELECT id FROM headlines_my WHERE id <= 1000 AND title LIKE '%{word}%';",
                  f"SELECT id FROM events_doc WHERE JSON_VALUE(doc, '$.kind') = '{i}';",
                  f"SELECT id FROM small_doc WHERE JSON_VALUE(doc, '$.kind') = '{i}';",
                  f"SELECT id FROM plain_doc WHERE JSON_VALUE(attrs, '$.kind') = '{i}';"]
    for i in range(50):
        lines += [f"SELECT total FROM {t} WHERE customer_id = {i};"
                  for t in ("orders_my", "orders_hot", "orders_small")]
        lines += [f"SELECT count(*) FROM logs_my WHERE {'level' if i % 2 else 'host'} = {i % 5};"]
    lines += [f"SELECT total FROM {t} WHERE id = {i + 1};" for t in ("orders_my", "orders_hot") for i in range(5)]
    return lines


@pytest.fixture(scope="module")
def advice(mariadb_primary: MariaDBServer) -> tuple[WorkloadProfile, list[Finding]]:  # noqa: F811
    db = mariadb_primary
    db.sql(SCHEMA)
    db.sql("\n".join(_workload()))
    store = SnapshotStore(history_size=2)
    t = target("mysql", db.dsn(), {"workload": OPTIONS})
    snapshot = asyncio.run(collect_once(store, MySQLWorkloadCollector, MySQLSession, t))
    assert snapshot.error is None, snapshot.error
    profile = snapshot.fact(WorkloadProfile)
    assert profile is not None and profile.statements_available
    return profile, evaluate(store, "mysql", "strategy")


def _found(findings: list[Finding], rule: str) -> dict[str, Finding]:
    return {f.evidence["table"]: f for f in by_rule(findings, rule) if f.evidence["table"].startswith("stratx.")}


def _table(profile: WorkloadProfile, name: str) -> TableActivity:
    return next(t for t in profile.tables if t.name == f"stratx.{name}")


def test_search_fires_on_like_scans_of_a_large_table_not_a_small_one_an_indexed_range_nor_a_fulltext_column(
        advice):
    profile, findings = advice
    assert _table(profile, "notes_my").search_indexed == ("body",)
    found = _found(findings, "SearchIndexCandidate")
    assert set(found) == {"stratx.articles_my"}
    f = found["stratx.articles_my"]
    assert f.evidence["column"] == "title" and f.evidence["rows_examined_per_call"] >= 15000
    assert f.evidence["sql"] == ("ALTER TABLE `stratx`.`articles_my` ADD FULLTEXT INDEX `articles_my_title_ft` "
                                 "(`title`), ALGORITHM=INPLACE, LOCK=SHARED;")
    assert f.evidence["risk"] == "high" and "writes wait" in f.evidence["lock"]
    assert f.evidence["rebuilds_table"] and "rebuilds the table" in f.evidence["lock"]
    assert "MATCH(title) AGAINST" in f.evidence["action"]


def test_the_fulltext_statement_offered_runs_with_the_lock_it_states_and_no_weaker_one(advice, mariadb_primary):
    _, findings = advice
    sql = _found(findings, "SearchIndexCandidate")["stratx.articles_my"].evidence["sql"]
    with pytest.raises(RuntimeError, match="Fulltext index creation requires a lock"):
        mariadb_primary.sql("USE stratx; " + sql.replace("LOCK=SHARED", "LOCK=NONE"))
    with pytest.raises(RuntimeError, match="ALGORITHM=NOCOPY is not supported"):
        mariadb_primary.sql("USE stratx; " + sql.replace("ALGORITHM=INPLACE", "ALGORITHM=NOCOPY"))
    mariadb_primary.sql("USE stratx; " + sql)
    assert mariadb_primary.sql(
        "SELECT INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'stratx' "
        "AND INDEX_NAME = 'articles_my_title_ft'") == "FULLTEXT"


def test_json_columns_are_read_from_mariadbs_json_valid_checks(advice):
    profile, _ = advice
    assert _table(profile, "events_doc").json_columns == ("doc",)
    plain = _table(profile, "plain_doc")
    assert plain.json_columns == () and plain.text_columns == ("attrs",)


def test_document_model_fires_on_json_key_filters_of_a_large_table_not_a_small_one_nor_a_text_column(advice):
    _, findings = advice
    found = _found(findings, "DocumentModelCandidate")
    assert set(found) == {"stratx.events_doc"}
    f = found["stratx.events_doc"]
    assert f.evidence["column"] == "doc" and f.evidence["rows_examined_per_call"] >= 15000
    assert f.evidence["sql"] is None and "no statement is offered" in f.evidence["action"]
    assert "generated column" in f.evidence["action"]


def test_time_series_fires_on_an_append_only_table_in_time_order(advice):
    profile, findings = advice
    readings = _table(profile, "readings_my")
    assert readings.time_column == "at" and readings.time_sampled_by == "id"
    assert readings.time_sampled_rows == TIME_SAMPLE_POINTS and readings.time_correlation == pytest.approx(1.0)
    found = _found(findings, "TimeSeriesLayout")
    assert set(found) == {"stratx.readings_my"}
    f = found["stratx.readings_my"]
    assert f.evidence["deletes"] == 100 and f.evidence["sql"] is None and "BRIN" not in (f.evidence["sql"] or "")
    assert "PARTITION BY RANGE COLUMNS(at)" in f.evidence["action"] and "DROP PARTITION" in f.evidence["action"]
    assert "PRIMARY KEY (id, at)" in f.evidence["action"] and f.evidence["lock"].startswith("none")


def test_time_series_is_silent_on_a_time_keyed_table_updated_in_place_and_on_shuffled_times(advice):
    profile, findings = advice
    visits, shuffled = _table(profile, "visits_my"), _table(profile, "shuffled_my")
    assert visits.updates >= visits.inserts == 3000
    assert visits.time_correlation is None  # not append-only: never sampled
    assert shuffled.time_sampled_rows >= 15 and shuffled.time_correlation is not None
    assert abs(shuffled.time_correlation) < 0.9
    assert not {"stratx.visits_my", "stratx.shuffled_my"} & set(_found(findings, "TimeSeriesLayout"))


def test_shard_key_from_index_cardinality_says_its_skew_is_unknown(advice):
    _, findings = advice
    found = _found(findings, "ShardKeyCandidate")
    assert set(found) == {"stratx.orders_my", "stratx.orders_hot"}  # not orders_small, not logs_my
    f = found["stratx.orders_my"]
    assert f.evidence["column"] == "customer_id" and f.evidence["filter_call_share"] >= 0.8
    assert 1000 <= f.evidence["distinct_values"] <= 10000  # InnoDB's estimate from sampled pages
    assert f.evidence["top_value_share"] is None and f.evidence["skewed"] is None
    assert "skew unknown" in f.evidence["observed"] and f.evidence["confidence"] == 0.5
    assert "Vitess" in f.evidence["action"] and f.evidence["sql"] is None


def test_shard_key_reads_skew_from_a_json_hb_histogram(advice):
    _, findings = advice
    f = _found(findings, "ShardKeyCandidate")["stratx.orders_hot"]
    assert f.evidence["distinct_values"] == pytest.approx(2000, rel=0.05)  # mysql.column_stats
    assert f.evidence["top_value_share"] == pytest.approx(1 / 3, abs=0.01) and f.evidence["skewed"] is True
    assert f.evidence["confidence"] == 0.45


def test_shard_key_is_silent_below_the_size_floor_and_on_a_table_filtered_two_ways(advice):
    profile, findings = advice
    small, logs = _table(profile, "orders_small"), _table(profile, "logs_my")
    assert small.size_bytes < OPTIONS["shard_min_table_bytes"] <= logs.size_bytes
    assert not {"stratx.orders_small", "stratx.logs_my"} & set(_found(findings, "ShardKeyCandidate"))


#: digests as MariaDB's performance_schema writes them, and the features the profile must read from each
MARIADB_DIGESTS = {
    "SELECT ID FROM `d` WHERE `JSON_VALUE` ( `doc` , ? ) = ?": {"json_key"},
    "SELECT ID FROM `d` WHERE `JSON_EXISTS` ( `doc` , ? )": {"json_key"},
    "SELECT ID FROM `d` WHERE `JSON_CONTAINS_PATH` ( `doc` , ?, ... )": {"json_key"},
    "SELECT ID FROM `d` WHERE `JSON_CONTAINS` ( `doc` , ?, ... )": {"json_contains"},
    "SELECT ID FROM `d` WHERE `title` RLIKE ?": {"regex"},
    "SELECT ID FROM `d` WHERE MATCH ( `title` ) AGAINST (?)": {"fulltext"},
}


def test_mariadb_digest_spellings_of_json_and_search():
    assert {text: set(classify(text, 1, 1)[1]) for text in MARIADB_DIGESTS} == MARIADB_DIGESTS


def test_rank_correlation_follows_order_and_ignores_ties_and_short_samples():
    assert rank_correlation(list(range(20))) == pytest.approx(1.0)
    assert rank_correlation(list(range(20, 0, -1))) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 2, 2, 3, 3]) == pytest.approx(0.956, abs=0.001)
    assert rank_correlation([5, 5, 5, 5, 5]) is None and rank_correlation([1, 2, 3]) is None
    shuffled = list(range(20))
    random.Random(3).shuffle(shuffled)
    assert abs(rank_correlation(shuffled) or 0) < 0.9
