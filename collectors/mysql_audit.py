"""The MySQL/MariaDB audit: accounts (empty passwords, anonymous, root from anywhere), transport security,
and the settings the tuning rules judge (buffer pool against the data, connections against the peak,
temporary tables on disk), with the host when it can be seen. Low frequency (hourly by default).

Accounts come from ``mysql.user`` (a view over ``mysql.global_priv`` on MariaDB 10.4+), which needs
``SELECT ON mysql.user``: without it ``accounts`` is ``None`` and a note says what to grant. Locked accounts
(``mariadb.sys``, ``mysql.session``...) are left out: nobody can log in with them. Facts:
:class:`MySQLAudit`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dbwatch.model import Snapshot
from dbwatch.model.facts.audit import MySQLAccount, MySQLAudit
from dbwatch.collectors.audit_host import host_facts, is_local
from dbwatch.collectors.base import Collector
from dbwatch.collectors.options import AuditHostOptions
from dbwatch.collectors.mysql import ACCESS_DENIED, MySQLSession, QueryError, grantee

__all__ = ["MySQLAuditCollector"]

ACCOUNTS = "SELECT * FROM mysql.user"
VARIABLES = """SHOW GLOBAL VARIABLES WHERE Variable_name IN ('require_secure_transport', 'have_ssl', 'ssl_cert',
  'bind_address', 'skip_networking',
  'innodb_buffer_pool_size', 'max_connections', 'tmp_table_size', 'max_heap_table_size', 'datadir')"""
STATUS = """SHOW GLOBAL STATUS WHERE Variable_name IN ('Max_used_connections', 'Created_tmp_tables',
  'Created_tmp_disk_tables', 'Uptime')"""
# MariaDB keeps the lock in mysql.global_priv's JSON (MySQL 8 has mysql.user.account_locked).
LOCKED_MARIADB = """SELECT User AS user, Host AS host FROM mysql.global_priv
WHERE JSON_EXTRACT(Priv, '$.account_locked') = 'true'"""
# Tablespace files: readable with PROCESS, so a least-privilege agent sees every table's size (TABLES shows it
# only the tables it may read).
TABLESPACES = """SELECT COALESCE(SUM(ALLOCATED_SIZE), 0) AS bytes FROM information_schema.{table}
WHERE NAME LIKE '%/%' AND NAME NOT LIKE 'mysql/%' AND NAME NOT LIKE 'sys/%'"""
INNODB_DATA = """SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS bytes FROM information_schema.TABLES
WHERE ENGINE = 'InnoDB' AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"""

# Accounts the server installs locked; taken as locked when the lock itself cannot be read.
_SYSTEM_ACCOUNTS = frozenset({"mariadb.sys", "mysql.sys", "mysql.session", "mysql.infoschema"})
# Plugins whose empty authentication string means "no password" (unix_socket, gssapi, pam authenticate
# otherwise).
_PASSWORD_PLUGINS = {"", "mysql_native_password", "caching_sha2_password", "sha256_password", "ed25519",
                     "mysql_old_password"}


class MySQLAuditCollector(Collector[MySQLSession, AuditHostOptions]):
    name = "audit"
    options_model = AuditHostOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            server = await session.connected_server()
            snapshot.version = server.version
            try:
                accounts: list[dict[str, Any]] | None = await session.run(ACCOUNTS)
            except QueryError as exc:
                if exc.errno not in ACCESS_DENIED:
                    raise
                accounts = None
                snapshot.notes.append(f"user {server.user} may not read mysql.user, so accounts are not audited; run "
                                      f"GRANT SELECT ON mysql.user TO {grantee(server.user)};")
            locked: set[tuple[str, str]] = set()
            if accounts is not None and server.mariadb:
                try:
                    locked = {(_text(r["user"]), _text(r["host"])) for r in await session.run(LOCKED_MARIADB)}
                except QueryError as exc:
                    if exc.errno in ACCESS_DENIED:
                        snapshot.notes.append(
                            f"user {server.user} may not read mysql.global_priv, so locked accounts are not told "
                            f"apart (the built-in {', '.join(sorted(_SYSTEM_ACCOUNTS))} are taken as locked); run "
                            f"GRANT SELECT ON mysql.global_priv TO {grantee(server.user)};")
                    locked = {(user, "localhost") for user in _SYSTEM_ACCOUNTS}
            variables = {r["Variable_name"]: r["Value"] for r in await session.run(VARIABLES)}
            status = {r["Variable_name"]: r["Value"] for r in await session.run(STATUS)}
            [data] = await session.run(INNODB_DATA)
            data_bytes = int(data["bytes"] or 0)
            try:
                table = "INNODB_SYS_TABLESPACES" if server.mariadb else "INNODB_TABLESPACES"
                [files] = await session.run(TABLESPACES.format(table=table))
                data_bytes = max(data_bytes, int(files["bytes"] or 0))
            except QueryError:
                pass  # no PROCESS: the tables the agent may read are all it can size
        local = session.unix_socket is not None or is_local(session.host)
        host = await asyncio.to_thread(host_facts, self.options, local, variables.get("datadir"))
        rst = variables.get("require_secure_transport")
        snapshot.put(MySQLAudit(
            agent_user=server.user, agent_privileges=tuple(sorted(server.privileges)),
            accounts=None if accounts is None else [
                a for row in accounts if (a := _account(row)) is not None and (a.user, a.host) not in locked],
            require_secure_transport=None if rst is None else str(rst).upper() in ("ON", "1"),
            have_ssl=variables.get("have_ssl"),
            innodb_buffer_pool_size=int(variables.get("innodb_buffer_pool_size") or 0),
            innodb_data_bytes=data_bytes,
            max_connections=int(variables.get("max_connections") or 0),
            max_used_connections=int(status.get("Max_used_connections") or 0),
            created_tmp_tables=int(status.get("Created_tmp_tables") or 0),
            created_tmp_disk_tables=int(status.get("Created_tmp_disk_tables") or 0),
            tmp_table_size=int(variables.get("tmp_table_size") or 0),
            max_heap_table_size=int(variables.get("max_heap_table_size") or 0),
            uptime=float(status.get("Uptime") or 0), host=host, ssl_cert=variables.get("ssl_cert"),
            bind_address=variables.get("bind_address"),
            skip_networking=str(variables.get("skip_networking") or "").upper() in ("ON", "1"),
        ))


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else str(value or "")


def _account(row: dict[str, Any]) -> MySQLAccount | None:
    row = {k.lower(): v for k, v in row.items()}
    if _text(row.get("account_locked")).upper() in ("Y", "1"):
        return None
    if _text(row.get("is_role")).upper() == "Y":
        return None
    plugin = _text(row.get("plugin"))
    empty = (plugin in _PASSWORD_PLUGINS and not _text(row.get("authentication_string"))
             and not _text(row.get("password")))
    return MySQLAccount(user=_text(row.get("user")), host=_text(row.get("host")), plugin=plugin, empty_password=empty)
