"""The Redis audit: the addresses it binds, protected mode, whether the default user needs a password, the
memory limit, and the host when it can be seen. Low frequency (hourly by default).

``CONFIG GET`` and ``ACL GETUSER`` may be renamed away or denied: the field is then ``None`` and the rules
stay silent about it. The password itself is never read into the facts, only whether there is one.
Facts: :class:`RedisAudit`.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

from dbwatch.model import Snapshot
from dbwatch.model.facts.audit import RedisAudit
from dbwatch.collectors.audit_host import host_facts, is_local
from dbwatch.collectors.base import Collector
from dbwatch.collectors.options import AuditHostOptions
from dbwatch.collectors.redis import RedisSession

__all__ = ["RedisAuditCollector"]


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else str(value)


def _pairs(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = list(reply or [])
    return {_text(k): _text(v) for k, v in zip(items[::2], items[1::2])}


class RedisAuditCollector(Collector[RedisSession, AuditHostOptions]):
    name = "audit"
    options_model = AuditHostOptions

    async def collect(self, snapshot: Snapshot) -> None:
        session = self.session
        async with session.lock:
            config_raw, config_error = await session.try_run(
                "CONFIG", "GET", "bind", "protected-mode", "requirepass", "maxmemory", "maxmemory-policy", "dir")
            acl_raw, acl_error = await session.try_run("ACL", "GETUSER", "default")
            memory = await session.run("INFO", "memory")
        config = _pairs(config_raw) if config_error is None else {}
        if config_error is not None:
            snapshot.notes.append(f"CONFIG GET is not available ({config_error}): bind, protected mode and the "
                                  f"memory limit are not audited")
        nopass, enabled = _default_user(acl_raw) if acl_error is None else (None, None)
        if nopass is None and "requirepass" in config:  # Redis < 6: no ACL, requirepass says it all
            nopass = config["requirepass"] == ""
        host = urllib.parse.urlsplit(self.target.dsn).hostname
        facts_host = await asyncio.to_thread(host_facts, self.options, is_local(host), config.get("dir"))
        snapshot.put(RedisAudit(
            bind=tuple(config["bind"].split()) if "bind" in config else None,
            protected_mode=config["protected-mode"] == "yes" if "protected-mode" in config else None,
            default_user_nopass=nopass, default_user_enabled=enabled,
            maxmemory_bytes=int(config["maxmemory"]) if "maxmemory" in config else None,
            maxmemory_policy=config.get("maxmemory-policy"),
            used_memory_bytes=int(_used_memory(memory)), host=facts_host,
        ))


def _default_user(reply: Any) -> tuple[bool | None, bool | None]:
    """ACL GETUSER default → (needs no password, enabled), from its ``flags``."""
    fields = reply if isinstance(reply, dict) else _raw_fields(reply)
    flags = fields.get("flags")
    if flags is None:
        return None, None
    flags = {_text(f) for f in flags}
    return "nopass" in flags, "on" in flags


def _raw_fields(reply: Any) -> dict[str, Any]:
    items = list(reply or [])
    return {_text(k): v for k, v in zip(items[::2], items[1::2])}


def _used_memory(reply: Any) -> int:
    if isinstance(reply, dict):
        return int(reply.get("used_memory", 0))
    for line in _text(reply).splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":", 1)[1])
    return 0
