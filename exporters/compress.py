"""The compression of scrape bodies: Intel's ISA-L (the ``isal`` package) when installed, else zlib.

Every whole-body scrape of a fleet compresses tens of megabytes (68 MB at 1,400 targets: nearly every family
changes between two scrapes), and a fleet scraped per target compresses each target's body once per
collection. On a fleet's text, ISA-L's level 1 gives the bytes zlib's level 2 gives (5.85 against 5.87 MB for
68 MB) in a quarter of the time (44 ms against 172 ms on the 2-core machine), and its CRC-32 takes 6 ms against
zlib's 32. Both let go of the GIL while they work, and both write plain DEFLATE, so a scraper sees no
difference. Where ``isal`` has no build (it has wheels for Linux, macOS and Windows on x86-64 and ARM64), the
agent uses zlib at level 2, which the figures in docs/performance.md before 2026-12-07 were measured with.
"""

from __future__ import annotations

from typing import Protocol

try:
    from isal import isal_zlib as _lib

    BACKEND = "isal"
    #: ISA-L's levels are 0-3; level 1 is zlib's level 2 in bytes, at a quarter of its time
    GZIP_LEVEL = 1
except ImportError:  # pragma: no cover (isal is a dependency; a platform without its wheel)
    import zlib as _lib  # type: ignore[no-redef]

    BACKEND = "zlib"
    #: zlib's level 2 takes a fifth of level 6's time on the text format for about 15 % more bytes
    GZIP_LEVEL = 2

__all__ = ["BACKEND", "GZIP_LEVEL", "Deflater", "FULL_FLUSH", "crc32", "deflater", "gzip_member"]

FULL_FLUSH = _lib.Z_FULL_FLUSH


class Deflater(Protocol):
    """A raw DEFLATE compressor (zlib's or ISA-L's ``compressobj``)."""

    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self, mode: int = ..., /) -> bytes: ...


def deflater() -> Deflater:
    """A raw DEFLATE compressor (no header) at :data:`GZIP_LEVEL`."""
    return _lib.compressobj(GZIP_LEVEL, _lib.DEFLATED, -15)


def crc32(data: bytes, value: int = 0) -> int:
    """CRC-32 of ``data``, continuing ``value``."""
    return _lib.crc32(data, value)


def gzip_member(data: bytes) -> bytes:
    """``data`` as one gzip member at :data:`GZIP_LEVEL`."""
    return _lib.compress(data, GZIP_LEVEL, 31)  # wbits 16 + 15: a gzip header and trailer
