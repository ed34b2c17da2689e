"""The audit collectors (collectors/pg_audit.py, mysql_audit.py, redis_audit.py) and the tuning, security and
schema rules on what they read, against real servers: for each rule one server where it must fire and one
where it must not.

Servers started here: two throwaway PostgreSQL 15 (an "open" one: trust in pg_hba, SSL off, md5, extra
superuser, default memory settings, a schema with the smells; a "hardened" one: scram-sha-256, SSL on, a
pg_monitor agent role, settings sized to the configured host, a clean schema); two throwaway MariaDB (root
without a password, a small buffer pool under more data, connections at the limit, temporary tables on
disk; and a hardened one reached over its Unix socket); three throwaway redis-server.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time

import pymysql
import pytest

from dbwatch.agent.store import SnapshotStore
from dbwatch.collectors.mysql import MySQLSession
from dbwatch.collectors.mysql_audit import MySQLAuditCollector
from dbwatch.collectors.pg_audit import PgAuditCollector
from dbwatch.collectors.postgres import PostgresSession
from dbwatch.collectors.redis import RedisCollector, RedisSession
from dbwatch.collectors.redis_audit import RedisAuditCollector
from dbwatch.model.facts.audit import MySQLAudit, PgAudit
from tests.agentproc import AgentProcess
from tests.auditutil import by_rule, evaluate, target
from tests.mariadbserver import MariaDBServer
from tests.pgcluster import RUN_AS, PostgresServer
from tests.redisserver import RedisServer
from tests.helpers import collect, wait_for

FAMILIES = ("security", "tuning", "schema")
SMELLY_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE orders (id bigint PRIMARY KEY, created_at text, price double precision, amount_due varchar(20),
                     phone1 text, phone2 text, phone3 text, doc jsonb);
INSERT INTO orders SELECT g, now()::text, g * 1.5, g::text, '', '', '', jsonb_build_object('k', g)
FROM generate_series(1, 2000) g;
CREATE TABLE wide ({cols});
ANALYZE;
SELECT id FROM orders WHERE doc @> '{{"k": 7}}';
SELECT id FROM orders WHERE doc ->> 'k' = '7';
"""
CLEAN_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE orders (id bigint PRIMARY KEY, created_at timestamptz, price numeric(12,2), phone text, doc jsonb);
CREATE INDEX ON orders USING gin (doc);
INSERT INTO orders SELECT g, now(), g * 1.5, '', jsonb_build_object('k', g) FROM generate_series(1, 2000) g;
ANALYZE;
SELECT id FROM orders WHERE doc @> '{"k": 7}';
"""


def _server(**settings: str) -> PostgresServer:
    return PostgresServer(settings={"max_wal_size": "32MB", "min_wal_size": "32MB", **settings})


@pytest.fixture
async def sessions():
    opened = []

    def track(session):
        opened.append(session)
        return session

    yield track
    for session in opened:
        await session.close()


async def _pg_audit(server: PostgresServer, sessions, user: str = "postgres", password_env: str | None = None,
                    **options) -> tuple[SnapshotStore, list]:
    t = target("postgres", server.dsn(user), {"audit": options}, password_env=password_env)
    session = sessions(PostgresSession(t))
    store = SnapshotStore()
    snapshot = await collect(PgAuditCollector(t, session), store)
    return store, snapshot.notes


async def test_open_postgres_gets_every_security_tuning_and_schema_recommendation(sessions):
    """A throwaway PostgreSQL 15: trust in pg_hba, ssl off, md5, an extra superuser and replication role, CREATE
    on public for PUBLIC, defaults for memory on this host, WAL-forced checkpoints, a smelly schema."""
    server = _server(password_encryption="md5", fsync="off", full_page_writes="off", synchronous_commit="off").start()
    try:
        cols = ", ".join(f"c{i}_v int" for i in range(60))
        server.psql(SMELLY_SCHEMA.format(cols=cols))
        server.psql("CREATE ROLE boss SUPERUSER LOGIN; CREATE ROLE shipper REPLICATION LOGIN; "
                    "GRANT CREATE ON SCHEMA public TO PUBLIC;")
        server.psql("CREATE TABLE walfill AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 400000) g")
        wait_for(lambda: int(server.psql("SELECT checkpoints_req FROM pg_stat_bgwriter")) >= 3, 20,
                 "three checkpoints requested by WAL volume", interval=0.2)
        store, notes = await _pg_audit(server, sessions, disk="ssd")
        findings = evaluate(store, "postgres", *FAMILIES)
    finally:
        server.destroy()
    assert notes == []
    roles = {f.labels["role"]: f for f in by_rule(findings, "PgUnexpectedPrivilegedRole")}
    assert set(roles) == {"boss", "shipper"}  # not the bootstrap superuser postgres
    assert roles["boss"].evidence["sql"] == "ALTER ROLE boss NOSUPERUSER;"
    assert roles["shipper"].evidence["privilege"] == "REPLICATION"
    hba = by_rule(findings, "PgHbaWeakAuth")
    assert hba and all(f.evidence["auth_method"] == "trust" for f in hba)
    assert {f.evidence["type"] for f in hba} >= {"local", "host"}
    assert by_rule(findings, "PgSslOff") and by_rule(findings, "PgMd5PasswordEncryption")
    [public] = by_rule(findings, "PgPublicSchemaCreate")
    assert public.evidence["sql"] == "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
    [agent] = by_rule(findings, "PgAgentOverPrivileged")
    assert agent.evidence["superuser"] is True
    # The agent runs as postgres, the bootstrap superuser (oid 10): it is kept, never demoted.
    assert agent.evidence["bootstrap_superuser"] is True and "NOSUPERUSER" not in agent.evidence["sql"]
    assert "keep postgres: it is the bootstrap superuser" in agent.evidence["sql"]
    assert all("NOSUPERUSER" not in f.evidence["sql"] or "postgres" not in f.evidence["sql"]
               for f in findings if f.evidence.get("sql"))
    assert all(f.evidence["risk"] in ("low", "medium", "high") and f.evidence["lock"]
               for f in findings if f.evidence.get("sql"))
    # This server listens on 127.0.0.1 only: its SSL and pg_hba findings are real but not network holes, and
    # rank low. The same facts with listen_addresses = '*' (the near miss) rank them high.
    ssl_local, hba_local = by_rule(findings, "PgSslOff")[0], by_rule(findings, "PgHbaWeakAuth")
    assert ssl_local.evidence["reachable_by"] == "local users only" and ssl_local.evidence["impact"] <= 0.01
    assert all(f.evidence["impact"] <= 0.02 and f.severity == "warning" for f in hba_local)
    snapshot = store.history("t", "audit")[-1]
    audit = snapshot.fact(PgAudit)
    assert audit is not None and audit.listen_addresses == "127.0.0.1"
    # Its host lines, as if they named a network (10.0.0.0/8) on a server listening everywhere.
    snapshot.put(dataclasses.replace(audit, listen_addresses="*", hba=[
        dataclasses.replace(r, address="10.0.0.0") if r.type == "host" else r for r in audit.hba or ()]))
    exposed = evaluate(store, "postgres", "security")
    assert by_rule(exposed, "PgSslOff")[0].evidence["impact"] == 0.5
    host_trust = [f for f in by_rule(exposed, "PgHbaWeakAuth") if f.evidence["type"] == "host"]
    assert host_trust and all(f.severity == "critical" and f.evidence["reachable_by"] == "network"
                              and f.evidence["impact"] == 0.8 for f in host_trust)
    durability = {f.labels["setting"]: f for f in by_rule(findings, "PgDurabilityOff")}
    assert {k: str(f.severity) for k, f in durability.items()} == {
        "fsync": "critical", "full_page_writes": "warning", "synchronous_commit": "info"}
    assert durability["fsync"].evidence["sql"] == "ALTER SYSTEM SET fsync = 'on';\nSELECT pg_reload_conf();"
    memory = {f.labels["setting"]: f for f in by_rule(findings, "PgMemorySettings")}
    assert {"shared_buffers", "effective_cache_size", "maintenance_work_mem"} <= set(memory)
    ram = memory["shared_buffers"].evidence["ram_bytes"]
    assert memory["shared_buffers"].evidence["current_bytes"] == 32 * 1024**2
    assert abs(memory["shared_buffers"].evidence["recommended_bytes"] - ram / 4) <= 1024**2
    assert memory["shared_buffers"].evidence["sql"].startswith("ALTER SYSTEM SET shared_buffers = '")
    assert "work_mem" not in memory  # 4MB x 100 connections is far within this host's RAM
    ssd = {f.labels["setting"] for f in by_rule(findings, "PgSsdSettings")}
    assert ssd == {"random_page_cost", "effective_io_concurrency"}
    [checkpoints] = by_rule(findings, "PgCheckpointsRequested")
    assert checkpoints.evidence["checkpoints_requested"] >= 3
    assert "max_wal_size = '1GB'" in checkpoints.evidence["sql"]
    schema = {(f.rule, f.labels.get("column", "")) for f in findings if f.rule.startswith("Schema")}
    assert schema == {("SchemaWideTable", ""), ("SchemaRepeatedColumns", "phone"),
                      ("SchemaTypedAsText", "created_at"), ("SchemaTypedAsText", "price"),
                      ("SchemaTypedAsText", "amount_due"), ("SchemaJsonWithoutGin", "doc")}
    [json_hint] = [f for f in findings if f.rule == "SchemaJsonWithoutGin"]
    assert json_hint.evidence["filtering_statements"] == 2 and json_hint.evidence["hint"] is True
    assert json_hint.evidence["sql"] == "CREATE INDEX CONCURRENTLY ON public.orders USING gin (doc);"
    assert all(f.kind == "recommendation" for f in findings)


def _self_signed(directory) -> tuple[str, str]:
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    if RUN_AS:
        shutil.chown(cert, RUN_AS, RUN_AS)
        shutil.chown(key, RUN_AS, RUN_AS)
    key.chmod(0o600)
    return str(cert), str(key)


async def test_hardened_postgres_sized_to_its_host_gets_no_recommendation(sessions, monkeypatch, tmp_path):
    """A throwaway PostgreSQL 15 with scram-sha-256 for every TCP line, SSL on, no extra privileged role, the
    agent a pg_monitor role, memory settings right for the configured 128MB host, a spinning disk, a clean
    schema whose JSON column has a GIN index."""
    server = _server(max_connections="20", effective_cache_size="96MB", maintenance_work_mem="16MB",
                     fsync="on", full_page_writes="on", synchronous_commit="on")  # the test default is unsafe
    cert, key = _self_signed(server.root)
    server.settings.update(ssl="on", ssl_cert_file=f"'{cert}'", ssl_key_file=f"'{key}'")
    server.start()
    try:
        server.psql(CLEAN_SCHEMA)
        server.psql("ALTER ROLE postgres PASSWORD 'pw'; CREATE ROLE dbwatch LOGIN PASSWORD 'agentpw'; "
                    "GRANT pg_monitor TO dbwatch; GRANT SELECT ON pg_hba_file_rules TO dbwatch; "
                    "GRANT EXECUTE ON FUNCTION pg_hba_file_rules() TO dbwatch;")
        (server.data / "pg_hba.conf").write_text(
            "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n")
        server.psql("SELECT pg_reload_conf()")
        monkeypatch.setenv("PGPASSWORD", "pw")
        monkeypatch.setenv("DBWATCH_TEST_AGENT_PW", "agentpw")
        time.sleep(0.3)  # the postmaster reloads pg_hba.conf asynchronously
        store, notes = await _pg_audit(server, sessions, user="dbwatch", password_env="DBWATCH_TEST_AGENT_PW",
                                       ram="128MB", disk="hdd")
        audit = store.history("t", "audit")[-1].fact(PgAudit)
        findings = evaluate(store, "postgres", *FAMILIES)
    finally:
        server.destroy()
    assert notes == []
    assert audit.ssl and audit.hba is not None and len(audit.hba) == 3  # it did read what it judged
    assert audit.agent_memberships and not audit.agent_superuser
    assert findings == []


async def test_agent_without_the_hba_grant_is_told_what_to_grant_and_judges_no_hba(pg_scratch, sessions):
    """pg_scratch (trust everywhere): the agent as a plain pg_monitor role cannot read pg_hba_file_rules."""
    pg_scratch.psql("CREATE ROLE watcher LOGIN; GRANT pg_monitor TO watcher;")
    store, notes = await _pg_audit(pg_scratch, sessions, user="watcher")
    findings = evaluate(store, "postgres", "security")
    assert any("GRANT SELECT ON pg_hba_file_rules TO watcher" in n for n in notes)
    assert by_rule(findings, "PgHbaWeakAuth") == []
    assert by_rule(findings, "PgAgentOverPrivileged") == []  # pg_monitor and what it includes only
    assert by_rule(findings, "PgSslOff")  # the rest is still judged


def test_the_daemon_with_the_audit_enabled_serves_its_recommendations(pg_scratch, tmp_path):
    """pg_scratch (ssl off, trust) watched by a real `dbwatch run` with the audit collector enabled."""
    config = {"targets": [{"name": "audited", "engine": "postgres", "dsn": pg_scratch.dsn(),
                           "collectors": {"statements": {"enabled": False}, "audit": {"enabled": True}}}]}
    agent = AgentProcess(tmp_path, config).start()
    try:
        found = wait_for(lambda: [r for r in agent.get("/api/v1/recommendations") if r["rule"] == "PgSslOff"],
                         30, "the audit's recommendations")
        assert found[0]["target"] == "audited" and "ssl = on" in found[0]["evidence"]["sql"]
    finally:
        agent.stop()


# -- MariaDB ---------------------------------------------------------------------------------------------------


async def _mysql_audit(dsn: str, sessions, password_env: str | None = None, **options) -> tuple[SnapshotStore, list]:
    t = target("mysql", dsn, {"audit": options}, password_env=password_env)
    session = sessions(MySQLSession(t))
    store = SnapshotStore()
    snapshot = await collect(MySQLAuditCollector(t, session), store)
    return store, snapshot.notes


async def test_open_mariadb_gets_account_transport_and_tuning_recommendations(sessions):
    """A throwaway MariaDB: root without a password (also from '%'), an anonymous account, 16MB buffer pool
    under ~40MB of InnoDB data, max_connections 10 reached, GROUP BY on TEXT putting temporary tables on disk."""
    server = MariaDBServer(settings={"max-connections": "10"}).start()
    held = []
    try:
        server.sql("CREATE USER ''@'localhost'; CREATE USER 'root'@'%'; GRANT ALL ON *.* TO 'root'@'%';"
                   "CREATE DATABASE app; CREATE TABLE app.big (id int PRIMARY KEY, pad text) ENGINE=InnoDB;"
                   "INSERT INTO app.big SELECT seq, REPEAT('x', 400) FROM app.seq_1_to_80000; ANALYZE TABLE app.big;")
        server.sql("SELECT pad, COUNT(*) FROM app.big WHERE id < 50 GROUP BY pad;\n" * 120)
        held = [pymysql.connect(host="127.0.0.1", port=server.port, user="root") for _ in range(8)]
        store, notes = await _mysql_audit(server.dsn(), sessions)
        findings = evaluate(store, "mysql", *FAMILIES)
    finally:
        for conn in held:
            conn.close()
        server.destroy()
    assert notes == []
    weak = {f.labels["account"]: f for f in by_rule(findings, "MySQLWeakAccount")}
    assert "@localhost" in weak and weak["@localhost"].evidence["sql"] == "DROP USER ''@'localhost';"
    assert weak["root@127.0.0.1"].severity == "critical" and weak["root@127.0.0.1"].evidence["empty_password"]
    assert "root@%" in weak
    assert "mariadb.sys@localhost" not in weak  # locked: nobody logs in with it
    # No TLS configured (have_ssl DISABLED): requiring it would lock out every TCP client, so TLS comes first.
    [transport] = by_rule(findings, "MySQLInsecureTransport")
    assert transport.evidence["tls_configured"] is False and transport.evidence["have_ssl"] == "DISABLED"
    assert "SET GLOBAL require_secure_transport" not in transport.evidence["sql"]
    assert transport.evidence["risk"] == "low" and "configure TLS first" in transport.description.replace("Configure", "configure")
    # bound to 127.0.0.1: nothing crosses a network, so it ranks low
    assert transport.evidence["reachable_by"] == "local users only" and transport.evidence["impact"] < 0.05
    [agent] = by_rule(findings, "MySQLAgentOverPrivileged")
    assert "SUPER" in agent.evidence["extra_privileges"]
    [pool] = by_rule(findings, "MySQLBufferPoolSize")
    assert pool.evidence["innodb_data_bytes"] > pool.evidence["innodb_buffer_pool_size"] == 16 * 1024**2
    assert pool.evidence["recommended_bytes"] >= pool.evidence["innodb_data_bytes"]
    [conns] = by_rule(findings, "MySQLMaxConnections")
    assert conns.evidence["max_used_connections"] >= 9 and conns.evidence["max_connections"] == 10
    [tmp] = by_rule(findings, "MySQLTmpDiskTables")
    assert tmp.evidence["created_tmp_disk_tables"] >= 100 and tmp.evidence["disk_ratio"] > 0.25


async def test_hardened_mariadb_gets_no_recommendation(sessions, monkeypatch):
    """A throwaway MariaDB with a password on every account, require_secure_transport ON, the agent a
    least-privilege user over the Unix socket, small data, few connections, no disk temporary tables."""
    server = MariaDBServer().start()
    try:
        server.sql("ALTER USER 'root'@'localhost' IDENTIFIED BY 'rootpw'; ALTER USER 'root'@'127.0.0.1' "
                   "IDENTIFIED BY 'rootpw'; DROP USER IF EXISTS 'root'@'::1';"
                   "CREATE USER 'dbwatch'@'localhost' IDENTIFIED BY 'agentpw';"
                   "GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'dbwatch'@'localhost';"
                   "GRANT SELECT ON mysql.user TO 'dbwatch'@'localhost';"
                   "GRANT SELECT ON mysql.global_priv TO 'dbwatch'@'localhost';"
                   "GRANT SELECT ON performance_schema.* TO 'dbwatch'@'localhost';")
        others = server.sql("SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user "
                            "WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1')", password="rootpw")
        for account in others.split():
            server.sql(f"DROP USER {account}", password="rootpw")
        server.sql("SET GLOBAL require_secure_transport = ON", password="rootpw")
        monkeypatch.setenv("DBWATCH_TEST_AGENT_PW", "agentpw")
        store, notes = await _mysql_audit(f"mysql://dbwatch@localhost/?unix_socket={server.socket}", sessions,
                                          password_env="DBWATCH_TEST_AGENT_PW")
        audit = store.history("t", "audit")[-1].fact(MySQLAudit)
        findings = evaluate(store, "mysql", *FAMILIES)
    finally:
        server.destroy()
    assert notes == []
    assert audit.accounts and audit.require_secure_transport is True  # it did read what it judged
    assert findings == []


async def test_require_secure_transport_is_offered_only_when_tls_is_configured_and_then_locks_nobody_out(
        sessions, tmp_path):
    """Two throwaway MariaDB: one without TLS, where the old advice (SET GLOBAL require_secure_transport = ON)
    refuses every TCP client, and one with a certificate, where the advice is offered and TLS clients still
    get in."""
    bare = MariaDBServer().start()
    try:
        bare.sql("SET GLOBAL require_secure_transport = ON")
        with pytest.raises(pymysql.err.OperationalError):  # the harm, reproduced: TCP without TLS is refused
            pymysql.connect(host="127.0.0.1", port=bare.port, user="root").close()
        with pytest.raises(pymysql.err.OperationalError):  # and TLS cannot be had: the server has none
            pymysql.connect(host="127.0.0.1", port=bare.port, user="root", ssl={"check_hostname": False}).close()
    finally:
        bare.destroy()
    cert, key = _self_signed(tmp_path)
    tls = MariaDBServer(settings={"ssl-cert": cert, "ssl-key": key}).start()
    try:
        store, _ = await _mysql_audit(tls.dsn(), sessions)
        [transport] = by_rule(evaluate(store, "mysql", "security"), "MySQLInsecureTransport")
        assert transport.evidence["tls_configured"] is True and transport.evidence["have_ssl"] == "YES"
        assert transport.evidence["sql"].startswith("SET GLOBAL require_secure_transport = ON;")
        assert transport.evidence["risk"] == "medium" and "TLS" in transport.evidence["lock"]
        tls.sql(transport.evidence["sql"].split(";")[0])
        conn = pymysql.connect(host="127.0.0.1", port=tls.port, user="root", ssl={"check_hostname": False})
        with conn.cursor() as cur:
            cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")
            assert cur.fetchone()[1]  # a TLS session
        conn.close()
        pymysql.connect(unix_socket=str(tls.socket), user="root").close()  # the Unix socket stays open
    finally:
        tls.destroy()


# -- Redis -----------------------------------------------------------------------------------------------------


async def _redis(server: RedisServer, sessions, password_env: str | None = None) -> list:
    t = target("redis", server.dsn(), {"redis": {}, "audit": {}}, password_env=password_env)
    session = sessions(RedisSession(t))
    store = SnapshotStore()
    await collect(RedisCollector(t, session), store)
    await collect(RedisAuditCollector(t, session), store)
    return evaluate(store, "redis", *FAMILIES)


async def test_redis_on_all_addresses_without_a_password_and_without_a_memory_limit_is_flagged(sessions):
    """A throwaway redis-server bound to 0.0.0.0 with no password (protected mode on: remote clients are
    still refused, but only by it) and maxmemory 0."""
    server = RedisServer("--bind", "0.0.0.0", "--protected-mode", "yes").start()
    try:
        findings = await _redis(server, sessions)
    finally:
        server.destroy()
    [auth] = by_rule(findings, "RedisWithoutAuth")
    assert auth.severity == "warning" and auth.evidence["bind"] == ["0.0.0.0"]
    assert "requirepass" in auth.evidence["sql"]
    [memory] = by_rule(findings, "RedisMaxmemoryUnset")
    assert memory.evidence["ram_bytes"] and memory.evidence["recommended_bytes"] < memory.evidence["ram_bytes"]
    assert "allkeys-lru" in memory.evidence["sql"]


async def test_redis_on_loopback_or_with_a_password_and_a_memory_limit_is_not_flagged(sessions, monkeypatch):
    """Two throwaway redis-servers: one on 127.0.0.1 without a password, one on 0.0.0.0 with requirepass; both
    with maxmemory 64mb and allkeys-lru."""
    memory = ("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    loopback = RedisServer(*memory).start()
    guarded = RedisServer("--bind", "0.0.0.0", "--requirepass", "pw", *memory).start()
    monkeypatch.setenv("DBWATCH_TEST_REDIS_PW", "pw")
    try:
        assert await _redis(loopback, sessions) == []
        assert await _redis(guarded, sessions, password_env="DBWATCH_TEST_REDIS_PW") == []
    finally:
        loopback.destroy()
        guarded.destroy()
