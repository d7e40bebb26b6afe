"""The delivery process: spool -> `NetwrixClient` -> delivered rows deleted, rejected ones quarantined.

`nwsyslog run` delivers from a process of its own. In the listening process, delivery (reading
the spool, batching, HTTP, settling) took ~12% of the one thread that also receives, parses and
maps every message, and that thread is what caps the loss-free rate; here it runs on another
core. The two processes share the spool file (SQLite takes their writes in turn, and each reads
the totals after its own commit) and one pipe. `DeliveryProcess` is the listening process's
handle; `Deliverer` runs in the delivery process.

Messages on the pipe:

    listening -> delivery   ("reload", NetwrixConfig | None)  new settings for the next connection
                                                               (None: the same); a halt is retried now
                            ("stop", timeout)                  flush for up to `timeout` s, then exit
    delivery -> listening   ("ready",) | ("failed", "config" | "startup", reason)
                                                               once, at start
                            ("report", DeliveryStats, halted, [(records, SendResult), ...],
                             delete_failures, retrying, halted_since)
                                                               every REPORT_INTERVAL s, and at once
                                                               when delivery halts or resumes;
                                                               retrying: (since, reason) while writes
                                                               fail, halted_since: when the halt
                                                               began (wall clock, epoch seconds)
                            ("stopped", left, waiting)         records taken but not acknowledged,
                                                               and all records the spool still holds

The delivery process reads committed records in key order (looking again every `POLL` seconds once
it has read them all: the listening process commits every 50 ms), hands them to the client,
which batches and retries, and commits the ids delivered and quarantined every `WRITE_INTERVAL`
seconds. A record leaves the spool only after the server said 200 (or is moved to the
quarantine with the server's reason); if the process dies, what it had not deleted is sent again
by the next one (at least once, never lost). If delivery halts (401, 403, 404, a certificate
problem) the rows stay spooled; a new client starts after `HALT_RETRY` seconds or on reload,
reading the spool from the start. Failed writes are one `Trouble` across the process's successive
clients (`ingestor.netwrix.delivery` logs it); a quarantined record is logged once stored, by the
spool id `nwsyslog spool list` shows and `nwsyslog spool retry` takes.

It ignores SIGINT, SIGTERM and SIGHUP (a terminal's Ctrl-C and systemd signal the whole group):
the listening process says when to stop and passes reloads on; when that process is gone (the
pipe closes) it stops by itself, flushing for `shutdown_timeout` seconds.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .errors import ConfigError, StartupError
from .logs import LogFormat, setup_logging
from .loop import rounds, run, start_tasks
from .netwrix.batcher import Entry, entry_from_row, entry_key
from .netwrix.client import NetwrixClient
from .netwrix.config import BatchConfig, NetwrixConfig
from .netwrix.delivery import TROUBLE_LOG_EVERY, DeliveryStats
from .netwrix.sink import SendResult
from .spool import Spool, SpoolOptions
from .spool_health import Reserve, is_disk_full
from .trouble import Trouble, duration

log = logging.getLogger("nwsyslog.delivery")

READ_CHUNK = 1000  # rows read at a time
POLL = 0.05  # seconds between looks at the spool once everything in it was read
WRITE_INTERVAL = 0.05  # seconds between commits of delivered and quarantined ids
REPORT_INTERVAL = 0.5  # seconds between reports to the listening process
HALT_RETRY = 60.0  # seconds before a halted delivery is tried again
COMMIT_RETRY_MIN, COMMIT_RETRY_MAX = 0.25, 5.0  # backoff between attempts while the spool refuses a commit
FAIL_LOG_EVERY = 60.0  # seconds between "still failing" log lines
SWAP_TIMEOUT = 5.0  # seconds the old client may finish its requests when new settings arrive
START_TIMEOUT = 120.0  # seconds the listening process waits for the delivery process to be ready
STOP_GRACE = 30.0  # seconds beyond the flush timeout before the delivery process is killed

RequestReport = tuple[int, SendResult]


@dataclass(frozen=True)
class DeliverySettings:
    """What the delivery process needs (pickled to it at start)."""

    spool_path: Path
    spool_options: SpoolOptions
    netwrix: NetwrixConfig
    batching: BatchConfig
    shutdown_timeout: float
    log_level: str = "info"
    log_format: LogFormat = "text"
    # The listening process sends its spool lock (`ingestor.spool_lock`) over the pipe first, and
    # the delivery process keeps it open: the lock then holds until both have ended.
    shares_lock: bool = False


# --------------------------------------------------------------------------------------------
# The listening process's side


class DeliveryProcess:
    """Starts the delivery process and follows it: its counters, whether it is halted (and since
    when) or retrying failed writes, and each request for the metrics (`on_request`). `ended` is
    set when the process is gone."""

    def __init__(
        self,
        settings: DeliverySettings,
        *,
        on_request: Callable[[int, SendResult], None] | None = None,
        lock_fd: int | None = None,
    ) -> None:
        """`lock_fd`: the spool's locked lock file, for the process to hold too (`settings.shares_lock`)."""
        if settings.shares_lock != (lock_fd is not None):
            raise ValueError("settings.shares_lock says whether a lock_fd is given")
        self.settings = settings
        self._lock_fd = lock_fd
        self.stats = DeliveryStats()
        self.halted: str | None = None
        self.halted_since: float | None = None  # when the halt began (epoch seconds), while halted
        # While writes fail and are retried: (since when, epoch seconds; the last failure's reason).
        self.retrying: tuple[float, str] | None = None
        self.left: int | None = None  # from its "stopped" message: records taken, not acknowledged
        self.waiting: int | None = None  # from its "stopped" message: records the spool holds
        self.delete_failures = 0  # its failed commits of delivered ids (from its reports)
        self.last_heard = time.monotonic()  # when it last sent anything (the watchdog reads it)
        self.ended = asyncio.Event()
        self._on_request = on_request
        self._process: Any = None  # multiprocessing's SpawnProcess
        self._conn: Connection | None = None
        self._ready: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int | None:
        """The delivery process's id, once started."""
        return self._process.pid if self._process is not None else None

    @property
    def exitcode(self) -> int | None:
        """The process's exit code once it ended (negative: the signal that killed it)."""
        return self._process.exitcode if self._process is not None else None

    async def start(self) -> None:
        """Start the process and wait until it has opened the spool and started its client;
        raises StartupError with its reason if it could not."""
        context = multiprocessing.get_context("spawn")  # not fork: this process has threads
        conn, theirs = context.Pipe()
        self._process = context.Process(target=_main, args=(theirs, self.settings), name="nwsyslog-delivery")
        self._process.start()
        theirs.close()
        self._conn = conn
        if self._lock_fd is not None:
            reduction.send_handle(conn, self._lock_fd, self._process.pid)
        # If this process exits without stopping it (an unexpected error), multiprocessing's
        # exit handler waits for it, and it waits for the pipe to close: close it first (exit
        # handlers run last-registered first), and it stops by itself.
        atexit.register(self._close_pipe)
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        loop.add_reader(conn.fileno(), self._readable)
        try:
            await asyncio.wait_for(self._ready, START_TIMEOUT)
        except BaseException:
            await self.stop(0)
            raise

    async def reap(self) -> int | None:
        """Once `ended`: wait (up to 5 s) for the process to exit; its exit code."""
        if self._process is not None:
            await asyncio.to_thread(self._process.join, 5)
        return self.exitcode

    def kill(self) -> None:
        """SIGKILL the process (a stalled one: SIGSTOPped or hung; its locks go with it)."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    def reload(self, netwrix: NetwrixConfig | None) -> None:
        """Pass new Netwrix settings on (None: the same), and retry a halted delivery now."""
        self._send(("reload", netwrix))

    async def stop(self, timeout: float) -> int | None:
        """Let it flush for up to `timeout` seconds and exit; returns how many records it had
        taken and not delivered (they stay spooled), None if it did not say. `waiting` then holds
        how many records the spool keeps in all (None if it did not say)."""
        self._send(("stop", timeout))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout + STOP_GRACE)
        process = self._process
        if process is not None:
            await asyncio.to_thread(process.join, 5)
            if process.is_alive():
                log.error("the delivery process did not stop; killing it (what it held stays spooled)")
                process.kill()
                await asyncio.to_thread(process.join)
        self._close()
        return self.left

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._conn is not None and not self.ended.is_set():
            with contextlib.suppress(OSError):
                self._conn.send(message)

    def _readable(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while conn.poll():
                self._dispatch(conn.recv())
                self.last_heard = time.monotonic()
        except (EOFError, OSError):
            self._gone()

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "report":
            _, self.stats, self.halted, requests, self.delete_failures, self.retrying, self.halted_since = message
            if self._on_request is not None:
                for records, result in requests:
                    self._on_request(records, result)
        elif kind == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif kind == "failed":
            if self._ready is not None and not self._ready.done():
                _, what, reason = message
                self._ready.set_exception(ConfigError(reason) if what == "config" else StartupError(reason))
        elif kind == "stopped":
            _, self.left, self.waiting = message

    def _gone(self) -> None:
        if self._conn is not None:
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
        self.ended.set()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(StartupError("the delivery process ended while starting"))

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
        self._close_pipe()
        atexit.unregister(self._close_pipe)
        self.ended.set()

    def _close_pipe(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --------------------------------------------------------------------------------------------
# The delivery process's side


def _main(conn: Connection, settings: DeliverySettings) -> None:
    """The delivery process's entry point."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    setup_logging(settings.log_level, settings.log_format)
    # Held open (never read) for the process's life: the spool lock stays taken while it runs.
    lock_fd = reduction.recv_handle(conn) if settings.shares_lock else None
    try:
        run(Deliverer(conn, settings).run())
    finally:
        if lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(lock_fd)


class Deliverer:
    """Feeds spooled rows to a `NetwrixClient` and commits what it settled; see the module docstring."""

    def __init__(self, conn: Connection, settings: DeliverySettings) -> None:
        self.settings = settings
        self.netwrix = settings.netwrix
        self.spool: Spool | None = None
        self.client: NetwrixClient | None = None
        self._conn = conn
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nwsyslog-spool")
        self._delivered: list[int] = []
        self._quarantines: list[tuple[int, bytes, str]] = []
        self._requests: list[RequestReport] = []
        self._halted: str | None = None
        self._halt_began: float | None = None  # (epoch seconds) until something is delivered again
        self._trouble = Trouble(log_every=TROUBLE_LOG_EVERY, quiet_repeats=True)  # failed writes, all clients
        self._refreshing: asyncio.Future[None] | None = None
        self._wake_writer = asyncio.Event()
        self._reloaded = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_timeout = settings.shutdown_timeout
        self._closing = False  # the writer's last round
        self._caught_up = asyncio.Event()  # stopping, the feeder read everything (or delivery halted)
        # A commit the spool refused (disk full, I/O error, locked): its ids wait, retried with
        # backoff; delivered records are never sent again by this process meanwhile.
        self._delete_failures = 0
        self._commit_trouble = Trouble(
            backoff_min=COMMIT_RETRY_MIN, backoff_max=COMMIT_RETRY_MAX, log_every=FAIL_LOG_EVERY
        )
        self._read_trouble = Trouble(backoff_min=1.0, backoff_max=1.0, log_every=FAIL_LOG_EVERY)
        self._swap = False  # new Netwrix settings: a new client for the next request

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def run(self) -> None:
        """Open the spool, start the client, deliver until told to stop (or the pipe closes)."""
        settings = self.settings
        try:
            self.spool = await self._in_db(lambda: Spool(settings.spool_path, **settings.spool_options))
            self.client = self._new_client()
            await self.client.start()
        except ConfigError as exc:  # (NTLM without its extra): the same exit code 2 as in one process
            self._send(("failed", "config", str(exc)))
            await self._close()
            return
        except Exception as exc:
            self._send(("failed", "startup", f"the delivery process could not start: {exc}"))
            await self._close()
            return
        self._send(("ready",))
        loop = asyncio.get_running_loop()
        loop.add_reader(self._conn.fileno(), self._readable)
        tasks = start_tasks(
            {
                "nwsyslog-feeder": self._feeder(),
                "nwsyslog-report": self._reporter(),
                "nwsyslog-delete": self._writer(),
            },
            self._task_failed,
        )
        await self._stop.wait()
        loop.remove_reader(self._conn.fileno())
        left, waiting = await self._shutdown(tasks)
        self._report()
        self._send(("stopped", left, waiting))
        self._conn.close()

    def _new_client(self) -> NetwrixClient:
        return NetwrixClient(
            self.netwrix,
            self.settings.batching,
            quarantine=self,
            on_delivered=self._on_delivered,
            on_request=self._on_request,
            trouble=self._trouble,
            waiting=self._waiting,
        )

    def _waiting(self) -> int:
        """Records waiting to be delivered: the spool's count (read again while writes fail; until
        then at least the records the client holds)."""
        unsettled = self.client.unsettled if self.client is not None else 0
        return max(self.spool.records, unsettled) if self.spool is not None else unsettled

    # --- the pipe -------------------------------------------------------------------------
    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._conn.send(message)
        except OSError:  # the listening process is gone: stop (what was not deleted is resent)
            self._stop.set()

    def _readable(self) -> None:
        try:
            while self._conn.poll():
                kind, value = self._conn.recv()
                if kind == "reload":
                    if value is not None and value != self.netwrix:
                        self.netwrix = value
                        self._swap = True  # the feeder replaces the client before its next read
                    self._reloaded.set()
                elif kind == "stop":
                    self._stop_timeout = value
                    self._stop.set()
        except (EOFError, OSError):
            log.warning("the listening process is gone; stopping delivery")
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self._stop.set()

    def _take_requests(self) -> list[RequestReport]:
        requests, self._requests = self._requests, []
        return requests

    async def _reporter(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            if self._trouble.failing:
                self._refresh_counts()
            self._report()

    def _refresh_counts(self) -> None:
        """While writes fail nothing is committed here, so the spool's count of waiting records
        (for the log lines) is read again in the spool thread; not awaited (a locked spool must
        not hold up the reports), one read at a time."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().run_in_executor(self._db, self._refresh_quietly)

    def _refresh_quietly(self) -> None:
        spool = self.spool
        if spool is not None:
            with contextlib.suppress(sqlite3.Error, OSError):  # (the commits say so when the spool fails)
                spool.refresh()

    def _report(self) -> None:
        assert self.client is not None
        trouble = self._trouble
        retrying = (trouble.since_wall, trouble.reason) if trouble.reason is not None else None
        halted_since = self._halt_began if self._halted is not None else None
        self._send(
            (
                "report",
                self.client.stats,
                self._halted,
                self._take_requests(),
                self._delete_failures,
                retrying,
                halted_since,
            )
        )

    # --- client callbacks: they only queue ids; the writer commits them ---------------------
    def _on_delivered(self, entries: Sequence[Entry]) -> None:
        self._delivered.extend(map(entry_key, entries))  # type: ignore[arg-type]  # (spool record keys; C-level, per record)
        self._halt_began = None
        self._wake_writer.set()

    def _on_request(self, records: int, result: SendResult) -> None:
        self._requests.append((records, result))

    def put(self, entry: Entry, reason: str) -> None:
        """The client's quarantine: moved to the spool's quarantine table by the writer, which
        logs it by its quarantine id."""
        self._quarantines.append((entry.key, entry.data, reason))  # type: ignore[arg-type]
        self._wake_writer.set()

    def _task_failed(self, task: asyncio.Task[None]) -> None:
        """A task failed: say so and stop (the spool keeps everything not yet delivered; the
        listening process sees this process end)."""
        log.critical("%s failed; stopping delivery", task.get_name(), exc_info=task.exception())
        self._stop_timeout = 0
        self._stop.set()

    # --- tasks ----------------------------------------------------------------------------
    async def _writer(self) -> None:
        # Never cancelled (it would forget delivered ids, whose records would be sent again).
        await rounds(self._commit, self._wake_writer, WRITE_INTERVAL, lambda: self._closing)

    async def _commit(self, force: bool = False) -> None:
        """Delete the delivered ids and move the quarantined records, in one transaction. A
        refused commit keeps them for the next attempt (after a backoff; `force`: now)."""
        assert self.spool is not None
        if not (self._delivered or self._quarantines):
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        trouble = self._commit_trouble
        if not force and not trouble.due(now):
            return
        deletes, self._delivered = self._delivered, []
        quarantines, self._quarantines = self._quarantines, []
        try:
            ids = await self._in_db(self.spool.apply, (), deletes, quarantines)
        except (sqlite3.Error, OSError) as exc:
            self._delivered[:0] = deletes
            self._quarantines[:0] = quarantines
            self._delete_failures += 1
            if trouble.failed(exc, now):
                if trouble.attempts == 1:
                    log.error(
                        "cannot commit %d delivered records to the spool (%s): kept in memory, not sent again; "
                        "retrying",
                        len(self._delivered),
                        trouble.reason,
                    )
                else:
                    log.error(
                        "still cannot commit to the spool after %s (%s): %d delivered records wait",
                        duration(trouble.lasted(now)),
                        trouble.reason,
                        len(self._delivered),
                    )
            if is_disk_full(exc) and Reserve(self.settings.spool_path).release():
                log.warning("disk full: released the reserve beside the spool so that deletions can proceed")
            return
        for (_, _, reason), quarantine_id in zip(quarantines, ids, strict=True):
            log.error(
                "record quarantined as spool id %d (`nwsyslog spool list` shows it, `nwsyslog spool retry %d` "
                "sends it again): %s",
                quarantine_id,
                quarantine_id,
                reason,
            )
        if trouble.recovered(now) is not None:
            log.warning("the spool takes commits again: %d delivered records settled", len(deletes))

    async def _feeder(self) -> None:
        assert self.spool is not None
        last_key = 0
        while True:
            client = self.client
            assert client is not None
            if client.error is not None:
                last_key = await self._recover(client)
                continue
            if self._swap:
                last_key = await self._swap_client(client)
                continue
            stopping = self._stop.is_set()  # (a read begun before the stop may miss the last commit)
            try:
                rows = await self._in_db(self._read, last_key)
            except (sqlite3.Error, OSError) as exc:
                now = asyncio.get_running_loop().time()
                if self._read_trouble.failed(exc, now):
                    log.error("cannot read the spool (%s); retrying", self._read_trouble.reason)
                if stopping:
                    self._caught_up.set()
                await asyncio.sleep(self._read_trouble.backoff)
                continue
            if self._read_trouble.failing:
                episode = self._read_trouble.recovered(asyncio.get_running_loop().time())
                assert episode is not None
                log.warning("the spool can be read again after %s", duration(episode.lasted))
            if not rows:
                if stopping:
                    self._caught_up.set()
                await asyncio.sleep(POLL)
                continue
            entries = list(map(entry_from_row, rows))
            taken = await client.submit_entries(entries)
            if taken:
                last_key = entries[taken - 1].key  # type: ignore[assignment]  # a spool record key

    def _read(self, last_key: int) -> list[tuple[int, bytes]]:
        """(Spool thread.) The next rows to send, and the spool's counts with them (what the log
        lines about failed writes say waits)."""
        assert self.spool is not None
        rows = self.spool.read_after(last_key, READ_CHUNK)
        self.spool.refresh()
        return rows

    async def _recover(self, client: NetwrixClient) -> int:
        """After a halt: keep everything spooled, wait, then start over with a new client."""
        self._halted = str(client.error)
        if self._halt_began is None:  # (a halt that persists after the retry began with the first)
            self._halt_began = time.time()
        self._caught_up.set()  # nothing more is read until it resumes
        self._report()
        log.error(
            "delivery halted: %s. Every record stays in the spool; retrying in %.0f s or on SIGHUP",
            client.error,
            HALT_RETRY,
        )
        await client.aclose(timeout=0)
        if not self._swap:  # (new settings that came just before the halt: tried at once)
            self._reloaded.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reloaded.wait(), HALT_RETRY)
        self._swap = False
        await self._commit()  # deletions of what was delivered before the halt, so it is not resent
        self.client = self._new_client()
        await self.client.start()
        self._halted = None
        self._report()
        return 0

    async def _swap_client(self, client: NetwrixClient) -> int:
        """New Netwrix settings while delivering: let the requests under way finish (up to
        SWAP_TIMEOUT s), commit what settled, and go on with a client built from the new
        settings, from the start of the spool (what the old one did not settle is sent by the
        new one)."""
        self._swap = False
        log.info("Netwrix settings reloaded: finishing the requests under way, then using the new settings")
        left = await client.aclose(timeout=SWAP_TIMEOUT)
        await self._commit(force=True)
        self.client = self._new_client()
        await self.client.start()
        self._report()
        log.warning(
            "new Netwrix settings in effect from the next request (%s); %d records the old client had not settled "
            "are sent with them",
            self.netwrix.write_url,
            len(left),
        )
        return 0

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> tuple[int, int | None]:
        """Within the stop timeout: read what is spooled now (the listening process committed
        its last records before asking), let the client deliver it (the writer deletes what
        lands), then commit and close. Whatever is left stays spooled. Returns how many records
        the client had taken and not settled, and how many the spool holds in all (None if it
        could not be read)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout
        if self._halted is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._caught_up.wait(), self._stop_timeout)
        for task in tasks[:2]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = 0
        if self.client is not None:
            left = len(await self.client.aclose(timeout=max(0.0, deadline - loop.time())))
        self._closing = True
        self._wake_writer.set()
        await tasks[2]
        while True:
            await self._commit(force=True)
            if not self._commit_trouble.failing or loop.time() >= deadline:
                break
            await asyncio.sleep(0.5)
        if self._delivered:
            log.error(
                "%d delivered records could not be marked delivered in the spool (%s): the next start sends them again",
                len(self._delivered),
                self._commit_trouble.reason,
            )
        waiting: int | None = None
        if self.spool is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                await self._in_db(self.spool.refresh)  # (the listening process's last commit too)
                waiting = self.spool.records
        await self._close()
        return left, waiting

    async def _close(self) -> None:
        if self.spool is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                await self._in_db(self.spool.close)
            self.spool = None
        self._db.shutdown(wait=True)
