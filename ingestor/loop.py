"""Run coroutines on uvloop when it is installed (it is on Linux), else on asyncio's own loop;
and the rounds a periodic task works in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's `new_event_loop` if importable, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` on the fastest available event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


async def rounds(
    work: Callable[[], Awaitable[None]], wake: asyncio.Event, interval: float, done: Callable[[], bool]
) -> None:
    """Await `work()` every `interval` seconds, or sooner when `wake` is set, until `done()` is
    true after a round. Meant to end that way rather than be cancelled: a round is never cut
    short (a spool commit cancelled before its turn in the spool thread would be lost)."""
    while not done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval)
        wake.clear()
        await work()
