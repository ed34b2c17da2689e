"""Issue 15, item 4: the slow-log follower on a real file written the way a busy MariaDB writes it, a record's
header and ``SET timestamp=...;`` in one write and its statement in a later one, with polls in between."""

from __future__ import annotations

from pathlib import Path

from dbwatch.collectors.logtail import LogFollower
from dbwatch.collectors.slowlog_formats import SlowEvent, make_parser

HEADER = ("/usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1-log (Debian 12). started with:\n"
          "Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock\nTime\t\t    Id Command\tArgument\n")


def record_head(ts: int, schema: str = "shop") -> str:
    """What MariaDB 10.11 writes before the statement of one event (log_slow_verbosity=query_plan)."""
    return ("# Time: 261204 17:03:12\n"
            "# User@Host: app[app] @ localhost [127.0.0.1]\n"
            f"# Thread_id: 7  Schema: {schema}  QC_hit: No\n"
            "# Query_time: 1.250000  Lock_time: 0.000045  Rows_sent: 1  Rows_examined: 100000\n"
            "# Rows_affected: 0  Bytes_sent: 56\n"
            f"use {schema};\n"
            f"SET timestamp={ts};\n")


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def test_a_statement_written_after_its_set_timestamp_line_is_the_query_recorded(tmp_path):
    log = tmp_path / "slow.log"
    append(log, HEADER)
    seen: list[SlowEvent] = []
    follower = LogFollower(log, make_parser("mysql"), None, from_beginning=True)
    follower.poll(seen.extend)
    append(log, record_head(1795818174))
    follower.poll(seen.extend)  # the header and SET timestamp arrived: no statement yet
    follower.poll(seen.extend)  # a quiet poll: the writer has not finished the record
    assert seen == []
    append(log, "SELECT * FROM orders WHERE customer_id = 42;\n")
    follower.poll(seen.extend)
    follower.poll(seen.extend)
    [event] = seen
    assert event.query == "SELECT * FROM orders WHERE customer_id = 42"
    assert event.timestamp == 1795818174 and event.db == "shop" and event.query_time == 1.25
    # the next record, split the same way, comes out whole too
    append(log, record_head(1795818180))
    follower.poll(seen.extend)
    append(log, "UPDATE orders SET state = 'paid' WHERE id = 7;\n")
    follower.poll(seen.extend)
    assert [e.query for e in seen] == ["SELECT * FROM orders WHERE customer_id = 42",
                                       "UPDATE orders SET state = 'paid' WHERE id = 7"]
    assert not any(e.query.startswith("SET timestamp") for e in seen)
    follower.close()


def test_a_record_that_never_gets_its_statement_is_skipped_not_recorded_as_set_timestamp(tmp_path):
    log = tmp_path / "slow.log"
    append(log, HEADER + record_head(1795818174))
    seen: list[SlowEvent] = []
    parser = make_parser("mysql")
    follower = LogFollower(log, parser, None, from_beginning=True)
    follower.poll(seen.extend)
    append(log, record_head(1795818175) + "SELECT 1;\n")  # the server restarted mid-record, say
    follower.poll(seen.extend)
    follower.poll(seen.extend)
    assert [e.query for e in seen] == ["SELECT 1"]
    assert parser.skipped == 1
    follower.close()


def test_a_full_state_directory_does_not_stop_the_follower_and_the_offset_is_saved_once_it_has_room(tmp_path):
    from tests.faultutil import fill, tmpfs

    log = tmp_path / "slow.log"
    append(log, HEADER + record_head(1795818174) + "SELECT 1;\n")
    with tmpfs("1m") as mount:
        offset_file = mount / "slowlog" / "offset.json"
        filler = fill(mount)
        seen: list[SlowEvent] = []
        follower = LogFollower(log, make_parser("mysql"), str(offset_file), from_beginning=True)
        follower.poll(seen.extend)
        follower.poll(seen.extend)
        assert [e.query for e in seen] == ["SELECT 1"]
        assert follower.save_error is not None and not offset_file.exists()
        filler.unlink()
        append(log, record_head(1795818175) + "SELECT 2;\n")
        follower.poll(seen.extend)
        follower.poll(seen.extend)
        assert [e.query for e in seen] == ["SELECT 1", "SELECT 2"]
        assert follower.save_error is None and offset_file.exists()
        follower.close()
