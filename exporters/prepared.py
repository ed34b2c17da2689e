"""Whole bodies made ahead for a scraper, handed whole to the HTTP thread so that its scrape never waits for the
event loop.

exporters/ahead.py makes a steady scraper's whole body shortly before its next scrape, on the event loop. The
scrape itself then only needs its bytes written; but a scrape that goes through the event loop for that waits
behind whatever the loop is doing (at 1,400 targets, 20-100 ms). So a body made ahead is put here whole: the
snapshot part joined and what was true at its making (the jobs' ages and the providers' families: alerts,
recommendations, the agent's own counters), a gzip one as its compressed pieces.
The HTTP thread (agent/httpthread.py) takes it when the scrape comes and adds only the process' metrics
(prometheus-client's registry takes its own locks; process_* are read once a second): formatting and
compressing the ages and the providers' families there, as this once did (a fleet's 600 KB, 8-15 ms of CPU),
took 20-60 ms of wall time on a busy agent, the listener's thread sharing the interpreter's lock with the
event loop. Then it tells the event loop what it served (the scraper's spacing, tombstones seen).

The providers' families and the ages are therefore as of the making, a fraction of a second to a few seconds
before the scrape (twice the longest recent build and a margin: exporters/ahead.py), without a timestamp (an
age reads that much low; a stamped series would get no staleness marker when its target goes); the collected
samples carry their own. A scrape nothing was made for (a scraper's first, one much later than expected, one
whose body is still being made) is served here the newest body of its kind if that body may stand in
(exporters/ahead.py's rule: joined at most 5 s and twenty builds before), and the event loop starts a newer one;
only when none may does the scrape go through the event loop.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable

from dbwatch.exporters.ahead import Key, Kind, Ready
from dbwatch.exporters.joined import GZIP_HEADER, Joined, Packed, gzip_tail

__all__ = ["Prepared", "PreparedBodies", "body_parts"]


@dataclass(frozen=True, slots=True)
class Prepared:
    ready: Ready  # the body made ahead (exporters/ahead.py)
    until: float  # after which it serves no more: time.monotonic() for a scraper's, time.time() for a stand-in


class PreparedBodies:
    """Per scraper and kind, the one body made ahead for its next scrape. Put and dropped by the event loop,
    taken by the HTTP thread: each is one operation on a dict, which the interpreter's lock makes whole."""

    def __init__(self) -> None:
        self._slots: dict[Key, Prepared] = {}
        self._newest: dict[Kind, Prepared] = {}  # per kind, the newest body made, until when it may stand in

    def newest(self, kind: Kind, ready: Ready | None, until: float) -> None:
        """exporters/ahead.py's ``on_newest``: the newest body of ``kind``, which may stand in for a scrape
        nothing was made for until ``until`` (time.time()); None: none may any longer."""
        if ready is None:
            self._newest.pop(kind, None)
        else:
            self._newest[kind] = Prepared(ready, until)

    def stand_in(self, kind: Kind, now: float) -> Prepared | None:
        """The newest body of ``kind``, if it may still stand in at ``now`` (time.time()): not taken, as any
        scrape of that kind may have it."""
        prepared = self._newest.get(kind)
        return prepared if prepared is not None and now <= prepared.until else None

    def ready(self, key: Key, ready: Ready | None, until: float) -> None:
        """exporters/ahead.py's ``on_ready``: a body for ``key``'s next scrape was made (on the event loop), or
        ``None``: none stands ready for it any longer."""
        if ready is None:
            self._slots.pop(key, None)
            return
        self._slots[key] = Prepared(ready, until)

    def take(self, key: Key, now: float) -> Prepared | None:
        """The body made for ``key``'s scrape coming at ``now`` (monotonic), if one is and it is not too late:
        taken, so that no other scrape is served it."""
        prepared = self._slots.pop(key, None)
        return prepared if prepared is not None and now <= prepared.until else None

    def __len__(self) -> int:
        """Bodies made for a scraper's next scrape."""
        return len(self._slots)


def body_parts(joined: Joined | Packed, fresh: bytes, gzip: bool, live: bytes = b"") -> tuple[int, Iterable[bytes]]:
    """A whole body's length and the pieces to send: the snapshot part as it is, then ``live`` (made with it) and
    ``fresh``; for gzip, the snapshot part's deflate (``live`` in it: a gzip body made ahead is packed whole) and
    ``fresh`` compressed, with one CRC over all."""
    if not gzip:
        assert isinstance(joined, Joined)  # a plain body is kept whole (Ahead packs only gzip ones)
        return joined.size + len(live) + len(fresh), itertools.chain(joined.pieces(), (live, fresh))
    assert not live, "a gzip body's live part is packed with it (Joined.packed)"
    parts = [GZIP_HEADER, *joined.deflated(), gzip_tail(fresh, joined.crc(), joined.size)]
    return sum(map(len, parts)), parts
