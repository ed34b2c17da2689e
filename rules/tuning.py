"""Configuration tuning against the host: PostgreSQL memory, planner and checkpoint settings, MySQL's
buffer pool, connections and temporary tables, Redis' memory limit.

The targets are the usual starting points (pgtune, mysqltuner, the Redis docs), not optima: shared_buffers
25 % of RAM, effective_cache_size 75 %, maintenance_work_mem RAM/16 up to 1 GB, work_mem × max_connections
within RAM, random_page_cost 1.1 and effective_io_concurrency 200 on SSD. A rule fires only well outside
that (e.g. shared_buffers under 15 % or over 40 % of RAM), and only when the host is known (the audit
collector's :class:`~dbwatch.model.facts.audit.HostFacts`: measured for a local target, or the collector's
``ram``/``cpus``/``disk`` options) — an unknown host is never guessed at.
"""

from __future__ import annotations

from typing import Iterable

from dbwatch.model import Finding, Severity
from dbwatch.model.facts.audit import MySQLAudit, PgAudit, RedisAudit
from dbwatch.model.facts.redis import RedisInfo
from dbwatch.rules.advice_common import recommend, size
from dbwatch.rules.engine import PythonRule, TargetView
from dbwatch.rules.spec import RulesConfig

__all__ = ["make_rules"]

MB, GB = 1024**2, 1024**3
MIN_CHECKPOINTS = 3  # requested checkpoints before their share means anything
MIN_TMP_TABLES = 100


def make_rules(config: RulesConfig) -> list[PythonRule]:
    return [PgMemorySettings(), PgSsdSettings(), PgCheckpointsRequested(), PgDurabilityOff(), MySQLBufferPool(),
            MySQLMaxConnections(), MySQLTmpDiskTables(), RedisMaxmemory()]


#: setting -> (severity, impact, what turning it off costs), worst first
_DURABILITY = {
    "fsync": (Severity.CRITICAL, 0.95,
              "a power loss or OS crash can corrupt the whole cluster (not just lose recent commits); the only "
              "safe recovery is a restore from backup"),
    "full_page_writes": (Severity.WARNING, 0.7,
                         "a crash in the middle of a page write leaves torn pages that WAL replay cannot repair "
                         "(safe only on a file system that writes pages atomically, such as ZFS)"),
    "synchronous_commit": (Severity.INFO, 0.04,
                           "a crash loses the last commits the clients were told succeeded (up to about three "
                           "times wal_writer_delay); the database stays consistent. Fine when chosen on purpose"),
}


class PgDurabilityOff:
    """fsync, full_page_writes or synchronous_commit off: speed bought with crash safety."""

    name = "PgDurabilityOff"
    engines = ("postgres",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        audit = view.fact(PgAudit)
        if audit is None:
            return []
        out = []
        for setting, (severity, impact, cost) in _DURABILITY.items():
            if audit.durability.get(setting) != "off":
                continue
            out.append(recommend(
                self.name, view, severity, f"{setting} = off: {cost.split(';')[0].split(' (')[0]}",
                f"{setting} is off: {cost}. Turn it back on (a reload suffices) unless this is a throwaway "
                f"server.", {"setting": setting}, {"setting": setting, "value": "off"},
                _setting_sql(setting, "on"), impact))
        return out


def _setting_sql(name: str, value: str, restart: bool = False) -> str:
    return (f"ALTER SYSTEM SET {name} = '{value}';\n"
            + ("-- takes effect after a restart" if restart else "SELECT pg_reload_conf();"))


class PgMemorySettings:
    """shared_buffers, effective_cache_size, work_mem against max_connections, maintenance_work_mem."""

    name = "PgMemorySettings"
    engines = ("postgres",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        audit = view.fact(PgAudit)
        if audit is None or not audit.host.ram_bytes:
            return []
        ram, s = audit.host.ram_bytes, audit.settings
        out = []
        evidence = {"ram_bytes": ram, "host_source": audit.host.source}

        def add(setting: str, current: float, target: float, severity: Severity, why: str, restart: bool,
                impact: float) -> None:
            target = max(MB, int(target // MB * MB))
            out.append(recommend(
                self.name, view, severity, f"{setting} = {size(current)} on a host with {size(ram)} RAM: "
                f"set about {size(target)}", why, {"setting": setting},
                {**evidence, "setting": setting, "current_bytes": int(current), "recommended_bytes": target},
                _setting_sql(setting, size(target), restart), impact))

        sb = s.get("shared_buffers")
        if sb is not None and not 0.15 * ram <= sb <= 0.4 * ram:
            low = sb < 0.15 * ram
            add("shared_buffers", sb, 0.25 * ram, Severity.WARNING if low and sb < 0.05 * ram else Severity.INFO,
                f"shared_buffers is {100 * sb / ram:.1f} % of RAM; about 25 % is the usual start "
                + ("(PostgreSQL reads through its own cache; the OS cache does the rest)." if low else
                   "(more leaves too little to the OS cache and to work_mem)."), True, 0.4)
        ecs = s.get("effective_cache_size")
        if ecs is not None and not 0.5 * ram <= ecs <= ram:
            add("effective_cache_size", ecs, 0.75 * ram, Severity.INFO,
                f"effective_cache_size tells the planner how much of the data is cached (shared_buffers plus the "
                f"OS cache); at {100 * ecs / ram:.0f} % of RAM it {'under' if ecs < ram else 'over'}states it, "
                f"so index scans are {'under' if ecs < ram else 'over'}-chosen. No memory is allocated.", False, 0.06)
        wm, conns = s.get("work_mem"), s.get("max_connections")
        if wm is not None and conns and wm * conns > ram:
            add("work_mem", wm, 0.25 * ram / conns, Severity.WARNING,
                f"work_mem × max_connections = {size(wm * conns)} exceeds RAM; a burst of sorts and hashes "
                f"(each may use work_mem, several per query) can drive the server out of memory.", False, 0.5)
        mwm = s.get("maintenance_work_mem")
        want = min(ram / 16, GB)
        if mwm is not None and mwm < want / 2:
            add("maintenance_work_mem", mwm, want, Severity.INFO,
                "VACUUM, CREATE INDEX and ALTER TABLE ... ADD FOREIGN KEY use maintenance_work_mem; with more, "
                "vacuum passes over indexes fewer times and index builds sort in memory.", False, 0.05)
        return out


class PgSsdSettings:
    name = "PgSsdSettings"
    engines = ("postgres",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        audit = view.fact(PgAudit)
        if audit is None or audit.host.rotational is not False:
            return []
        s, out = audit.settings, []
        rpc = s.get("random_page_cost")
        if rpc is not None and rpc > 2:
            out.append(recommend(
                self.name, view, Severity.INFO, f"random_page_cost = {rpc:g} on SSD storage: set 1.1",
                "The default 4 models a spinning disk's seeks; on SSD a random read costs about a sequential one, "
                "so the planner wrongly prefers sequential scans over index scans.", {"setting": "random_page_cost"},
                {"setting": "random_page_cost", "current": rpc, "recommended": 1.1, "rotational": False},
                _setting_sql("random_page_cost", "1.1"), 0.08))
        eio = s.get("effective_io_concurrency")
        if eio is not None and eio < 100:
            out.append(recommend(
                self.name, view, Severity.INFO, f"effective_io_concurrency = {eio:g} on SSD storage: set 200",
                "SSDs serve many requests in parallel; bitmap heap scans prefetch that many pages ahead.",
                {"setting": "effective_io_concurrency"},
                {"setting": "effective_io_concurrency", "current": eio, "recommended": 200, "rotational": False},
                _setting_sql("effective_io_concurrency", "200"), 0.1))
        return out


class PgCheckpointsRequested:
    name = "PgCheckpointsRequested"
    engines = ("postgres",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        audit = view.fact(PgAudit)
        if audit is None:
            return []
        requested, timed = audit.checkpoints_requested, audit.checkpoints_timed
        if requested < MIN_CHECKPOINTS or requested <= timed:
            return []
        current = audit.settings.get("max_wal_size", GB)
        target = max(2 * current, GB)
        return [recommend(
            self.name, view, Severity.WARNING if requested > 3 * max(timed, 1) else Severity.INFO,
            f"{requested} of {requested + timed} checkpoints were forced by WAL volume: raise max_wal_size",
            f"Checkpoints should come from checkpoint_timeout ({audit.settings.get('checkpoint_timeout', 300):.0f} s);"
            f" when WAL reaches max_wal_size ({size(current)}) first, checkpoints come early and often, each "
            f"followed by full-page writes that multiply WAL. (Manual CHECKPOINT commands count as requested too.)",
            {"setting": "max_wal_size"},
            {"checkpoints_requested": requested, "checkpoints_timed": timed, "max_wal_size_bytes": int(current),
             "recommended_bytes": int(target)},
            _setting_sql("max_wal_size", size(target)), 0.3)]


class MySQLBufferPool:
    name = "MySQLBufferPoolSize"
    engines = ("mysql",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        audit = view.fact(MySQLAudit)
        if audit is None:
            return []
        pool, data, ram = audit.innodb_buffer_pool_size, audit.innodb_data_bytes, audit.host.ram_bytes
        if data <= pool or (ram and pool >= 0.7 * ram):
            return []
        chunk = 128 * MB
        target = data * 1.25 if not ram else min(data * 1.25, 0.7 * ram)
        target = max(chunk, -(-int(target) // chunk) * chunk)
        if target <= pool:
            return []
        return [recommend(
            self.name, view, Severity.WARNING if data > 2 * pool else Severity.INFO,
            f"innodb_buffer_pool_size = {size(pool)} holds less than the {size(data)} of InnoDB data and indexes",
            "Reads that miss the buffer pool go to disk. Size it to the data (plus a quarter for growth), within "
            "about 70 % of RAM on a dedicated server" + (f" ({size(ram)})." if ram else "."),
            {"setting": "innodb_buffer_pool_size"},
            {"innodb_buffer_pool_size": pool, "innodb_data_bytes": data, "ram_bytes": ram,
             "recommended_bytes": target},
            f"SET GLOBAL innodb_buffer_pool_size = {target};  -- and innodb_buffer_pool_size = {size(target)} "
            f"under [mysqld]", 0.4)]


class MySQLMaxConnections:
    name = "MySQLMaxConnections"
    engines = ("mysql",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        audit = view.fact(MySQLAudit)
        if audit is None or audit.max_connections <= 0:
            return []
        used, limit = audit.max_used_connections, audit.max_connections
        if used < 0.85 * limit:
            return []
        target = max(limit + 10, int(used * 1.5))
        return [recommend(
            self.name, view, Severity.WARNING,
            f"Peak connections {used} reached {100 * used / limit:.0f} % of max_connections = {limit}",
            "At the limit new clients get 'Too many connections'. Raise it (each connection costs its buffers), "
            "or put a connection pool in front.", {"setting": "max_connections"},
            {"max_used_connections": used, "max_connections": limit, "recommended": target,
             "uptime_seconds": audit.uptime},
            f"SET GLOBAL max_connections = {target};  -- and max_connections = {target} under [mysqld]", 0.4)]


class MySQLTmpDiskTables:
    name = "MySQLTmpDiskTables"
    engines = ("mysql",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        audit = view.fact(MySQLAudit)
        if audit is None or audit.created_tmp_tables < MIN_TMP_TABLES:
            return []
        ratio = audit.created_tmp_disk_tables / audit.created_tmp_tables
        if ratio <= 0.25:
            return []
        current = min(audit.tmp_table_size, audit.max_heap_table_size)
        target = max(32 * MB, min(4 * current, 256 * MB))
        return [recommend(
            self.name, view, Severity.INFO,
            f"{100 * ratio:.0f} % of implicit temporary tables went to disk ({audit.created_tmp_disk_tables} of "
            f"{audit.created_tmp_tables})",
            f"An in-memory temporary table larger than min(tmp_table_size, max_heap_table_size) = {size(current)} "
            "is converted to an on-disk one. Raise both together; a temporary table with TEXT/BLOB columns goes to "
            "disk whatever the size (select fewer such columns in GROUP BY / DISTINCT queries).",
            {"setting": "tmp_table_size"},
            {"created_tmp_tables": audit.created_tmp_tables, "created_tmp_disk_tables": audit.created_tmp_disk_tables,
             "disk_ratio": round(ratio, 4), "tmp_table_size": audit.tmp_table_size,
             "max_heap_table_size": audit.max_heap_table_size, "recommended_bytes": target},
            f"SET GLOBAL tmp_table_size = {target}, max_heap_table_size = {target};", 0.2)]


class RedisMaxmemory:
    name = "RedisMaxmemoryUnset"
    engines = ("redis",)

    def evaluate(self, view: TargetView) -> Iterable[Finding]:
        info = view.need(RedisInfo)
        if info is None or not info.config_available or info.maxmemory_bytes:
            return []
        audit = view.fact(RedisAudit)
        ram = audit.host.ram_bytes if audit is not None else None
        target = int(0.75 * ram) // MB * MB if ram else None
        policy = info.maxmemory_policy or "noeviction"
        value = f"{target // MB}mb" if target else "<75 % of the host's RAM>"
        return [recommend(
            self.name, view, Severity.WARNING if info.role == "master" else Severity.INFO,
            "Redis has no memory limit (maxmemory 0)",
            f"Redis grows until the kernel's OOM killer stops it (used now: {size(info.used_memory_bytes)}). Set a "
            f"limit below RAM, leaving room for fork copy-on-write during saves; with a cache, pick an eviction "
            f"policy (allkeys-lru) instead of {policy}.", {},
            {"maxmemory_bytes": 0, "maxmemory_policy": policy, "used_memory_bytes": info.used_memory_bytes,
             "ram_bytes": ram, "recommended_bytes": target},
            f"CONFIG SET maxmemory {value}\n" + ("CONFIG SET maxmemory-policy allkeys-lru\n"
                                               if policy == "noeviction" else "") + "CONFIG REWRITE", 0.4)]
