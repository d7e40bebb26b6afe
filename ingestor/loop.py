"""Run coroutines on uvloop when it is installed (it is on Linux), else on asyncio's own loop;
the tasks a process runs for its life, and the rounds a periodic task works in."""

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


def start_tasks(
    coros: dict[str, Coroutine[Any, Any, None]], on_failure: Callable[[asyncio.Task[None]], None]
) -> list[asyncio.Task[None]]:
    """Start each coroutine as a task named by its key, in order. `on_failure(task)` runs when one
    ends with an exception (these tasks must not: the caller logs it and stops); a task that is
    cancelled or returns is left alone."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in coros.items()]

    def ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            on_failure(task)

    for task in tasks:
        task.add_done_callback(ended)
    return tasks


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
