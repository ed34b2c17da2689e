"""The HTTP listener on a thread of its own: /metrics is answered there, everything else on the agent's loop.

Everything the agent does runs on one event loop, and a request waits behind whatever is ready before it: at
1,400 targets on a loaded 2-core machine that wait (``dbwatch_event_loop_lag_seconds``) averaged 36 ms, and a
fleet's plain body (68 MB) held the loop for a second while it was written. prometheus/client_python serves its
exposition from a thread for the same reason. Here the listener, its connections and the writing of every
response run on a second event loop in a thread (:class:`ServingThread`); a scrape whose body is ready (made
when its collection ended, exporters/target_exposition.py, or ahead of it, exporters/ahead.py) is answered there
without waiting for the agent's loop, and the bytes of any body go out from there.

A handler not marked :func:`on_serving_thread` (the API, the console, its actions) runs on the agent's loop, as
it always did: :func:`dispatch` reads the request's body on the serving thread first (so that the handler reads
it from memory), hands the handler to the agent's loop and waits for the response it returns, which the serving
thread then writes. Such handlers return their response whole; only serving-thread handlers stream one.

The interpreter's lock is shared: the thread gets it within the switch interval (5 ms) of asking, instead of
waiting for the loop's callbacks to end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, Coroutine, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from dbwatch.agent.httpconn import Handler

__all__ = ["ServingThread", "dispatch", "on_serving_thread"]

T = TypeVar("T")
_MARK = "_dbwatch_serving_thread"


def on_serving_thread(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a handler that may run on the serving thread: it reads only what the agent's loop publishes whole
    (immutable bytes, replaced rather than changed) and hands anything else to the agent's loop itself."""
    setattr(handler, _MARK, True)
    return handler


def dispatch(main: asyncio.AbstractEventLoop) -> Middleware:
    """The innermost middleware of the serving thread's application: handlers not marked
    :func:`on_serving_thread` run on ``main`` (the agent's loop), their request's body read before."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if getattr(handler, _MARK, False):
            return await handler(request)
        if request.body_exists:
            await request.read()  # kept by the request: the handler's text()/json()/post() read it from memory

        async def handled() -> web.StreamResponse:
            return await handler(request)

        return await on_loop(main, handled())

    return middleware


async def on_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on ``loop`` (another thread's) and wait for its result here; cancelling the wait
    cancels it there."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))


class ServingThread:
    """A daemon thread running an event loop of its own (uvloop's when the agent's is: the same factory)."""

    def __init__(self, name: str, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
        self.loop = (loop_factory or asyncio.new_event_loop)()
        self._ready = concurrent.futures.Future[None]()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.result(timeout=10)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set_result, None)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the thread's loop; await its result from another loop."""
        return await on_loop(self.loop, coroutine)

    async def stop(self) -> None:
        """Stop the loop (after what is scheduled on it) and wait for the thread to end."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.to_thread(self._thread.join, 10)
