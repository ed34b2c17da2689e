"""Sharding a fleet across agents: each agent keeps the targets whose stable hash falls in its shard.

The hash is Prometheus' ``hashmod`` relabel action applied to the target's name: the MD5 digest's last
8 bytes read as a big-endian unsigned 64-bit integer, modulo the number of shards. A Prometheus that
shards its own scraping with ``action: hashmod`` on the same name and modulus puts every target in the
same shard number as dbwatch does. Several agents share one config; each is told its shard in the config
(``sharding: {total: N, index: I}``) or on the command line (``--shard I/N``, which wins).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence, TypeVar

from pydantic import Field, model_validator

from dbwatch.model.configtypes import StrictModel

__all__ = ["ShardingConfig", "hashmod", "parse_shard", "select_shard"]

T = TypeVar("T")


class ShardingConfig(StrictModel):
    total: int = Field(default=1, ge=1)
    index: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _index_below_total(self) -> "ShardingConfig":
        if self.index >= self.total:
            raise ValueError(f"index: expected 0 to {self.total - 1} (shards are numbered from 0), got {self.index}")
        return self

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' ``hashmod``: ``binary.BigEndian.Uint64(md5.Sum(value)[8:]) % modulus``."""
    digest = hashlib.md5(value.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def select_shard(items: Sequence[T], sharding: ShardingConfig, name: Callable[[T], str]) -> list[T]:
    """The items of this shard, in their order; with one shard, all of them."""
    if sharding.total == 1:
        return list(items)
    return [item for item in items if hashmod(name(item), sharding.total) == sharding.index]


def parse_shard(text: str) -> ShardingConfig:
    """``"1/4"`` → ShardingConfig(index=1, total=4); ValueError with the message shown to the user."""
    index, sep, total = text.partition("/")
    if not sep or not index.strip().isdigit() or not total.strip().isdigit():
        raise ValueError(f'expected INDEX/TOTAL like "0/4", got {text!r}')
    if int(total) < 1 or int(index) >= int(total):
        raise ValueError(f"expected an index from 0 to TOTAL-1 and TOTAL >= 1, got {text!r}")
    return ShardingConfig(index=int(index), total=int(total))

