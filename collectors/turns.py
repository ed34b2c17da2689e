"""Waiting for a turn, the urgent first: the queue under a session's lock (collectors/base.py) and a server's
gate (agent/pressure.py).

Each waiter is a future, done when it is granted its turn. Urgent waiters (a target's main collector, the one
its ``up`` comes from) are granted before the others; each kind in the order it came. A turn is handed to the
next waiter directly, so nobody arriving meanwhile can jump the queue.
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["Turns"]


class Turns:
    def __init__(self) -> None:
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._others: collections.deque[asyncio.Future[None]] = collections.deque()

    def __bool__(self) -> bool:
        return bool(self._urgent or self._others)

    @property
    def urgent_waiting(self) -> int:
        """Urgent waiters in the queue (one given up leaves it, see :meth:`remove`)."""
        return len(self._urgent)

    def wait(self, urgent: bool = False) -> asyncio.Future[None]:
        """A place in the queue: the future is done when the turn is granted (see :meth:`grant_next`)."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._others).append(turn)
        return turn

    def promote(self, turn: asyncio.Future[None]) -> None:
        """A waiter becomes urgent (keeping its place among the urgent ones from now)."""
        if turn in self._others:
            self._others.remove(turn)
            self._urgent.append(turn)

    def remove(self, turn: asyncio.Future[None]) -> None:
        """A waiter that gave up leaves the queue (it may already have been skipped)."""
        for queue in (self._urgent, self._others):
            if turn in queue:
                queue.remove(turn)

    def grant_next(self) -> bool:
        """Grant the turn to the next waiter still waiting; False when there is none (the cancelled ones are
        dropped on the way)."""
        while self._urgent or self._others:
            turn = (self._urgent or self._others).popleft()
            if not turn.done():
                turn.set_result(None)
                return True
        return False
