"""MariaDB/MySQL restore drills: a ``mariadb-dump``/``mysqldump`` file loaded into a throwaway MariaDB.

The server gets a fresh data directory in the drill's directory (``mariadb-install-db``), runs as ``mysql``
on a free loopback port and its own socket, with the binary log off and a small buffer pool. A dump must end
with the dump tool's ``-- Dump completed`` line: a truncated file is refused before anything is loaded. With
``archive:`` (the binary-log directory) and a dump taken with ``--master-data``/``--source-data``, the binary
logs from the dump's position on are replayed after it (see :mod:`restore_mariabackup`).
"""

from __future__ import annotations

import os
import shutil
import urllib.parse

from dbwatch.collectors.restore_drill import Drill, DrillError, free_port, newest_file, run_as, tail, wait_until
from dbwatch.model import SecretUnavailable

__all__ = ["compare_tables", "dsn_database", "restore"]

USER = "mysql"
MARIADBD = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or shutil.which("mysql") or "/usr/bin/mariadb"
START_TIMEOUT = 120.0
_TABLES = ("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' "
           "AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') "
           "ORDER BY DATA_LENGTH + INDEX_LENGTH DESC, 1, 2 LIMIT {limit}")


async def restore(drill: Drill, kind: str) -> None:
    async with drill.step("check_space"):
        path, finished, size = await newest_file(drill.spec)
        drill.backup, drill.backup_finished_at, drill.restored_to = path, finished, finished
        _check_complete(path)
        drill.check_space(size)
        binlogs: list[tuple[str, int]] = []
        if drill.spec.archive:  # the binary logs after the dump are replayed: a point-in-time recovery
            from dbwatch.collectors.backup_dirs import dump_binlog_position
            from dbwatch.collectors.restore_mariabackup import binlogs_after
            binlogs = binlogs_after(drill.spec.archive, dump_binlog_position(path), path)
    user = run_as(USER)
    directory = drill.make_directory(user)
    data, sock = os.path.join(directory, "data"), os.path.join(directory, "mysqld.sock")
    os_user = user or "root"
    async with drill.step("initdb", "mariadb-install-db"):
        await drill.command([INSTALL_DB, "--no-defaults", f"--datadir={data}", f"--user={os_user}",
                             "--auth-root-authentication-method=normal", "--skip-test-db"])
    port = free_port()
    log = os.path.join(directory, "error.log")
    client = [CLIENT, "--no-defaults", f"--socket={sock}", "-u", "root", "--batch", "--skip-column-names"]
    async with drill.step("start", f"throwaway server on 127.0.0.1:{port}"):
        proc = await drill.spawn([MARIADBD, "--no-defaults", f"--datadir={data}", f"--port={port}", f"--socket={sock}",
                                  "--bind-address=127.0.0.1", f"--user={os_user}", f"--log-error={log}",
                                  f"--pid-file={os.path.join(directory, 'mysqld.pid')}",
                                  "--innodb-buffer-pool-size=64M", "--skip-name-resolve"], None, "mariadbd")

        async def up() -> bool:
            if proc.returncode is not None:
                raise DrillError(f"the throwaway MariaDB exited: {tail(log)}")
            try:
                await drill.command([*client, "-e", "SELECT 1"])
            except DrillError:
                return False
            return True

        await wait_until(up, "the throwaway MariaDB did not accept connections", START_TIMEOUT, 0.3)
    async with drill.step("restore", f"mariadb < {path}"):
        await drill.command(client, stdin_path=path)
    if binlogs:
        from dbwatch.collectors.restore_mariabackup import replay
        await replay(drill, directory, binlogs, client)
    database = dsn_database(drill.target.dsn)
    await drill.verify_all(lambda statement: drill.command([*client, *([database] if database else []),
                                                            "-e", statement]))
    if drill.test.compare_tables:
        async with drill.step("compare", "row counts of the largest tables against the live target"):
            await compare_tables(drill, client)


async def compare_tables(drill: Drill, client: list[str]) -> None:
    """Exact row counts of the restored copy's largest tables, next to the live target's estimate
    (information_schema.TABLES.TABLE_ROWS: no scan of the live server), or None when it cannot be reached."""
    listed = await drill.command([*client, "-e", _TABLES.format(limit=int(drill.test.compare_tables))])
    tables = [line.split("\t") for line in listed.splitlines() if "\t" in line]
    live = await _live_estimates(drill, tables)
    for schema, table in tables:
        count = await drill.command([*client, "-e", f"SELECT COUNT(*) FROM {_name(schema)}.{_name(table)}"])
        drill.compared.append((f"{schema}.{table}", int(count.strip()), live.get((schema, table))))


async def _live_estimates(drill: Drill, tables: list[list[str]]) -> dict[tuple[str, str], int]:
    parts = urllib.parse.urlsplit(drill.target.dsn)
    try:
        password = drill.target.password()
    except SecretUnavailable:
        password = None
    wanted = " OR ".join(f"(TABLE_SCHEMA = {_literal(s)} AND TABLE_NAME = {_literal(t)})" for s, t in tables) or "FALSE"
    argv = [CLIENT, "--no-defaults", "-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306),
            "-u", urllib.parse.unquote(parts.username or "root"), "--batch", "--skip-column-names",
            "--connect-timeout=10", "-e",
            f"SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE {wanted}"]
    try:  # the password goes through the environment, never the command line
        out = await drill.command(argv, env={"MYSQL_PWD": password} if password else None)
    except DrillError:
        drill.say("compare: the live target is not reachable; restored counts only")
        return {}
    rows = [line.split("\t") for line in out.splitlines()]
    return {(r[0], r[1]): int(r[2]) for r in rows if len(r) == 3 and r[2].isdigit()}


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _name(text: str) -> str:
    return "`" + text.replace("`", "``") + "`"


def _check_complete(path: str) -> None:
    with open(path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(path) - 1024))
        if b"-- Dump completed" not in fh.read():
            raise DrillError(f"{path} is incomplete: it lacks the dump's closing '-- Dump completed' line "
                             "(truncated, or the dump failed)")


def dsn_database(dsn: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(dsn).path.lstrip("/"))
