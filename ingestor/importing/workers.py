"""Worker processes that map an import's chunks (`nwsyslog import --jobs N`).

Parsing and rule matching are most of an import's work, and pure: each chunk's records depend
on its lines only. So N worker processes map chunks (`LineMapper.map`) while this process reads
the files, dates their lines and commits the results in file order, exactly as a one-process
import would (`Importer` takes the results the same way from either).

The workers are forked, so they start with the rule set this process loaded (nothing is
pickled but chunks and their results), and they ignore SIGINT: an interrupted import is this
process's to end, after which what it committed stays committed. Fork is only safe in a
process with one thread: `MapPool.usable()` says whether this one is (the import creates its
pool before anything starts a thread).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime, tzinfo
from typing import Any, TypeVar

from .files import Stamps, stamps
from .mapper import Chunk, LineMapper, Mapped, batched

T = TypeVar("T")
STAMP_LINES = 5000  # lines per part of the year pass a worker reads

_MAPPER: LineMapper | None = None  # in a worker: the mapper it inherited


def _start(mapper: LineMapper) -> None:
    global _MAPPER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _MAPPER = mapper


def _map(chunk: Chunk) -> Mapped:
    if _MAPPER is None:  # pragma: no cover - a worker always starts with one
        raise RuntimeError("import worker started without its mapper")
    return _MAPPER.map(chunk)


def _stamps(lines: list[tuple[int, bytes]], tz: tzinfo, received: datetime) -> Stamps:
    return stamps(lines, tz=tz, received=received)


def default_jobs() -> int:
    """Worker processes by default: the cores this process may run on (one core: none)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # (not Linux)
        cores = os.cpu_count() or 1
    return cores


class MapPool:
    """`jobs` forked workers mapping chunks, results in the order of the chunks."""

    def __init__(self, mapper: LineMapper, jobs: int) -> None:
        self.jobs = jobs
        # What the workers inherit (the rule set: ~100k objects) is frozen out of the cyclic
        # collector first: its scans in each worker would otherwise write to every inherited
        # page, copying them all, and cost each worker what they cost the service.
        gc.freeze()
        try:
            self._executor = ProcessPoolExecutor(
                jobs, mp_context=multiprocessing.get_context("fork"), initializer=_start, initargs=(mapper,)
            )
            self._executor.submit(int).result()  # (the executor forks all its workers at its first call)
        finally:
            gc.unfreeze()

    @staticmethod
    def usable() -> bool:
        """Whether workers can be forked here: a POSIX system, and one thread in this process."""
        return (
            sys.platform != "win32"
            and "fork" in multiprocessing.get_all_start_methods()
            and (threading.active_count() == 1)
        )

    def map(self, chunks: Iterable[Chunk]) -> Iterator[Mapped]:
        """Each chunk's result, in order."""
        return self._ordered(_map, ((chunk,) for chunk in chunks))

    def stamps(self, lines: Iterable[tuple[int, bytes]], tz: tzinfo, received: datetime) -> Iterator[Stamps]:
        """The year pass (`files.stamps`) over parts of STAMP_LINES lines, in order (the
        `parts` of `files.years`)."""
        return self._ordered(_stamps, ((part, tz, received) for part in batched(lines, STAMP_LINES)))

    def _ordered(self, fn: Callable[..., T], calls: Iterable[tuple[Any, ...]]) -> Iterator[T]:
        """`fn(*args)` for each of `calls` in the workers, results in order; at most two calls
        per worker are read ahead."""
        pending: deque[Future[T]] = deque()
        for args in calls:
            pending.append(self._executor.submit(fn, *args))
            if len(pending) >= 2 * self.jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        """Stop the workers (chunks not yet mapped are dropped: nothing of theirs was committed)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
