"""``dbwatch migrate lint``: the corpus in tests/migrations (expected findings and non-findings, both
dialects), the exit codes and formats, and severities that follow the live tables of a real PostgreSQL 15
and a real MariaDB 10.11 the tests start (tests/pgcluster.py, tests/mariadbserver.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dbwatch.agent.cli import main
from dbwatch.agent.migrate import guess_dialect, run_lint
from tests.mariadbserver import MariaDBServer
from tests.pgcluster import PostgresServer

CORPUS = Path(__file__).parent / "migrations"
FILES = sorted(CORPUS.glob("*/*.sql"))
EXPECT = re.compile(r"--\s*expect:\s*(.+)$")


def _expected(path: Path) -> set[tuple[int, str]]:
    out = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if (m := EXPECT.search(line)) is not None:
            out |= {(number, check.strip()) for check in m.group(1).split(",")}
    return out


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_corpus_file_raises_exactly_its_expected_findings(path):
    report = run_lint([str(path)], dialect=path.parent.name)
    assert {(f.line, f.check) for f in report.findings} == _expected(path)


def test_constant_and_now_defaults_are_fast_but_not_before_postgresql_11():
    from dbwatch.model.facts.schema_change import SchemaChangeFacts, ServerLoad
    from dbwatch.rules.migration_lint import lint
    from dbwatch.sqlshape.ddl_read import read_ddl

    changes = read_ddl("SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN a int DEFAULT 0;", "postgres")
    assert lint([("m.sql", changes)], "postgres") == []
    old = SchemaChangeFacts(ServerLoad("postgres", "10.23", (10, 23)))
    assert [f.check for f in lint([("m.sql", changes)], "postgres", old)] == ["volatile-default"]


@pytest.mark.parametrize("size, rows, writes, severity", [
    (8 * 1024, 10, 50.0, "info"),  # a 10-row table: not an outage
    (20 * 10**6, 300_000, 0.0, "warning"),  # 0.4 s, but no longer small
    (150 * 10**6, 2_000_000, 500.0, "error"),  # 3 s with 500 writes/s: 1,500 writes wait
    (50 * 10**9, 400_000_000, 0.0, "error"),  # 50 GB: about 17 minutes under ACCESS EXCLUSIVE
])
def test_severity_follows_the_estimated_time_under_the_lock_and_the_writes_that_wait(size, rows, writes, severity):
    from dbwatch.model.facts.schema_change import SchemaChangeFacts, ServerLoad, TableLoad
    from dbwatch.rules.migration_lint import REWRITE_BYTES_PER_SECOND, lint
    from dbwatch.sqlshape.ddl_read import read_ddl

    changes = read_ddl("SET lock_timeout = '1s'; ALTER TABLE t ALTER COLUMN a TYPE bigint;", "postgres")
    facts = SchemaChangeFacts(ServerLoad("postgres", "15.6", (15, 6)), (TableLoad("t", True, size, rows, writes),))
    [finding] = lint([("m.sql", changes)], "postgres", facts)
    assert finding.severity == severity
    assert finding.estimate_seconds == pytest.approx(size / REWRITE_BYTES_PER_SECOND)


def test_statements_keep_their_file_lines_past_comments_and_blank_lines(tmp_path):
    path = tmp_path / "m.sql"
    path.write_text("-- header\n\n/* a block\ncomment */\nSET lock_timeout = '1s';\n\n\nCREATE INDEX i ON t (a);\n")
    [finding] = run_lint([str(path)], "postgres").findings
    assert (finding.line, finding.check) == (8, "index-not-concurrent")


def test_an_acknowledged_finding_is_left_out_by_a_comment_on_or_above_its_statement(tmp_path):
    path = tmp_path / "m.sql"
    path.write_text("SET lock_timeout = '2s';\n"
                    "-- dbwatch-lint: ignore drop-column\n"
                    "ALTER TABLE orders DROP COLUMN legacy;\n"
                    "ALTER TABLE orders DROP COLUMN other;  -- dbwatch-lint: ignore rename-column\n"
                    "ALTER TABLE orders RENAME COLUMN a TO b;  -- dbwatch-lint: ignore\n")
    assert [(f.line, f.check) for f in run_lint([str(path)], "postgres").findings] == [(4, "drop-column")]


def test_dialect_is_guessed_from_mysql_only_syntax():
    assert guess_dialect("CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB;") == "mysql"
    assert guess_dialect("ALTER TABLE `t` ADD INDEX i (a);") == "mysql"
    assert guess_dialect("CREATE INDEX CONCURRENTLY i ON t (a);") == "postgres"


def test_exit_codes_say_whether_anything_is_error_level(tmp_path, capsys):
    clean = tmp_path / "clean.sql"
    clean.write_text("SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY i ON t (a);\n")
    assert main(["migrate", "lint", str(clean)]) == 0
    assert main(["migrate", "lint", "--dialect", "postgres", str(CORPUS / "postgres/001_index.sql")]) == 1
    warning_only = tmp_path / "warn.sql"
    warning_only.write_text("ALTER TABLE t ADD COLUMN a int;\n")
    assert main(["migrate", "lint", str(warning_only)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read (No such file or directory)"),
    ("SET lock_timeout = '2s';\nALTER TABLE t ADD COLUMN;\n", "line 2: syntax error"),
    (b"\xff\xfe\x00", "not UTF-8 text"),
])
def test_unreadable_input_is_one_line_and_exit_2(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.sql"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert main(["migrate", "lint", "--dialect", "postgres", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_github_format_prints_workflow_annotations(capsys):
    path = CORPUS / "postgres/001_index.sql"
    assert main(["migrate", "lint", "--format", "github", "--dialect", "postgres", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"::error file={path},line=3,title=index-not-concurrent::CREATE INDEX on orders")
    assert all(re.match(r"^::(error|warning|notice) file=[^,]+,line=\d+,title=[\w-]+::\S", line) for line in lines)


def test_text_lists_every_statement_with_its_lock_when_asked(capsys):
    path = CORPUS / "postgres/003_not_null.sql"
    main(["migrate", "lint", "--statements", "--dialect", "postgres", str(path)])
    out = capsys.readouterr().out.splitlines()
    assert f"{path}:2: set_not_null orders: lock ACCESS EXCLUSIVE, scans" in out
    assert f"{path}:5: validate_constraint orders: lock SHARE UPDATE EXCLUSIVE, scans" in out


def test_json_format_lists_findings_and_every_statement_with_its_lock(capsys):
    main(["migrate", "lint", "--format", "json", "--dialect", "mysql", str(CORPUS / "mysql/002_copy.sql")])
    report = json.loads(capsys.readouterr().out)
    assert report["dialect"] == "mysql" and report["server"] is None
    copy = [f for f in report["findings"] if f["check"] == "mysql-copy-algorithm"]
    assert len(copy) == 4 and all(f["rewrites"] for f in copy)
    assert "gh-ost --host=HOST --port=3306" in copy[0]["safe"] and "pt-online-schema-change" in copy[0]["safe"]
    assert {s["kind"] for s in report["statements"]} >= {"add_column", "alter_type", "add_foreign_key"}


def _config(tmp_path: Path, engine: str, dsn: str) -> str:
    path = tmp_path / "dbwatch.yaml"
    path.write_text(f"targets:\n  - name: db\n    engine: {engine}\n    dsn: {dsn}\n")
    return str(path)


REWRITE_PG = "SET lock_timeout = '2s';\nALTER TABLE {table} ALTER COLUMN amount TYPE bigint;\n"


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer().start()
    server.psql("CREATE TABLE tiny (id bigint PRIMARY KEY, amount int);"
                "INSERT INTO tiny SELECT g, g FROM generate_series(1, 10) g;"
                "CREATE TABLE busy (id bigint PRIMARY KEY, amount int, pad text);"
                "INSERT INTO busy SELECT g, g, repeat('x', 40) FROM generate_series(1, 200000) g;"
                "CREATE TABLE ints (id serial PRIMARY KEY, n int);"
                "ANALYZE tiny; ANALYZE busy;")
    try:
        yield server
    finally:
        server.destroy()


def test_postgres_rewrite_of_a_tiny_table_is_a_note_and_of_a_busy_one_a_warning(postgres, tmp_path, capsys):
    """Real PostgreSQL 15: 10 rows rewrite in no time (info, exit 0); 200,000 rows are no longer 'small'."""
    config = _config(tmp_path, "postgres", postgres.dsn())
    tiny, busy = tmp_path / "tiny.sql", tmp_path / "busy.sql"
    tiny.write_text(REWRITE_PG.format(table="tiny"))
    busy.write_text(REWRITE_PG.format(table="busy"))
    assert main(["migrate", "lint", str(tiny)]) == 1  # without a target: a rewrite is an error

    [small] = run_lint([str(tiny)], config=_load(config), target="db", sample_seconds=0.2).findings
    assert (small.check, small.severity) == ("type-change-rewrite", "info")
    assert any("10 rows" in fact for fact in small.live), small.live
    assert main(["migrate", "lint", "-c", config, "--target", "db", "--sample", "0.2", str(tiny)]) == 0

    report = run_lint([str(busy)], config=_load(config), target="db", sample_seconds=0.2)
    [large] = report.findings
    assert large.severity == "warning" and large.estimate_seconds is not None and large.estimate_seconds > 0
    assert any("200,000 rows" in fact for fact in large.live)
    server = report.facts.server
    assert server.version_num[0] == 15 and server.longest_transaction_seconds is None
    assert report.facts.table("busy").writes_per_second == 0.0
    capsys.readouterr()


def test_postgres_target_knows_a_table_is_missing_and_an_unknown_target_is_exit_2(postgres, tmp_path, capsys):
    config = _config(tmp_path, "postgres", postgres.dsn())
    path = tmp_path / "m.sql"
    path.write_text(REWRITE_PG.format(table="nowhere"))
    [finding] = run_lint([str(path)], config=_load(config), target="db", sample_seconds=0).findings
    assert finding.severity == "error" and finding.live == ("nowhere is not on the target",)
    assert main(["migrate", "lint", "-c", config, "--target", "other", str(path)]) == 2
    assert "no target named 'other'" in capsys.readouterr().err


def test_postgres_writes_per_second_int_keys_and_the_oldest_transaction_come_from_the_server(postgres, tmp_path,
                                                                                            monkeypatch):
    """Real PostgreSQL 15: a writer during the sample gives writes/s, and its table's serial key is flagged as a
    32-bit key on a growing table; an open transaction makes a missing lock_timeout an error (the threshold
    lowered so the test need not keep it open 10 s)."""
    import threading

    import psycopg

    from dbwatch.rules import migration_lint

    config = _config(tmp_path, "postgres", postgres.dsn())
    path = tmp_path / "m.sql"
    path.write_text("ALTER TABLE ints ALTER COLUMN n TYPE bigint;\n")
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO ints (n) VALUES (1)")

    writer = threading.Thread(target=write)
    idle = psycopg.connect(postgres.dsn())
    idle.execute("SELECT 1")  # a transaction left open, as an application's forgotten one would be
    monkeypatch.setattr(migration_lint, "LONG_SECONDS", 0.0)
    writer.start()
    try:
        report = run_lint([str(path)], config=_load(config), target="db", sample_seconds=2.5)
    finally:
        stop.set()
        writer.join()
        idle.close()
    assert report.facts.table("ints").writes_per_second > 0
    [key] = [f for f in report.findings if f.check == "int-primary-key"]
    assert key.severity == "warning" and "integer (32-bit) on a growing table" in key.message
    assert report.facts.server.longest_transaction_seconds is not None
    timeout = [f for f in report.findings if f.check == "missing-lock-timeout"]
    assert timeout and timeout[0].severity == "error" and "oldest open transaction" in timeout[0].live[0]


def test_a_target_that_cannot_be_reached_is_one_line_and_exit_2(tmp_path, capsys):
    from tests.helpers import free_port

    config = _config(tmp_path, "postgres", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    path = tmp_path / "m.sql"
    path.write_text(REWRITE_PG.format(table="orders"))
    assert main(["migrate", "lint", "-c", config, "--target", "db", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("target db: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def mariadb():
    server = MariaDBServer(server_id=7).start()
    server.sql("CREATE DATABASE shop; USE shop;"
               "CREATE TABLE tiny (id BIGINT PRIMARY KEY, amount INT) ENGINE=InnoDB;"
               "INSERT INTO tiny SELECT seq, seq FROM seq_1_to_10;"
               "CREATE TABLE busy (id BIGINT PRIMARY KEY, amount INT, pad VARCHAR(60)) ENGINE=InnoDB;"
               "INSERT INTO busy SELECT seq, seq, REPEAT('x', 40) FROM seq_1_to_200000;"
               "ANALYZE TABLE tiny; ANALYZE TABLE busy;")
    try:
        yield server
    finally:
        server.destroy()


def test_mariadb_copy_of_a_tiny_table_is_a_note_and_of_a_busy_one_is_not(mariadb, tmp_path):
    """Real MariaDB 10.11: the same COPY change, judged by each table's rows and size."""
    config = _config(tmp_path, "mysql", mariadb.dsn(database="shop"))
    path = tmp_path / "m.sql"
    path.write_text("SET SESSION lock_wait_timeout = 5;\nALTER TABLE tiny MODIFY COLUMN amount BIGINT;\n"
                    "ALTER TABLE busy MODIFY COLUMN amount BIGINT;\n")
    report = run_lint([str(path)], config=_load(config), target="db", sample_seconds=0.2)
    assert report.dialect == "mysql"
    by_table = {f.table: f for f in report.findings}
    assert by_table["tiny"].severity == "info" and by_table["busy"].severity in ("warning", "error")
    assert f"--port={mariadb.port}" in by_table["busy"].safe and "--database=shop --table=busy" in by_table["busy"].safe
    assert report.facts.server.version_num[:2] == (10, 11)
    assert report.facts.table("busy").rows > 100_000
    assert report.facts.table("busy").writes_per_second == 0.0  # performance_schema is on: read, and idle


def test_mariadb_writes_per_second_come_from_performance_schema(mariadb, tmp_path):
    """Real MariaDB 10.11: a writer during the sample shows in performance_schema's table I/O summary."""
    import threading

    import pymysql

    config = _config(tmp_path, "mysql", mariadb.dsn(database="shop"))
    path = tmp_path / "m.sql"
    path.write_text("SET SESSION lock_wait_timeout = 5;\nALTER TABLE tiny MODIFY COLUMN amount BIGINT;\n")
    stop = threading.Event()

    def write() -> None:
        conn = pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root", database="shop", autocommit=True)
        with conn, conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("UPDATE tiny SET amount = amount + 1 WHERE id = 1")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        report = run_lint([str(path)], config=_load(config), target="db", sample_seconds=1.0)
    finally:
        stop.set()
        writer.join()
    [finding] = report.findings
    assert report.facts.table("tiny").writes_per_second > 0
    assert any("writes/s" in fact for fact in finding.live)


def _load(path: str):
    from dbwatch.agent.config import load_config

    return load_config(path)
