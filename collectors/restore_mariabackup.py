"""MariaDB restore drills of a ``mariabackup`` directory, with the binary logs after it replayed.

The newest good full backup is copied into the drill's directory and prepared there (``mariabackup
--prepare``: the source directory is never written, so it stays usable for incrementals). A throwaway
``mariadbd`` starts on the copy with the backup's own ``backup-my.cnf`` (InnoDB's page size and files) and
``--skip-networking``: its only way in is a socket in the drill's directory (mode 0700), and an ``--init-file``
gives the agent's OS user an account of its own on the copy (``unix_socket``), so the restored accounts'
passwords are not needed and nobody else can connect. The binary log is
off. With ``archive:`` (the binary-log directory), the binary logs from the backup's position
(``xtrabackup_binlog_info``) to the newest are decoded with ``mariadb-binlog`` (up to ``recover_to``, when
set) and replayed: a missing or damaged binary log fails the drill naming it.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import re
import shutil

from dbwatch.collectors.backup_dirs import binlog_position
from dbwatch.collectors.backup_sources import SourceError, read_source
from dbwatch.collectors.pitr_dirs import BINLOG_MAGIC, binlog_files
from dbwatch.collectors.restore_drill import Drill, DrillError, run_as, tail, wait_until
from dbwatch.collectors.restore_mariadb import CLIENT, MARIADBD, START_TIMEOUT, USER, compare_tables, dsn_database
from dbwatch.collectors.restore_pg import target_time

__all__ = ["binlogs_after", "replay", "restore"]

MARIABACKUP = shutil.which("mariabackup") or shutil.which("mariadb-backup") or "/usr/bin/mariabackup"
MARIADB_BINLOG = shutil.which("mariadb-binlog") or shutil.which("mysqlbinlog") or "/usr/bin/mariadb-binlog"
_EVENT_TIME = re.compile(r"^#(\d{6} [ \d]\d:\d\d:\d\d) server id", re.MULTILINE)


async def restore(drill: Drill, kind: str) -> None:
    spec = drill.spec
    async with drill.step("check_space"):
        try:
            info = await read_source(spec)
        except SourceError as exc:
            raise DrillError(str(exc)) from None
        full = sorted((e for e in info.entries if e.ok and e.type == "full"), key=lambda e: e.finished_at)
        if not full:
            raise DrillError(f"no finished full mariabackup directory matches {spec.path}")
        newest = full[-1]
        drill.backup, drill.backup_finished_at, drill.restored_to = newest.label, newest.finished_at, newest.finished_at
        size = newest.size_bytes
        drill.check_space(2 * size if spec.archive and size is not None else size)
        binlogs = binlogs_after(spec.archive, binlog_position(newest.label), newest.label) if spec.archive else []
    user = run_as(USER)
    directory = drill.make_directory(user)
    data = os.path.join(directory, "data")
    async with drill.step("restore", f"copy {newest.label}"):
        await drill.command(["cp", "-R", "--preserve=mode,timestamps", newest.label, data])
        if user:
            await drill.command(["chown", "-R", f"{user}:{user}", data])
    async with drill.step("prepare", "mariabackup --prepare"):
        try:
            await drill.command([MARIABACKUP, "--no-defaults", "--prepare", f"--target-dir={data}"], user)
        except DrillError as exc:
            raise DrillError(f"the backup {newest.label} could not be prepared: {exc}") from None
    sock = os.path.join(directory, "mysqld.sock")
    me = pwd.getpwuid(os.geteuid()).pw_name  # unix_socket: the MariaDB user named after who connects
    client = [CLIENT, "--no-defaults", f"--socket={sock}", "-u", me, "--batch", "--skip-column-names"]
    await _start(drill, directory, data, sock, client, user, me)
    if binlogs:
        await replay(drill, directory, binlogs, client)
    database = dsn_database(drill.target.dsn)
    await drill.verify_all(lambda statement: drill.command([*client, *([database] if database else []),
                                                            "-e", statement]))
    if drill.test.compare_tables:
        async with drill.step("compare", "row counts of the largest tables against the live target"):
            await compare_tables(drill, client)


def binlogs_after(archive: str, position: tuple[str, int] | None, backup: str) -> list[tuple[str, int]]:
    """The binary logs to replay after ``backup`` taken at ``position``: (path, start position), checked for gaps
    and damage."""
    if position is None:
        raise DrillError(f"{backup} records no binary log position (no xtrabackup_binlog_info; a dump without "
                         "--master-data), so no binary log can be replayed after it")
    first, offset = position
    base, number = first.rsplit(".", 1)
    files = binlog_files(archive, base)
    if int(number) not in files:
        raise DrillError(f"binary log {first}, where the backup was taken, is missing from {archive}; "
                         "nothing after the backup can be replayed")
    out = []
    for n in range(int(number), max(files) + 1):
        name = f"{base}.{n:0{len(number)}d}"
        path = files.get(n)
        if path is None:
            raise DrillError(f"binary log {name} is missing from {archive} (a gap): a point-in-time recovery past "
                             f"{base}.{n - 1:0{len(number)}d} is impossible")
        with open(path, "rb") as fh:
            if fh.read(4) != BINLOG_MAGIC:
                raise DrillError(f"binary log {name} in {archive} is damaged (it does not start with the binlog magic)")
        out.append((path, offset if n == int(number) else 4))
    return out


async def _start(drill: Drill, directory: str, data: str, sock: str, client: list[str], user: str | None,
                 me: str) -> None:
    log = os.path.join(directory, "error.log")
    defaults = os.path.join(data, "backup-my.cnf")
    init = os.path.join(directory, "init.sql")
    with open(init, "w", encoding="utf-8") as fh:  # the drill's own account, on the copy only
        name = "'" + me.replace("\\", "\\\\").replace("'", "\\'") + "'@'localhost'"
        fh.write(f"CREATE OR REPLACE USER {name} IDENTIFIED VIA unix_socket;\n"
                 f"GRANT ALL PRIVILEGES ON *.* TO {name} WITH GRANT OPTION;\n")
    if user:
        shutil.chown(init, user, user)
    argv = [MARIADBD, *([f"--defaults-file={defaults}"] if os.path.isfile(defaults) else ["--no-defaults"]),
            f"--datadir={data}", f"--socket={sock}", "--skip-networking", f"--init-file={init}",
            f"--user={user or 'root'}", f"--log-error={log}", f"--pid-file={os.path.join(directory, 'mysqld.pid')}",
            "--innodb-buffer-pool-size=64M", "--skip-log-bin", "--skip-slave-start"]
    async with drill.step("start", f"throwaway server on {sock} (no network)"):
        proc = await drill.spawn(argv, None, "mariadbd")

        async def up() -> bool:
            if proc.returncode is not None:
                raise DrillError(f"the restored MariaDB exited: {tail(log)}")
            try:
                await drill.command([*client, "-e", "SELECT 1"])
            except DrillError:
                return False
            return True

        await wait_until(up, "the restored MariaDB did not accept connections", START_TIMEOUT, 0.3)


async def replay(drill: Drill, directory: str, binlogs: list[tuple[str, int]], client: list[str]) -> None:
    target = target_time(drill)
    names = f"{os.path.basename(binlogs[0][0])}..{os.path.basename(binlogs[-1][0])}"
    async with drill.step("recover", f"replaying binary logs {names} from position {binlogs[0][1]}"):
        stop = []
        if target is not None:  # mariadb-binlog reads --stop-datetime in the local time zone
            stop = [f"--stop-datetime={dt.datetime.fromtimestamp(target).strftime('%Y-%m-%d %H:%M:%S')}"]
        script = os.path.join(directory, "binlog.sql")
        try:  # --start-position applies to the first file named
            await drill.command([MARIADB_BINLOG, "--no-defaults", f"--start-position={binlogs[0][1]}", *stop,
                                 f"--result-file={script}", *(path for path, _ in binlogs)])
        except DrillError as exc:
            raise DrillError(f"the binary logs {names} cannot be read (damaged or truncated): {exc}") from None
        with open(script, "rb") as fh:
            fh.seek(max(0, os.path.getsize(script) - 65536))
            drill.restored_to = _last_event(fh.read().decode(errors="replace")) or drill.restored_to
        await drill.command(client, stdin_path=script)
        os.remove(script)


def _last_event(decoded: str) -> float | None:
    found = _EVENT_TIME.findall(decoded)
    if not found:
        return None
    return dt.datetime.strptime(found[-1].replace("  ", " 0"), "%y%m%d %H:%M:%S").timestamp()
