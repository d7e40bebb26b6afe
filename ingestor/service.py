"""`nwsyslog run`: listeners -> pipeline -> spool, the delivery process, and the operations around them.

Data flows one way:

    sources --handle()--> Pipeline.pending --writer--> Spool (SQLite, one thread)
    Spool --delivery process: NetwrixClient--> --200--> rows deleted
                                               --400/413 alone--> row moved to the quarantine

- The *writer* task commits what the pipeline produced every `WRITE_INTERVAL` seconds, in one
  transaction. Only committed rows are ever read for sending, so a record is on disk before it
  can be sent, and it leaves the spool only after the server said 200.
- The *delivery process* (`ingestor.deliverer`) reads committed records in key order and hands them
  to the client, which batches and retries (forever by default: an outage only grows the
  spool), and deletes or quarantines what settled. If delivery halts (401, 403, 404, a
  certificate problem) the rows stay spooled and a new client starts after a minute or on
  SIGHUP, re-reading the spool from the start. If the process ends unexpectedly, the service
  stops (what it did not delete is sent again by the next run).
- On start, whatever a previous run left in the spool is sent first (same order).
- Memory is bounded: when `spool.max_in_memory` produced records wait for a commit (the spool
  cannot keep up), or the spool reaches its bound with overflow "block", the listeners pause.
  A paused UDP listener discards what arrives, counted; paused TCP connections are not read.

Signals: SIGTERM/SIGINT stop gracefully (take no new connections, read what is in the socket
buffers until no message came for 0.1 s (at most 2 s), close the listeners, commit what was
produced, give delivery `shutdown_timeout` seconds, leave the rest spooled); SIGHUP re-reads the configuration file and
the rule files (a bad new set keeps the old one and says why), applies new Netwrix settings
(credentials, URL, TLS) to the next connection, and restarts a halted delivery with them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parsers.rules.engine import RuleSet
from parsers.rules.loader import load_ruleset

from .config import ServiceConfig, load_service_config, parse_host_port
from .deliverer import DeliveryProcess, DeliverySettings
from .errors import ConfigError, StartupError
from .logs import current_settings
from .loop import rounds, start_tasks
from .metrics import Metrics, Readings
from .netwrix.encoding import encoder_for
from .pipeline import Pipeline
from .sources import AcceptList, Source, TcpSource, UdpSource, udp_drops
from .spool import Spool, SpoolOptions

log = logging.getLogger("nwsyslog.service")

WRITE_INTERVAL = 0.05  # seconds between spool commits (at most this much is only in memory)
REFRESH_INTERVAL = 0.5  # seconds between readings of the spool's totals when nothing is committed
PAUSE_HIGH, PAUSE_LOW = 1.0, 0.9  # overflow "block": pause at the bound, resume below 90%
BACKLOG_LOG_EVERY = 60.0  # seconds between "overloaded" log lines
# On stop, listeners keep reading until no message came for DRAIN_IDLE seconds (at most DRAIN_MAX).
DRAIN_IDLE, DRAIN_MAX = 0.1, 2.0


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


def spool_options(config: ServiceConfig) -> SpoolOptions:
    """The configured way to open the spool: the format its records are in, sync, secure_delete."""
    return SpoolOptions(fmt=config.netwrix.format, sync=config.spool.sync, secure_delete=config.spool.secure_delete)


def load_rules(config: ServiceConfig) -> RuleSet:
    """The configured rule set; raises RuleError (a ConfigError) naming file, line and rule."""
    return load_ruleset(list(config.rules.paths), builtin=config.rules.builtin, enable=config.rules.enable)


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
        self.delivery: DeliveryProcess | None = None
        self.netwrix = config.netwrix
        self.emulator: Any = None  # EmulatorServer when config.emulator
        self.spooled = 0
        self.overflow_dropped = 0
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._wake_writer = asyncio.Event()
        self._closing = False  # the writer's last round
        self._refreshed = 0.0  # when the spool's totals were last read (monotonic)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nwsyslog-spool")
        self._paused = False  # the listeners, for either reason below
        self._spool_full = False  # overflow "block" at the spool's bound
        self._backlog_full = False  # spool.max_in_memory records wait for the next commit
        self._backlog_logged = -BACKLOG_LOG_EVERY
        self.failure: BaseException | None = None
        self.metrics = Metrics(
            Readings(
                sources=lambda: [(s.kind, f"{s.host}:{s.port}", s.stats) for s in self.sources],
                pipeline=lambda: self.pipeline.stats if self.pipeline else None,
                spool=self._spool_reading,
                delivery=lambda: self.delivery.stats if self.delivery else None,
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

    @property
    def halted(self) -> str | None:
        """Why delivery is halted (401, 403, 404, a certificate problem), or None."""
        return self.delivery.halted if self.delivery is not None else None

    def _ready(self) -> tuple[bool, str]:
        if not self.started.is_set():
            return False, "starting"
        if self.halted:
            return False, f"delivery halted: {self.halted}"
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
        tasks = start_tasks(
            {
                "nwsyslog-writer": self._writer(),
                "nwsyslog-delivery": self._watch_delivery(),
                "nwsyslog-reload": self._reloader(),
            },
            self._task_failed,
        )
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
        self.spool = await self._in_db(lambda: Spool(self.spool_path, **spool_options(config)))
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
        level, log_format = current_settings()
        settings = DeliverySettings(
            spool_path=self.spool_path,
            spool_options=spool_options(config),
            netwrix=self.netwrix,
            batching=config.batching,
            shutdown_timeout=config.shutdown_timeout,
            log_level=level,
            log_format=log_format,
        )
        self.delivery = DeliveryProcess(settings, on_request=self.metrics.observe_request)
        await self.delivery.start()

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

    def _task_failed(self, task: asyncio.Task[None]) -> None:
        """A stage task failed: say so and stop the service (what was spooled stays spooled)
        rather than run on half-dead."""
        exc = task.exception()
        log.critical("%s failed; stopping", task.get_name(), exc_info=exc)
        self.failure = exc
        self.stop()

    # --- tasks ----------------------------------------------------------------------------
    async def _writer(self) -> None:
        # Never cancelled (it would lose the records a commit took from the pipeline): it ends
        # after its round once the listeners closed.
        await rounds(self._commit, self._wake_writer, WRITE_INTERVAL, lambda: self._closing)

    async def _commit(self) -> None:
        """Commit the produced records in one transaction; when there are none, read the
        spool's totals now and then (the delivery process deletes, the bound and the metrics
        follow)."""
        assert self.pipeline is not None and self.spool is not None
        inserts = self.pipeline.take()
        if self._backlog_full:
            # What waited is taken: take messages in again while it is committed (so at most
            # twice max_in_memory records are ever held).
            self._backlog_full = False
            self._set_paused()
        now = time.monotonic()
        if not inserts and now - self._refreshed < REFRESH_INTERVAL:
            return
        self._refreshed = now
        inserts = self._bound(inserts)
        if inserts:
            await self._in_db(self.spool.apply, inserts)
            self.spooled += len(inserts)
        else:
            await self._in_db(self.spool.refresh)
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

    async def _watch_delivery(self) -> None:
        """The delivery process must not end before the service: if it does, stop (everything
        it did not delete stays spooled for the next run)."""
        assert self.delivery is not None
        await self.delivery.ended.wait()
        code = await self.delivery.reap()
        raise RuntimeError(f"the delivery process ended unexpectedly (exit code {code})")

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
                assert self.pipeline is not None and self.delivery is not None
                self.pipeline.ruleset = ruleset
                _freeze_startup_objects(again=True)
                log.info("rules reloaded: %d rules", len(ruleset))
                netwrix = None
                if config.netwrix != self.config.netwrix and not self.config.emulator:
                    # Credentials, URL, TLS: they apply to the next client (at once if halted).
                    self.netwrix = netwrix = config.netwrix
                    log.info("Netwrix settings reloaded")
                self.delivery.reload(netwrix)
                changed = [k for k in ("listeners", "spool", "metrics", "accept", "sources", "timezone", "records")
                           if getattr(config, k) != getattr(self.config, k)]  # fmt: skip
                if changed:
                    log.warning("reload: %s changed; that takes a restart", ", ".join(changed))
                self.config = self.config.model_copy(update={"rules": config.rules, "netwrix": config.netwrix})

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        log.info("stopping: reading what senders already sent, then closing listeners and flushing")
        await self._drain()
        for s in self.sources:
            s.close()
        self._closing = True
        self._wake_writer.set()
        for task in tasks:
            if task.get_name() != "nwsyslog-writer":
                task.cancel()
        # (A task that failed was reported by `_task_failed`.)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.spool is not None and self.pipeline is not None:
            self._refreshed = 0.0
            await self._commit()
        await self._stop_delivery()
        await self._close_resources()

    async def _drain(self) -> None:
        """Stop accepting connections, and keep reading until no message arrives for DRAIN_IDLE
        seconds (at most DRAIN_MAX): what senders wrote just before the stop is in the socket
        buffers, and closing would discard it (a TCP sender is not told what was lost)."""
        for s in self.sources:
            s.stop_accepting()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_MAX
        seen = None
        while loop.time() < deadline:
            now = [(s.stats.messages, s.stats.bytes, s.stats.shed) for s in self.sources]
            if now == seen:
                return
            seen = now
            await asyncio.sleep(DRAIN_IDLE)

    async def _stop_delivery(self) -> None:
        """Give the delivery process `shutdown_timeout` seconds to deliver what it holds."""
        if self.delivery is None or self.delivery.ended.is_set():
            return
        started = time.monotonic()
        left = await self.delivery.stop(self.config.shutdown_timeout)
        log.info(
            "delivery flushed in %.1fs; %s records not yet acknowledged stay spooled",
            time.monotonic() - started,
            "its" if left is None else left,
        )

    async def _close_resources(self) -> None:
        for s in self.sources:
            s.close()
        if self.delivery is not None and not self.delivery.ended.is_set():
            await self.delivery.stop(0)  # (a start that failed after it)
        if self.spool is not None:
            await self._in_db(self.spool.refresh)
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
