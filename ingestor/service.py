"""`nwsyslog run`: listeners -> pipeline -> spool -> client, and the operations around them.

Data flows one way:

    sources --handle()--> Pipeline.pending --writer--> Spool (SQLite, one thread)
    Spool --feeder--> NetwrixClient --200--> writer deletes the rows
                                    --400/413 alone--> writer moves the row to quarantine

- The *writer* task commits what the pipeline produced every `WRITE_INTERVAL` seconds (sooner
  when a delivery or quarantine wakes it), together with the ids delivered and quarantined
  since, in one transaction. Only committed rows are ever read for sending, so a record is on disk before it
  can be sent, and it leaves the spool only after the server said 200.
- The *feeder* task reads committed rows in id order and hands them to the client, which batches
  and retries (forever by default: an outage only grows the spool). If delivery halts (401, 403,
  404, a certificate problem) the rows stay spooled; the feeder starts a new client after
  `HALT_RETRY` seconds or on SIGHUP, re-reading the spool from the start.
- On start, whatever a previous run left in the spool is sent first (same order).
- Memory is bounded: when `spool.max_in_memory` produced records wait for a commit (the spool
  cannot keep up), or the spool reaches its bound with overflow "block", the listeners pause.
  A paused UDP listener discards what arrives, counted; paused TCP connections are not read.

Signals: SIGTERM/SIGINT stop gracefully (stop listening, commit what was produced, give delivery
`shutdown_timeout` seconds, leave the rest spooled); SIGHUP re-reads the configuration file and
the rule files (a bad new set keeps the old one and says why), applies new Netwrix settings
(credentials, URL, TLS) to the next connection, and restarts a halted delivery with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parsers.rules.engine import RuleSet
from parsers.rules.loader import load_ruleset

from .batcher import Entry, entry_from_row, entry_key
from .client import NetwrixClient
from .config import ServiceConfig, load_service_config, parse_host_port
from .encoding import encoder_for
from .errors import ConfigError, StartupError
from .metrics import Metrics, Readings
from .pipeline import Pipeline
from .sources import AcceptList, Source, TcpSource, UdpSource, udp_drops
from .spool import Spool

log = logging.getLogger("nwsyslog.service")

WRITE_INTERVAL = 0.05  # seconds between spool commits (at most this much is only in memory)
READ_CHUNK = 1000  # rows the feeder reads at a time
# Committed records kept in memory for the feeder, by count and by bytes (beyond: read back).
FRESH_MAX, FRESH_MAX_BYTES = 20 * READ_CHUNK, 32 * 2**20
HALT_RETRY = 60.0  # seconds before a halted delivery is tried again
PAUSE_HIGH, PAUSE_LOW = 1.0, 0.9  # overflow "block": pause at the bound, resume below 90%
BACKLOG_LOG_EVERY = 60.0  # seconds between "overloaded" log lines


def _freeze_startup_objects(again: bool = False) -> None:
    """Keep what the service built to run (rules, models, clients: ~100k+ objects) out of the
    cyclic garbage collector's scans: a full collection then stopped the listener thread ~50 ms
    every few seconds at 40,000 msg/s. After a reload the old rule set is unreachable but frozen,
    so everything is thawed and collected once (one such pause per reload) before freezing again."""
    if again:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def default_spool_path() -> Path:
    """`$STATE_DIRECTORY/spool.db` (systemd's StateDirectory=) or ~/.local/state/nwsyslog/spool.db."""
    base = os.environ.get("STATE_DIRECTORY") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "nwsyslog"
    )
    return Path(base.split(":")[0]) / "spool.db"


def worker_path(path: Path, worker: int) -> Path:
    """Worker N > 0 of `--workers` keeps its own spool beside the configured one (spool-wN.db)."""
    return path if worker == 0 else path.with_name(f"{path.stem}-w{worker}{path.suffix}")


def load_rules(config: ServiceConfig) -> RuleSet:
    """The configured rule set; raises RuleError (a ConfigError) naming file, line and rule."""
    return load_ruleset(list(config.rules.paths), builtin=config.rules.builtin)


class Service:
    """One service process; `await run()` until `stop()` (or a signal, via `install_signals`)."""

    def __init__(
        self, config: ServiceConfig, *, worker: int = 0, reuse_port: bool = False, config_path: Path | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path  # re-read on SIGHUP
        self.worker = worker
        self.reuse_port = reuse_port
        self.encoder = encoder_for(config.netwrix.format)
        self.spool_path = worker_path(config.spool.path or default_spool_path(), worker)
        self.sources: list[Source] = []
        self.spool: Spool | None = None
        self.pipeline: Pipeline | None = None
        self.client: NetwrixClient | None = None
        self.netwrix = config.netwrix
        self.emulator: Any = None  # EmulatorServer when config.emulator
        self.spooled = 0
        self.overflow_dropped = 0
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._reloaded = asyncio.Event()  # set when a reload finished (a halted delivery then retries)
        self._wake_writer = asyncio.Event()
        self._wake_feeder = asyncio.Event()
        self._delivered: list[int] = []
        # Just-committed records with their ids, (first id, data), for the feeder to take
        # without reading them back from the spool; see `_fresh_after`.
        self._fresh: deque[tuple[int, list[bytes], int]] = deque()  # (first id, data, bytes)
        self._fresh_count = self._fresh_bytes = 0
        self._last_inserted: int | None = None  # the id of the last record this service spooled
        self._quarantines: list[tuple[int, bytes, str]] = []
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nwsyslog-spool")
        self._paused = False  # the listeners, for either reason below
        self._spool_full = False  # overflow "block" at the spool's bound
        self._backlog_full = False  # spool.max_in_memory records wait for the next commit
        self._backlog_logged = -BACKLOG_LOG_EVERY
        self._halted: str | None = None
        self.failure: BaseException | None = None
        self.metrics = Metrics(
            Readings(
                sources=lambda: [(s.kind, f"{s.host}:{s.port}", s.stats) for s in self.sources],
                pipeline=lambda: self.pipeline.stats if self.pipeline else None,
                spool=self._spool_reading,
                delivery=lambda: self.client.stats if self.client else None,
                udp_drops=self._udp_drops,
                ready=self._ready,
            )
        )
        self._metrics_server: Any = None
        self.metrics_port: int | None = None
        self._servers: list[asyncio.Task[None]] = []

    # --- readings -------------------------------------------------------------------------
    def _spool_reading(self) -> tuple[int, int, int, int, int]:
        spool = self.spool
        depth, size, quarantined = (spool.records, spool.bytes, spool.quarantine_count) if spool else (0, 0, 0)
        return depth, size, self.spooled, self.overflow_dropped, quarantined

    def _udp_drops(self) -> list[tuple[str, int]]:
        out = []
        for s in self.sources:
            if isinstance(s, UdpSource) and s.socket is not None:
                drops = udp_drops(s.socket)
                if drops is not None:
                    out.append((f"{s.host}:{s.port}", drops))
        return out

    def _ready(self) -> tuple[bool, str]:
        if not self.started.is_set():
            return False, "starting"
        if self._halted:
            return False, f"delivery halted: {self._halted}"
        return True, "ready"

    # --- control --------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the service to shut down gracefully (thread-safe via call_soon_threadsafe)."""
        self._stop.set()

    def reload(self) -> None:
        """Reload rule files, and retry a halted delivery now."""
        self._reload.set()

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (main thread only)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    # --- run ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Start everything, run until stopped, shut down gracefully."""
        try:
            await self._start()
        except BaseException:
            await self._close_resources()
            raise
        tasks = [
            asyncio.create_task(self._writer(), name="nwsyslog-writer"),
            asyncio.create_task(self._feeder(), name="nwsyslog-feeder"),
            asyncio.create_task(self._reloader(), name="nwsyslog-reload"),
        ]
        for task in tasks:
            task.add_done_callback(self._task_ended)
        _freeze_startup_objects()
        self.started.set()
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(tasks)
            gc.unfreeze()  # (a service run inside a longer-lived process leaves nothing frozen)

    async def _start(self) -> None:
        config = self.config
        ruleset = await asyncio.get_running_loop().run_in_executor(None, load_rules, config)
        self.spool = await self._in_db(
            lambda: Spool(
                self.spool_path,
                fmt=config.netwrix.format,
                sync=config.spool.sync,
                secure_delete=config.spool.secure_delete,
            )
        )
        if self.spool.records:
            log.info(
                "the spool %s holds %d records from an earlier run: sending them first",
                self.spool_path,
                self.spool.records,
            )
        self.pipeline = Pipeline(
            ruleset,
            self.encoder,
            timezone=config.timezone,
            records=config.records,
            sources=config.sources,
            max_pending=config.spool.max_in_memory,
            on_full=self._on_backlog_full,
        )
        if config.emulator:
            await self._start_emulator()
        if config.metrics.listen is not None:
            host, port = parse_host_port(config.metrics.listen)
            # Workers of one service each serve their own metrics, on consecutive ports.
            await self._start_metrics(host, port + self.worker if port else 0)
        accept = AcceptList(config.accept)
        for listener in config.listeners:
            source: Source
            if listener.scheme == "udp":
                source = UdpSource(
                    listener.host,
                    listener.port,
                    self.pipeline.handle,
                    accept=accept,
                    receive_buffer=listener.receive_buffer,
                    reuse_port=self.reuse_port,
                )
            else:
                context = None
                if listener.scheme == "tls":
                    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    try:
                        context.load_cert_chain(str(listener.cert_file), str(listener.key_file))
                    except (OSError, ssl.SSLError) as exc:
                        raise ConfigError(f"cannot load the certificate: {exc}", key="listeners.cert_file") from None
                source = TcpSource(
                    listener.host,
                    listener.port,
                    self.pipeline.handle,
                    accept=accept,
                    max_message=listener.max_message,
                    idle_timeout=listener.idle_timeout,
                    ssl_context=context,
                    reuse_port=self.reuse_port,
                )
                source.kind = listener.scheme
            await source.start()
            self.sources.append(source)
            log.info("listening on %s://%s:%d", listener.scheme, listener.host, source.port)
        self.client = self._new_client()
        await self.client.start()

    async def _start_emulator(self) -> None:
        from .emulator import EmulatorServer, EmulatorSettings

        host, port = parse_host_port(self.config.emulator_listen)
        self.emulator = EmulatorServer(EmulatorSettings(), host, port, embedded=True)
        self._servers.append(asyncio.create_task(self.emulator.serve(), name="nwsyslog-emulator"))
        for _ in range(500):
            if self.emulator.started:
                break
            await asyncio.sleep(0.01)
        if not self.emulator.started:
            raise StartupError("the in-process emulator did not start")
        self.netwrix = self.config.netwrix.model_copy(update={"url": self.emulator.base_url})
        enum = f"{self.emulator.base_url}/netwrix/api/v1/activity_records/enum?format=json"
        log.info("Netwrix API emulator running in-process; see the records: curl '%s'", enum)

    async def _start_metrics(self, host: str, port: int) -> None:
        import uvicorn

        from .emulator.server import EmbeddedServer, bind

        sock = bind(host, port)
        self.metrics_port = sock.getsockname()[1]
        config = uvicorn.Config(self.metrics.app(), log_level="warning", access_log=False, lifespan="off")
        server = EmbeddedServer(config)
        self._metrics_server = server
        self._servers.append(asyncio.create_task(server.serve(sockets=[sock]), name="nwsyslog-metrics"))
        log.info("metrics on http://%s/metrics (also /healthz, /readyz)", f"{host}:{self.metrics_port}")

    def _new_client(self) -> NetwrixClient:
        return NetwrixClient(
            self.netwrix,
            self.config.batching,
            quarantine=self,
            on_delivered=self._on_delivered,
            on_request=self.metrics.observe_request,
        )

    # Client callbacks: they only queue ids; the writer commits them.
    def _on_delivered(self, entries: Sequence[Entry]) -> None:
        self._delivered.extend(map(entry_key, entries))  # type: ignore[arg-type]  # (spool row ids; C-level, per record)
        self._wake_writer.set()

    def put(self, entry: Entry, reason: str) -> None:
        """The client's quarantine: moved to the spool's quarantine table by the writer."""
        self._quarantines.append((entry.key, entry.data, reason))  # type: ignore[arg-type]
        self._wake_writer.set()

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A stage task must never end on its own: if one fails, say so and stop the service
        (what was spooled stays spooled) rather than run on half-dead."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.critical("%s failed; stopping", task.get_name(), exc_info=exc)
            self.failure = exc
            self.stop()

    # --- tasks ----------------------------------------------------------------------------
    async def _writer(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_writer.wait(), WRITE_INTERVAL)
            self._wake_writer.clear()
            await self._commit()

    async def _commit(self) -> None:
        """Commit produced records, delivered ids and quarantines in one transaction."""
        assert self.pipeline is not None and self.spool is not None
        inserts = self.pipeline.take()
        if self._backlog_full:
            # What waited is taken: take messages in again while it is committed (so at most
            # twice max_in_memory records are ever held).
            self._backlog_full = False
            self._set_paused()
        deletes, self._delivered = self._delivered, []
        quarantines, self._quarantines = self._quarantines, []
        if not (inserts or deletes or quarantines):
            return
        inserts = self._bound(inserts)
        first = await self._in_db(self.spool.apply, inserts, deletes, quarantines)
        self.spooled += len(inserts)
        if inserts:
            if first is None or (self._last_inserted is not None and first != self._last_inserted + 1):
                # Ids were taken between two of our commits: another process added rows (a
                # `nwsyslog spool retry`), which the spool's counters have not seen.
                await self._in_db(self.spool.recount)
            self._last_inserted = None if first is None else first + len(inserts) - 1
            if first is not None:
                size = sum(map(len, inserts))
                if self._fresh_count + len(inserts) > FRESH_MAX or self._fresh_bytes + size > FRESH_MAX_BYTES:
                    self._forget_fresh()  # the feeder is behind: it reads from the spool
                if len(inserts) <= FRESH_MAX and size <= FRESH_MAX_BYTES:
                    self._fresh.append((first, inserts, size))
                    self._fresh_count += len(inserts)
                    self._fresh_bytes += size
            self._wake_feeder.set()
        self._flow_control()

    def _bound(self, inserts: list[bytes]) -> list[bytes]:
        """Apply the size bound: with drop_newest, what does not fit is dropped (counted, logged)."""
        spool, bound = self.spool, self.config.spool
        assert spool is not None
        if bound.overflow != "drop_newest" or not inserts:
            return inserts
        room = min(bound.max_records - spool.records, len(inserts))
        room_bytes = bound.max_bytes - spool.bytes
        kept = 0
        size = 0
        while kept < room and size + len(inserts[kept]) <= room_bytes:
            size += len(inserts[kept])
            kept += 1
        if kept < len(inserts):
            dropped = len(inserts) - kept
            first = self.overflow_dropped == 0
            self.overflow_dropped += dropped
            if first or self.overflow_dropped % 10000 < dropped:
                log.error(
                    "SPOOL FULL (%d records, %d bytes): dropped %d new records, %d so far "
                    "(spool.overflow: drop_newest; raise spool.max_records/max_bytes or fix delivery)",
                    spool.records,
                    spool.bytes,
                    dropped,
                    self.overflow_dropped,
                )
        return inserts[:kept]

    def _flow_control(self) -> None:
        """With overflow 'block', pause the listeners at the bound and resume below 90%."""
        spool, bound = self.spool, self.config.spool
        assert spool is not None
        if bound.overflow != "block":
            return
        fill = max(spool.records / bound.max_records, spool.bytes / bound.max_bytes)
        if not self._spool_full and fill >= PAUSE_HIGH:
            self._spool_full = True
            log.error(
                "SPOOL FULL (%d records, %d bytes): listeners paused until delivery catches up "
                "(spool.overflow: block; UDP datagrams are now discarded, counted in "
                "nwsyslog_overload_dropped; TCP senders wait)",
                spool.records,
                spool.bytes,
            )
        elif self._spool_full and fill < PAUSE_LOW:
            self._spool_full = False
            log.warning("spool below 90%% of its bound: listeners resumed")
        self._set_paused()

    def _on_backlog_full(self) -> None:
        """The pipeline holds spool.max_in_memory records: pause until the writer takes them
        (the rules produce faster than the spool commits: an overload)."""
        self._backlog_full = True
        self._set_paused()
        self._wake_writer.set()
        now = time.monotonic()
        if now - self._backlog_logged >= BACKLOG_LOG_EVERY:
            self._backlog_logged = now
            log.warning(
                "overloaded: %d records wait for the spool; listeners pause until it catches up "
                "(UDP datagrams meanwhile discarded, counted in nwsyslog_overload_dropped; TCP senders wait)",
                self.config.spool.max_in_memory,
            )

    def _set_paused(self) -> None:
        paused = self._spool_full or self._backlog_full
        if paused != self._paused:
            self._paused = paused
            for s in self.sources:
                if paused:
                    s.pause()
                else:
                    s.resume()

    async def _feeder(self) -> None:
        assert self.spool is not None
        last_id = 0
        while True:
            client = self.client
            assert client is not None
            if client.error is not None:
                last_id = await self._recover(client)
                continue
            rows = self._fresh_after(last_id)
            if rows is None:
                rows = await self._in_db(self.spool.read_after, last_id, READ_CHUNK)
            if not rows:
                self._wake_feeder.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_feeder.wait(), 1.0)
                continue
            entries = list(map(entry_from_row, rows))
            taken = await client.submit_entries(entries)
            if taken:
                last_id = entries[taken - 1].key  # type: ignore[assignment]  # a spool row id

    def _fresh_after(self, last_id: int) -> list[tuple[int, bytes]] | None:
        """The records that follow `last_id` from memory, as `read_after` would give them, or
        None (read them from the spool). A fresh chunk holds exactly the rows one commit
        inserted, so when its first id is the next after the last one taken, nothing can come
        between; chunks at or below `last_id` were read from the spool already and are dropped.
        Reading back every record was the spool thread's largest cost after the insert, and
        cutting the read apart holds the GIL against the listener thread."""
        fresh = self._fresh
        while fresh:
            first, data, size = fresh[0]
            if first + len(data) - 1 > last_id and first != last_id + 1:
                # Rows in between that the feeder has not taken (a backlog, an earlier run's,
                # a retry from the quarantine by another process), or an overlap.
                return None
            fresh.popleft()
            self._fresh_count -= len(data)
            self._fresh_bytes -= size
            if first == last_id + 1:
                return list(zip(range(first, first + len(data)), data, strict=True))
        return None

    def _forget_fresh(self) -> None:
        self._fresh.clear()
        self._fresh_count = self._fresh_bytes = 0

    async def _recover(self, client: NetwrixClient) -> int:
        """After a halt: keep everything spooled, wait, then start over with a new client."""
        self._halted = str(client.error)
        log.error(
            "delivery halted: %s. Every record stays in the spool; retrying in %.0f s or on SIGHUP",
            client.error,
            HALT_RETRY,
        )
        await client.aclose(timeout=0)
        self._reloaded.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reloaded.wait(), HALT_RETRY)
        await self._commit()  # deletions of what was delivered before the halt, so it is not resent
        self._forget_fresh()  # everything is read again from the spool, from the start
        self.client = self._new_client()
        await self.client.start()
        self._halted = None
        return 0

    async def _reloader(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._reload.wait()
            self._reload.clear()
            try:
                config = self.config
                if self.config_path is not None:
                    config = await loop.run_in_executor(None, load_service_config, self.config_path)
                ruleset = await loop.run_in_executor(None, load_rules, config)
            except ConfigError as exc:
                log.error("reload refused, the previous configuration and rules stay in use: %s", exc)
            else:
                assert self.pipeline is not None
                self.pipeline.ruleset = ruleset
                _freeze_startup_objects(again=True)
                log.info("rules reloaded: %d rules", len(ruleset))
                if config.netwrix != self.config.netwrix and not self.config.emulator:
                    # Credentials, URL, TLS: they apply to the next client (at once if halted).
                    self.netwrix = config.netwrix
                    log.info("Netwrix settings reloaded")
                changed = [k for k in ("listeners", "spool", "metrics", "accept", "sources", "timezone", "records")
                           if getattr(config, k) != getattr(self.config, k)]  # fmt: skip
                if changed:
                    log.warning("reload: %s changed; that takes a restart", ", ".join(changed))
                self.config = self.config.model_copy(update={"rules": config.rules, "netwrix": config.netwrix})
            self._reloaded.set()

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        log.info("stopping: closing listeners, flushing")
        for s in self.sources:
            s.close()
        for task in tasks:
            if task.get_name() != "nwsyslog-writer":
                task.cancel()
        for task in tasks:
            if task.get_name() != "nwsyslog-writer":
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        # The writer runs on while the client flushes, so deliveries are deleted as they land.
        if self.client is not None:
            started = time.monotonic()
            left = await self.client.aclose(timeout=self.config.shutdown_timeout)
            log.info(
                "delivery flushed in %.1fs; %d records not yet acknowledged stay spooled",
                time.monotonic() - started,
                len(left),
            )
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.spool is not None and self.pipeline is not None:
            await self._commit()
        await self._close_resources()

    async def _close_resources(self) -> None:
        for s in self.sources:
            s.close()
        if self.spool is not None:
            remaining = self.spool.records
            await self._in_db(self.spool.close)
            log.info("spool closed with %d records waiting", remaining)
            self.spool = None
        self._db.shutdown(wait=True)
        if self._metrics_server is not None:
            self._metrics_server.should_exit = True
        if self.emulator is not None:
            self.emulator.stop()
        if self._servers:
            await asyncio.wait(self._servers, timeout=5)
