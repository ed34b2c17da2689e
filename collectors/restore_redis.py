"""Redis restore drills: an RDB file loaded by a throwaway ``redis-server`` (as ``redis``, on a free loopback
port, with saving and the AOF off). Verification statements are Redis commands (``DBSIZE``, ``EXISTS key``);
a damaged RDB makes the server exit while loading, and its log says why."""

from __future__ import annotations

import os
import shlex
import shutil

from dbwatch.collectors.restore_drill import Drill, DrillError, free_port, newest_file, run_as, tail, wait_until

__all__ = ["restore"]

USER = "redis"
SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
LOAD_TIMEOUT = 600.0


async def restore(drill: Drill, kind: str) -> None:
    async with drill.step("check_space"):
        path, finished, size = await newest_file(drill.spec)
        drill.backup, drill.backup_finished_at, drill.restored_to = path, finished, finished
        with open(path, "rb") as fh:
            if fh.read(5) != b"REDIS":
                raise DrillError(f"{path} is not an RDB file (it does not start with REDIS)")
        drill.check_space(size)
    user = run_as(USER)
    directory = drill.make_directory(user)
    async with drill.step("restore", f"copy {path}"):
        rdb = os.path.join(directory, "dump.rdb")
        shutil.copyfile(path, rdb)
        if user:
            shutil.chown(rdb, user, user)
    port = free_port()
    log = os.path.join(directory, "redis.log")
    cli = [CLI, "-h", "127.0.0.1", "-p", str(port)]
    async with drill.step("start", f"throwaway redis-server on 127.0.0.1:{port}, loading the RDB"):
        proc = await drill.spawn([SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
                                  "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no",
                                  "--daemonize", "no", "--logfile", log, "--protected-mode", "yes"], user, "redis")

        async def loaded() -> bool:
            if proc.returncode is not None:
                raise DrillError(f"the throwaway Redis exited while loading the RDB: {tail(log, 3)}")
            try:
                info = await drill.command([*cli, "INFO", "persistence"])
            except DrillError:
                return False
            return "loading:0" in info

        await wait_until(loaded, "the throwaway Redis did not load the RDB", LOAD_TIMEOUT, 0.2)
    await drill.verify_all(lambda statement: _redis(drill, cli, statement))
    async with drill.step("compare", "keys in the restored copy"):
        keys = int((await drill.command([*cli, "DBSIZE"])).strip() or 0)
        drill.compared.append(("dbsize", keys, None))


async def _redis(drill: Drill, cli: list[str], statement: str) -> str:
    out = await drill.command([*cli, *shlex.split(statement)])
    if out.startswith("ERR") or out.startswith("(error)") or out.startswith("WRONGTYPE"):
        raise DrillError(out.strip())
    return out
