"""Follow a growing log file the way ``tail -F`` does, with an offset that survives a restart.

A :class:`LogFollower` reads a file in bounded chunks and hands complete lines to a :class:`LineParser`,
which keeps the unfinished record (the last event may still be in the writer's buffer). The offset it saves
is the start of that unfinished record, so after a restart nothing is read twice and nothing is lost.

A file is known by its inode *and* the hash of its first bytes (``head``), which covers every rotation:

- rename (logrotate ``create``, MariaDB ``FLUSH SLOW LOGS`` after a ``mv``): the open descriptor is read to
  its end, then the new file at the path is read from its start;
- copytruncate: the inode stays but the file shrinks or starts differently; the copy (a sibling named
  ``<name>.*`` whose head matches) is read from the old offset to its end first, so lines written between
  the last read and the copy are not lost, then the truncated file is read from its start;
- plain truncation (``: > slow.log``): read again from the start;
- restart after a rotation: the saved head is searched among the siblings the same way.

Memory is bounded: at most ``chunk_size`` bytes are read at a time, a line longer than ``max_record``
bytes is dropped (and counted), and the parser drops records larger than that.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

__all__ = ["LineParser", "LogFollower", "ReadStats"]

E = TypeVar("E")

HEAD_BYTES = 4096
CHUNK_SIZE = 1 << 20
MAX_RECORD = 1 << 20


class LineParser(abc.ABC, Generic[E]):
    """Turns complete lines into events, keeping the record that may not be finished yet."""

    #: records that could not be parsed, too large, or not valid UTF-8 (cumulative)
    skipped: int = 0

    @abc.abstractmethod
    def feed(self, text: str) -> list[E]:
        """Parse ``text`` (whole lines); return the events whose records are known to be complete."""

    @abc.abstractmethod
    def flush(self) -> list[E]:
        """The end of the file was reached and the writer is quiet: the kept record is complete."""

    @abc.abstractmethod
    def pending(self) -> str:
        """The text of the kept, unfinished record."""

    def pending_looks_complete(self) -> bool:
        """Whether the kept record can be counted now rather than at the next poll."""
        return True

    def idle(self) -> list[E]:
        """A poll found nothing new: the writer is quiet, so the kept record is usually complete."""
        return self.flush()

    @abc.abstractmethod
    def discard_pending(self) -> None:
        """Drop the kept record (one of its lines was too long to keep)."""


@dataclass(slots=True)
class ReadStats:
    bytes_read: int = 0
    rotations: int = 0
    truncations: int = 0
    lines_dropped: int = 0  # lines longer than max_record
    files: list[str] = field(default_factory=list)


class LogFollower(Generic[E]):
    """Follows ``path``; :meth:`poll` returns the events of what was appended since the last poll."""

    def __init__(self, path: str | os.PathLike[str], parser: LineParser[E], state_file: str | None = None,
                 from_beginning: bool = False, chunk_size: int = CHUNK_SIZE, max_record: int = MAX_RECORD) -> None:
        self.path = Path(path)
        self.parser = parser
        self.state_file = Path(state_file) if state_file else None
        self.from_beginning = from_beginning
        self.chunk_size = chunk_size
        self.max_record = max_record
        self.stats = ReadStats()
        self._fh: Any = None
        self._ino: tuple[int, int] | None = None
        self._pos = 0  # where the next read starts
        self._partial = b""  # bytes after the last newline read
        self._discarding = False  # inside an overlong line
        self._head = b""  # the first bytes of the file (up to HEAD_BYTES), to recognise it
        self._saved: dict[str, Any] | None = None
        self.save_error: str | None = None  # why the last offset could not be saved (None: it was)
        self._started = False
        self._sink: Callable[[list[E]], None] = lambda events: None

    @property
    def offset(self) -> int:
        """Where a restarted follower resumes: the start of the first byte not yet turned into an event."""
        return self._pos - len(self._partial) - len(self.parser.pending().encode("utf-8", "surrogateescape"))

    def poll(self, sink: Callable[[list[E]], None], max_bytes: int = 64 << 20) -> int:
        """Read at most ``max_bytes`` new bytes (the rest waits for the next poll); their events go to
        ``sink`` a chunk at a time, so memory stays bounded whatever the backlog. Returns the bytes read."""
        self._sink = sink
        budget = max_bytes
        if not self._started:
            self._started = True
            self._open_first()
        while True:
            if self._fh is not None and self._truncated(os.fstat(self._fh.fileno()).st_size):
                # checked before reading: a file truncated and grown again must not be read from the old offset
                if not self._catch_up_copy() and self._partial:
                    self._partial = b""  # the last record was cut by the truncation: it is not counted
                    self.parser.discard_pending()
                self._finish_file()
                self._open(0)
                self.stats.truncations += 1
            budget -= self._read(budget)
            if budget <= 0:
                break
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                break  # rotated away and not yet re-created: keep the old descriptor
            if self._fh is None or (st.st_dev, st.st_ino) != self._ino:
                self._read(1 << 62)  # what the writer appended before it reopened
                self._finish_file()
                if not self._open(0):
                    break
                self.stats.rotations += 1
                continue
            break
        read = max_bytes - budget
        if not self._partial and self.parser.pending():
            if not read:
                sink(self.parser.idle())
            elif self.parser.pending_looks_complete():
                sink(self.parser.flush())
        self.save()
        return read

    def finish(self, sink: Callable[[list[E]], None]) -> None:
        """The writer is done (an offline read): the last line and the last record are complete."""
        self._sink = sink
        self._finish_file()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def save(self) -> None:
        """Persist the offset (atomically; only when it changed)."""
        if self.state_file is None:
            return
        dev, ino = self._ino if self._fh is not None and self._ino else (0, 0)
        head = self._head if self._fh is not None else b""
        state = {"path": str(self.path), "dev": dev, "ino": ino, "offset": self.offset if self._fh else 0,
                 "head_len": len(head), "head_sha1": hashlib.sha1(head).hexdigest()}
        if state == self._saved:
            return
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.state_file)
        except OSError as exc:  # a full or read-only state directory: following goes on, saved at the next poll
            self.save_error = exc.strerror or type(exc).__name__
            return
        self._saved = state
        self.save_error = None

    # -- opening and identity -----------------------------------------------------------------------------

    def _open_first(self) -> None:
        """First poll: resume from the saved state (finishing a rotated file first), else start fresh."""
        state = self._load()
        if state is not None:
            if self._open(None) and self._matches(state):
                self._seek(state["offset"])
                return
            self.close()
            rotated = self._find_sibling(state) if state["head_len"] else None
            if rotated is not None:
                self._drain(rotated, state["offset"])
            self._open(0)
            return
        if self._open(None):
            self._seek(0 if self.from_beginning else os.fstat(self._fh.fileno()).st_size)

    def _open(self, offset: int | None) -> bool:
        self.close()
        try:
            self._fh = open(self.path, "rb")
        except FileNotFoundError:
            return False
        st = os.fstat(self._fh.fileno())
        self._ino = (st.st_dev, st.st_ino)
        self._head = self._fh.read(HEAD_BYTES)
        self._partial, self._discarding = b"", False
        if offset is not None:
            self._seek(offset)
        return True

    def _seek(self, offset: int) -> None:
        self._fh.seek(offset)
        self._pos = offset
        self._partial, self._discarding = b"", False

    def _matches(self, state: dict[str, Any]) -> bool:
        head = self._head[: state["head_len"]]
        return bool(os.fstat(self._fh.fileno()).st_ino == state["ino"] and len(head) == state["head_len"]
                    and hashlib.sha1(head).hexdigest() == state["head_sha1"]
                    and os.fstat(self._fh.fileno()).st_size >= state["offset"])

    def _truncated(self, size: int) -> bool:
        if size < self._pos:
            return True
        if len(self._head) == HEAD_BYTES:
            return os.pread(self._fh.fileno(), HEAD_BYTES, 0) != self._head
        current = os.pread(self._fh.fileno(), len(self._head), 0)
        return current != self._head

    def _find_sibling(self, state: dict[str, Any]) -> Path | None:
        """A rotated copy of the file the state was saved for: same first bytes, at least as long."""
        try:
            siblings = [p for p in self.path.parent.iterdir()
                        if p.name.startswith(self.path.name + ".") and p.is_file()]
        except OSError:
            return None
        siblings.sort(key=lambda p: (os.stat(p).st_ino != state["ino"], p.name))
        for candidate in siblings:
            try:
                with open(candidate, "rb") as fh:
                    head = fh.read(state["head_len"])
                    size = os.fstat(fh.fileno()).st_size
            except OSError:
                continue
            if hashlib.sha1(head).hexdigest() == state["head_sha1"] and size >= state["offset"]:
                return candidate
        return None

    # -- reading ------------------------------------------------------------------------------------------

    def _catch_up_copy(self) -> bool:
        """Copytruncate: what was written before the copy and not yet read is in the copy (a sibling with
        the same first bytes). Returns whether such a copy was found."""
        if not self._head:
            return False
        state = {"ino": -1, "head_len": len(self._head), "head_sha1": hashlib.sha1(self._head).hexdigest(),
                 "offset": self._pos}
        copy = self._find_sibling(state)
        if copy is None:
            return False
        fh, start, discarding = self._fh, self._pos - len(self._partial), self._discarding
        with open(copy, "rb") as self._fh:
            self._seek(start)
            self._discarding = discarding
            self._read(1 << 62)
        self._fh = fh
        return True

    def _drain(self, path: Path, offset: int) -> None:
        with open(path, "rb") as self._fh:
            self._seek(offset)
            self._read(1 << 62)
            self._finish_file()
        self._fh = None

    def _finish_file(self) -> None:
        """The end of a file that will not grow again: its last line and record are complete."""
        if self._partial and not self._discarding:
            self._sink(self.parser.feed(self._partial.decode("utf-8", "surrogateescape") + "\n"))
        self._partial = b""
        self._sink(self.parser.flush())

    def _read(self, budget: int) -> int:
        """Read up to ``budget`` bytes; complete lines go to the parser. Returns the bytes read."""
        if self._fh is None:
            return 0
        total = 0
        while total < budget:
            chunk = self._fh.read(min(self.chunk_size, budget - total))
            if not chunk:
                break
            total += len(chunk)
            self._pos += len(chunk)
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                self._keep_partial(chunk)
                continue
            data = self._partial + chunk[:cut] if self._partial else chunk[:cut]
            if self._discarding:
                data = data[data.find(b"\n") + 1:]
                self._discarding = False
            self._partial = b""
            self._keep_partial(chunk[cut:])
            self._sink(self.parser.feed(data.decode("utf-8", "surrogateescape")))
        self.stats.bytes_read += total
        if total and len(self._head) < HEAD_BYTES and self._fh is not None:
            self._head = os.pread(self._fh.fileno(), HEAD_BYTES, 0)
        return total

    def _keep_partial(self, tail: bytes) -> None:
        if self._discarding:
            return
        self._partial += tail
        if len(self._partial) > self.max_record:
            self._partial = b""
            self._discarding = True
            self.stats.lines_dropped += 1
            self.parser.skipped += 1
            self.parser.discard_pending()

    def _load(self) -> dict[str, Any] | None:
        if self.state_file is None:
            return None
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("path") != str(self.path):
            return None
        self._saved = state
        return state
