"""The whole body's gzip (exporters/joined.py): per-name deflates made by different compressors, some cached from
an earlier scrape and some new, concatenate into one gzip member that decompresses to exactly the text."""

from __future__ import annotations

import gzip
import random
import zlib

from dbwatch.exporters.joined import GZIP_HEADER, DeflateCache, Group, Joined, gzip_tail


def _lines(name: str, rng: random.Random, n: int = 200) -> list[bytes]:
    # Repetitive text, as an exposition is: a compressor that refers back across names would be caught here.
    return [f'{name}{{target="t{i % 7}",db="app"}} {rng.randint(0, 10**6)} 1765061234567\n'.encode() for i in range(n)]


def _gzip(joined: Joined, fresh: bytes) -> bytes:
    joined.prepare_gzip()
    return b"".join([GZIP_HEADER, *joined.deflated(), gzip_tail(fresh, joined.crc(), joined.size)])


def test_cached_and_new_deflates_concatenate_into_the_text():
    rng = random.Random(7)
    cache = DeflateCache()
    names = [f"family_{i}" for i in range(30)]
    parts = {name: [f"# TYPE {name} gauge\n".encode(), *_lines(name, rng)] for name in names}
    first = Joined(1, [Group(name, 1, parts[name]) for name in names], cache)
    fresh = b"dbwatch_build_info 1\n"
    text = b"".join(p for name in names for p in parts[name]) + fresh
    assert gzip.decompress(_gzip(first, fresh)) == text
    cached = dict(zip(names, first.deflated()))
    # Every third name changes; the others come from the cache, made by the first scrape's compressor.
    for name in names[::3]:
        parts[name] = [f"# TYPE {name} gauge\n".encode(), *_lines(name, rng)]
    groups = [Group(name, 2 if i % 3 == 0 else 1, parts[name]) for i, name in enumerate(names)]
    groups.append(Group(None, 0, [b"gone_series 1\n"]))  # tombstones: compressed anew every time
    second = Joined(2, groups, cache)
    body = _gzip(second, fresh)
    assert gzip.decompress(body) == b"".join(p for g in groups for p in g.parts) + fresh
    reused = [d for name, d in zip(names, second.deflated()) if d is cached[name]]
    assert len(reused) == 20  # the unchanged names' deflates were not made again


def test_bodies_are_compressed_with_isa_l_and_any_gzip_reader_reads_them():
    from dbwatch.exporters.compress import BACKEND, gzip_member

    text = b"".join(_lines("pg_up", random.Random(3), 2000))
    assert BACKEND == "isal"  # a dependency: 4x zlib's speed for the same bytes (exporters/compress.py)
    packed = gzip_member(text)
    assert gzip.decompress(packed) == text and len(packed) < len(text) / 3
    # A whole body of many small parts (a fleet's ~100k): as small as zlib's level 2 makes the same text
    names = [f"family_{i}" for i in range(40)]
    groups = [Group(name, 1, _lines(name, random.Random(i), 300)) for i, name in enumerate(names)]
    body = _gzip(Joined(1, groups, DeflateCache()), b"")
    whole = b"".join(p for g in groups for p in g.parts)
    assert gzip.decompress(body) == whole
    assert len(body) <= 1.1 * len(zlib.compress(whole, 2))
