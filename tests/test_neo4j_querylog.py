"""Neo4j's query log read as a slow log (collectors/slowlog_neo4j.py).

No Neo4j server can be installed on this machine, so the lines are the layouts Neo4j's documentation and
knowledge base show (3.5, 5 with ids and runtime, 5's JSON template layout), written to real files that the
real follower reads while they grow, through the same aggregator and fingerprints as the MySQL and PostgreSQL
slow logs, and through `dbwatch slowlog analyze` as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dbwatch.collectors.slowlog import SlowLogCollector, SlowLogOptions
from dbwatch.collectors.slowlog_formats import make_parser, sniff
from dbwatch.model import CollectorSettings, Target
from dbwatch.model.facts.slowlog import SlowClasses
from tests.helpers import collect

SESSION = "bolt-session\tbolt\tneo4j-python/5.28.1 Python/3.11.7-final-0 (linux)\t\tclient/127.0.0.1:50764\t" \
          "server/127.0.0.1:7687>"


def v5(ms: int, query: str, when: str = "2026-12-05 09:48:31.484+0000", level: str = "INFO", qid: int = 22) -> str:
    return (f"{when} {level}  id:{qid} - transaction id:{qid + 100} - {ms} ms: (planning: 1, waiting: 0) - 312 B - "
            f"7 page hits, 0 page faults - {SESSION}\tneo4j - app - {query} - {{email: 'a@b.c'}} - "
            f"runtime=pipelined - {{}}\n")


V35 = ("2017-11-23 12:44:56.973+0000 INFO  1550 ms: (planning: 20, cpu: 920, waiting: 10) - 13792 B - "
       "15 page hits, 0 page faults - bolt-session\tbolt\tneo4j\tneo4j-javascript/1.4.1\t\tclient/127.0.0.1:58189"
       "\tserver/127.0.0.1:7687>\tneo4j - match (n:Person {name:'Tom Hanks'})-[:ACTED_IN]->(n1:Movie) "
       "return n1.title; - {} - {}\n")


def test_the_text_layouts_of_neo4j_35_and_5_become_events_with_duration_database_user_and_query():
    parser = make_parser("neo4j")
    started = ("2026-12-05 09:48:31.480+0000 INFO  Query started: id:22 - transaction id:122 - 0 ms: "
               f"(planning: 0, waiting: 0) - 0 B - 0 page hits, 0 page faults - {SESSION}\tneo4j - app - "
               "MATCH (p:Person) RETURN p - {} - runtime=null - {}\n")
    multi = v5(2400, "MATCH (p:Person)\nWHERE p.email = $email\nRETURN p", qid=23)
    events = parser.feed(started + v5(1200, "MATCH (p:Person {email: $email}) RETURN p") + multi + V35)
    events += parser.flush()
    assert [(e.query_time, e.db, e.user) for e in events] == [(1.2, "neo4j", "app"), (2.4, "neo4j", "app"),
                                                              (1.55, "", "neo4j")]
    assert events[0].query == "MATCH (p:Person {email: $email}) RETURN p"
    assert events[1].query == "MATCH (p:Person)\nWHERE p.email = $email\nRETURN p"  # continued lines kept
    assert events[2].query.startswith("match (n:Person {name:'Tom Hanks'})") and events[2].query.endswith("n1.title")
    assert events[0].rows_examined == 7 and events[0].timestamp == 1796464111.484
    assert parser.skipped == 0


def test_the_json_layout_counts_completed_queries_only():
    lines = [
        {"time": "2026-12-05 09:48:31.480+0000", "level": "INFO", "event": "start", "type": "query", "id": 5,
         "elapsedTimeMs": 0, "query": "MATCH (n) RETURN count(n)", "database": "neo4j", "username": "app"},
        {"time": "2026-12-05 09:48:33.480+0000", "level": "INFO", "event": "success", "type": "query", "id": 5,
         "elapsedTimeMs": 2000, "query": "MATCH (n) RETURN count(n)", "database": "neo4j", "username": "app"},
        {"time": "2026-12-05 09:48:34.000+0000", "level": "INFO", "event": "commit", "type": "transaction",
         "elapsedTimeMs": 2100, "database": "neo4j", "username": "app"},
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines) + "{not json\n"
    assert sniff(text) == "neo4j"
    parser = make_parser("auto")
    events = parser.feed(text) + parser.flush()
    assert [(e.query, e.query_time, e.db, e.user) for e in events] == [
        ("MATCH (n) RETURN count(n)", 2.0, "neo4j", "app")]
    assert parser.skipped == 1


async def test_a_neo4j_target_follows_its_query_log_as_it_grows_and_groups_literals_into_classes(tmp_path: Path):
    log = tmp_path / "query.log"
    log.write_text(v5(1500, "MATCH (p:Person) WHERE p.age > 30 RETURN p"))
    settings = CollectorSettings(interval=60, timeout=30, options=SlowLogOptions(
        path=str(log), state_dir=str(tmp_path), from_beginning=True))
    target = Target(name="graph", engine="neo4j", dsn="bolt://127.0.0.1:7687", labels={},
                    collectors={"slowlog": settings})
    collector = SlowLogCollector(target, None)  # type: ignore[arg-type]  # reads a file: no session
    first = await collect(collector)
    with log.open("a") as fh:  # the writer goes on: two more queries, one of the same class
        fh.write(v5(2500, "MATCH (p:Person) WHERE p.age > 41 RETURN p", qid=30))
        fh.write(v5(300, "MATCH (m:Movie {title: 'Heat'}) RETURN m", qid=31))
    snapshot = await collect(collector)
    seen = [c for s in (first, snapshot) for c in s.fact(SlowClasses) or ()]  # each collection's interval
    person = [c for c in seen if "person" in c.fingerprint]
    assert sum(c.count for c in person) == 2 and len({c.class_id for c in person}) == 1, seen
    assert abs(sum(c.query_time_total for c in person) - 4.0) < 1e-9
    assert "?" in person[0].fingerprint and "41" not in person[0].fingerprint
    queries = next(f for f in snapshot.families if f.name == "dbwatch_slowlog_queries_total")
    assert sum(v for _, v in queries.samples) == 3  # cumulative: every completed query counted once


def test_slowlog_analyze_reads_a_neo4j_query_log(tmp_path: Path):
    log = tmp_path / "query.log"
    log.write_text(V35 + v5(900, "MATCH (p:Person {email: 'x@y.z'}) RETURN p") +
                   v5(1100, "MATCH (p:Person {email: 'q@r.s'}) RETURN p", qid=40))
    done = subprocess.run([sys.executable, "-m", "dbwatch.agent.cli", "slowlog", "analyze", "--type", "neo4j",
                           "--format", "json", str(log)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    classes = report["classes"] if isinstance(report, dict) else report
    counts = sorted(c["count"] for c in classes)
    assert counts == [1, 2], classes
