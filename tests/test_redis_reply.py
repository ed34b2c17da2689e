"""collectors/redis_reply.py's INFO parser gives redis-py's dict: on the real server's replies (every section) and
on the lines redis-py treats specially."""

from __future__ import annotations

import redis
from redis._parsers.helpers import parse_info as redis_py_parse_info

from dbwatch.collectors.redis_reply import parse_info

TRICKY = "\r\n".join([
    "# Server", "redis_version:7.0.15", "uptime_in_seconds:12", "mem_fragmentation_ratio:1.25", "neg:-1",
    "float_neg:-0.5", "exp:1.5e+03", "bare_exp:1e5", "inf:inf", "nan:nan", "empty:", "under:1_000", "spaced: 7",
    "hex:a1b2c3", "os:Linux 6.1.0 x86_64", "list:a,b,,3", "db0:keys=10,expires=2,avg_ttl=0",
    "cmdstat_host:calls=1,usec=2", "cmdstat_get:calls=5,usec=10,usec_per_call=2.00,rejected_calls=0",
    "latency_percentiles_usec_get:p50=1.003,p99=4.015,p99.9=4.015", "module:name=search,ver=20604,api=1",
    "module:name=json,ver=20606", "flag_only:x=1,bare", "a line without a colon", "master_host:10.0.0.1",
    "master_link_down_since_seconds:-1", "executable:/usr/bin/redis-server", "",
])


def test_the_parser_gives_redis_pys_dict_on_lines_it_treats_specially():
    assert parse_info(TRICKY) == redis_py_parse_info(TRICKY)
    assert parse_info(TRICKY.encode()) == redis_py_parse_info(TRICKY.encode())
    assert parse_info(TRICKY)["exp"] == 1500.0 and parse_info(TRICKY)["bare_exp"] == "1e5"


def test_the_parser_gives_redis_pys_dict_on_the_real_servers_replies():
    client = redis.Redis(host="127.0.0.1", port=6379, protocol=2, decode_responses=True)
    client.response_callbacks["INFO"] = lambda response, **options: response  # the reply as it came
    client.execute_command("SET", "dbwatch:test:reply", "1", "EX", "60")
    client.execute_command("GET", "dbwatch:test:reply")
    raw = {section: client.execute_command("INFO", section)
           for section in ("default", "all", "commandstats", "latencystats", "keyspace")}
    client.close()
    for section, reply in raw.items():
        ours, theirs = parse_info(reply), redis_py_parse_info(reply)
        assert ours == theirs, section
        assert {type(v) for v in ours.values()} == {type(v) for v in theirs.values()}
    assert isinstance(parse_info(raw["all"])["uptime_in_seconds"], int)
    assert any(key.startswith("cmdstat_") for key in parse_info(raw["commandstats"]))
