"""PostgreSQL restore drills: a pgBackRest backup replayed to the end of its WAL archive, or a pg_dump file
loaded into a fresh cluster; either on a throwaway server run by ``postgres`` on a free loopback port.

pgBackRest: ``pgbackrest restore --set=NEWEST --archive-mode=off --tablespace-map-all=DRILL/ts`` into the
drill's directory (so the restored server never archives into the live repository and no tablespace path
of the live server is written), then the server starts with its own port, socket and pg_hba (trust over the
drill's socket only), replays the archive through pgBackRest's ``archive-get`` and promotes at its end.
Where the replay stopped ("redo done at") is compared with the newest segment of the archive: a replay
that stops earlier hit a missing segment (a gap), and the drill fails saying which.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import urllib.parse

import asyncpg

from dbwatch.collectors.backup_sources import SourceError, read_source
from dbwatch.collectors.restore_drill import Drill, DrillError, free_port, newest_file, run_as, tail, wait_until
from dbwatch.model import BackupSpec, SecretUnavailable

__all__ = ["check_gap", "compare", "dsn_database", "last_transaction", "promoted", "psql", "recovery_target_settings", "restore", "segment_of",
           "start", "target_time"]

BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
USER = "postgres"
START_TIMEOUT = 600
_REDO_DONE = re.compile(r"redo done at ([0-9A-F]+)/([0-9A-F]+)")
_LAST_XACT = re.compile(r"last completed transaction was at log time (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d)")
_TABLES = ("SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables "
           "ORDER BY pg_total_relation_size(relid) DESC, 1 LIMIT {limit}")


async def restore(drill: Drill, kind: str) -> None:
    spec = drill.spec
    if kind == "pgbackrest":
        directory, port = await _pgbackrest(drill, spec)
    else:
        directory, port = await _pg_dump(drill, spec)
    database = dsn_database(drill.target.dsn)
    await drill.verify_all(lambda statement: psql(drill, directory, port, database, statement))
    if drill.test.compare_tables:
        async with drill.step("compare", "row counts of the largest tables against the live target"):
            await compare(drill, directory, port, database)


def segment_of(timeline: int, lsn_high: int, lsn_low: int) -> str:
    """The name of the WAL segment (16 MiB segments) holding an LSN."""
    return f"{timeline:08X}{lsn_high:08X}{lsn_low >> 24:08X}"


# -- pgBackRest -----------------------------------------------------------------------------------


async def _pgbackrest(drill: Drill, spec: BackupSpec) -> tuple[str, int]:
    async with drill.step("check_space"):
        try:
            info = await read_source(spec)
        except SourceError as exc:
            raise DrillError(f"pgbackrest info: {exc}") from None
        good = sorted((e for e in info.entries if e.ok), key=lambda e: e.finished_at)
        if not good:
            raise DrillError("the stanza holds no good backup to restore")
        newest = good[-1]
        drill.backup, drill.backup_finished_at = newest.label, newest.finished_at
        drill.check_space(newest.size_bytes)
    directory = drill.make_directory(run_as(USER))
    data = os.path.join(directory, "data")
    async with drill.step("restore", f"pgbackrest restore --set={newest.label}"):
        argv = ["pgbackrest", "--log-level-console=warn", "--log-level-file=off", f"--stanza={spec.stanza}",
                *([f"--config={spec.config}"] if spec.config else []), *([f"--repo={spec.repo}"] if spec.repo else []),
                f"--pg1-path={data}", f"--set={newest.label}", "--archive-mode=off", *_pgbackrest_target(drill),
                f"--tablespace-map-all={os.path.join(directory, 'ts')}", "restore"]
        await drill.command(argv, run_as(USER))
    port = await start(drill, directory, data)
    target = target_time(drill)
    async with drill.step("recover", "replaying the WAL archive " + (f"to {_utc(target)}" if target else "to its end")):
        await wait_until(lambda: promoted(drill, directory, port), "recovery did not reach the end of the archive",
                         drill.test.timeout, 0.2)
        log = _read(os.path.join(directory, "server.log"))
        drill.restored_to = last_transaction(log) or newest.finished_at
        if target is None:
            check_gap(log, info.wal_max)
    return directory, port


def target_time(drill: Drill) -> float | None:
    """The point in time the drill recovers to (``recover_to``), or None: the end of the archive."""
    test = drill.test
    if test.recover_before is not None:
        return drill.started_at - test.recover_before
    return test.recover_to


def _utc(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00")


def recovery_target_settings(drill: Drill) -> dict[str, str]:
    """PostgreSQL's recovery target settings for the drill's ``recover_to``."""
    target = target_time(drill)
    if target is None:
        return {"recovery_target_timeline": "latest"}
    return {"recovery_target_time": _utc(target), "recovery_target_action": "promote",
            "recovery_target_timeline": "latest"}


def _pgbackrest_target(drill: Drill) -> list[str]:
    target = target_time(drill)
    if target is None:
        return []
    return ["--type=time", f"--target={_utc(target)}", "--target-action=promote"]


def check_gap(log: str, wal_max: str | None) -> None:
    """Recovery that stopped before the archive's newest segment met a missing one."""
    done = _REDO_DONE.search(log)
    if done is None or not wal_max or len(wal_max) != 24:
        return
    stopped = segment_of(int(wal_max[:8], 16), int(done.group(1), 16), int(done.group(2), 16))
    if stopped[8:] < wal_max[8:]:
        following = f"{int(stopped[8:16], 16):08X}{int(stopped[16:], 16) + 1:08X}"
        raise DrillError(f"WAL replay stopped in segment {stopped} but the archive holds up to {wal_max}: "
                         f"segment {stopped[:8]}{following} is missing from the archive (a gap); "
                         "a point-in-time recovery past it is impossible")


def last_transaction(log: str) -> float | None:
    found = _LAST_XACT.findall(log)
    if not found:
        return None
    return dt.datetime.fromisoformat(found[-1] + ":00").timestamp()


# -- pg_dump --------------------------------------------------------------------------------------


async def _pg_dump(drill: Drill, spec: BackupSpec) -> tuple[str, int]:
    async with drill.step("check_space"):
        newest = await newest_file(spec)
        drill.backup, drill.backup_finished_at = newest[0], newest[1]
        drill.restored_to = newest[1]  # a dump holds the data as of when it was taken
        custom = _check_dump(newest[0])
        drill.check_space(newest[2])
    directory = drill.make_directory(run_as(USER))
    data = os.path.join(directory, "data")
    async with drill.step("initdb"):
        await drill.command([f"{BIN}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                             "--no-sync"], run_as(USER))
    port = await start(drill, directory, data)
    database = dsn_database(drill.target.dsn)
    async with drill.step("restore", f"{'pg_restore' if custom else 'psql -f'} {newest[0]}"):
        conn = ["-h", directory, "-p", str(port), "-U", "postgres"]
        if database != "postgres":
            await drill.command([f"{BIN}/createdb", *conn, database])
        if custom:
            await drill.command([f"{BIN}/pg_restore", *conn, "-d", database, "--no-owner", "--no-privileges",
                                 "--exit-on-error", newest[0]])
        else:
            await drill.command([f"{BIN}/psql", "-X", "-q", *conn, "-d", database, "-v", "ON_ERROR_STOP=1",
                                 "-f", newest[0]])
    return directory, port


def _check_dump(path: str) -> bool:
    """True for pg_dump's custom format; a plain dump must end with pg_dump's closing comment."""
    with open(path, "rb") as fh:
        if fh.read(5) == b"PGDMP":
            return True
        fh.seek(max(0, os.path.getsize(path) - 4096))
        if b"PostgreSQL database dump complete" not in fh.read():
            raise DrillError(f"{path} is incomplete: it lacks pg_dump's closing "
                             "'-- PostgreSQL database dump complete' line (truncated?)")
    return False


# -- the throwaway server -------------------------------------------------------------------------


async def start(drill: Drill, directory: str, data: str) -> int:
    """Start the restored cluster on a free loopback port with the drill's own socket, pg_hba and settings."""
    port = free_port()
    hba = os.path.join(directory, "pg_hba.conf")
    with open(hba, "w", encoding="utf-8") as fh:
        fh.write("local all all trust\n")
    conf = os.path.join(data, "postgresql.conf")
    if not os.path.exists(conf):  # Debian keeps it in /etc: the backup has none
        open(conf, "w", encoding="utf-8").close()
    user = run_as(USER)
    if user:
        os.chmod(hba, 0o644)
        shutil.chown(conf, user, user)
    # data_directory: a postgresql.conf restored with the data (Debian's names /var/lib/...) must not point the
    # throwaway server at the live data directory
    settings = {"data_directory": data, "port": str(port), "listen_addresses": "127.0.0.1",
                "unix_socket_directories": directory,
                "hba_file": hba, "archive_mode": "off", "ssl": "off", "shared_preload_libraries": "",
                "logging_collector": "off", "cluster_name": "dbwatch-restore-drill", "shared_buffers": "128MB",
                "hot_standby": "on"}  # max_connections & co stay the backup's: recovery refuses lower values
    options = " ".join(f"-c {key}='{value}'" for key, value in settings.items())
    log = os.path.join(directory, "server.log")

    async def stop() -> None:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            await drill.command([f"{BIN}/pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"], user)

    async with drill.step("start", f"throwaway server on 127.0.0.1:{port}"):
        drill.stoppers.append(stop)
        try:
            await drill.command([f"{BIN}/pg_ctl", "-D", data, "-l", log, "-w", "-t", str(START_TIMEOUT),
                                 "-o", options, "start"], user)
        except DrillError:
            raise DrillError(f"the restored server did not start: {tail(log)}") from None
    return port


async def promoted(drill: Drill, directory: str, port: int) -> bool:
    out = await psql(drill, directory, port, "postgres", "SELECT pg_is_in_recovery()")
    return out.strip() == "f"


async def psql(drill: Drill, directory: str, port: int, database: str, statement: str) -> str:
    return await drill.command([f"{BIN}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", directory,
                                "-p", str(port), "-U", "postgres", "-d", database, "-c", statement])


# -- verification ---------------------------------------------------------------------------------


async def compare(drill: Drill, directory: str, port: int, database: str) -> None:
    """Exact row counts of the restored copy's largest tables, next to the live target's estimate
    (pg_stat_user_tables.n_live_tup: no scan of the live server), or None when it cannot be reached."""
    listed = await psql(drill, directory, port, database, _TABLES.format(limit=int(drill.test.compare_tables)))
    tables = [line for line in listed.splitlines() if line]
    live = await _live_estimates(drill, tables)
    for table in tables:
        count = int((await psql(drill, directory, port, database, f"SELECT count(*) FROM {table}")).strip())
        drill.compared.append((table, count, live.get(table)))


async def _live_estimates(drill: Drill, tables: list[str]) -> dict[str, int]:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(drill.target.dsn, password=drill.target.password(),
                                                      server_settings={"application_name": "dbwatch"}), 10)
    except (OSError, asyncpg.PostgresError, TimeoutError, SecretUnavailable) as exc:
        drill.say(f"compare: the live target is not reachable ({type(exc).__name__}); restored counts only")
        return {}
    try:
        rows = await conn.fetch("SELECT format('%I.%I', schemaname, relname) AS name, n_live_tup "
                                "FROM pg_stat_user_tables WHERE format('%I.%I', schemaname, relname) = ANY($1)",
                                tables)
        return {row["name"]: int(row["n_live_tup"]) for row in rows}
    finally:
        await conn.close()


def dsn_database(dsn: str) -> str:
    path = urllib.parse.urlsplit(dsn).path.lstrip("/")
    return urllib.parse.unquote(path) or "postgres"


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()
