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
import collections
import contextlib
import gc
import logging
import os
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parsers.rules.engine import RuleSet
from parsers.rules.loader import load_ruleset
from parsers.syslog import parse_syslog

from .config import ServiceConfig, load_service_config, parse_host_port
from .deliverer import DeliveryProcess, DeliverySettings
from .errors import ConfigError, StartupError
from .logs import current_settings
from .loop import rounds, start_tasks
from .metrics import HostState, Metrics, Readings
from .netwrix.config import NetwrixConfig
from .netwrix.encoding import encoder_for
from .pipeline import Pipeline
from .sources import AcceptList, Source, TcpSource, UdpSource, udp_drops
from .spool import WAL_LIMIT, Spool, SpoolOptions
from .spool_health import (
    HEADROOM_BYTES,
    RESERVE_BYTES,
    Reserve,
    StateFile,
    free_bytes,
    is_disk_full,
    open_checked,
    space_warning,
    stash,
    unstash,
)
from .spool_lock import SpoolLock
from .status import HISTORY_INTERVAL, History, unmatched_json
from .status import status as status_json
from .status import totals as status_totals
from .tls_server import server_context
from .trouble import Trouble, duration, wall_time
from .unmatched import Inventory, Shape, inventory_path, iso

log = logging.getLogger("nwsyslog.service")

WRITE_INTERVAL = 0.05  # seconds between spool commits (at most this much is only in memory)
REFRESH_INTERVAL = 0.5  # seconds between readings of the spool's totals when nothing is committed
PAUSE_HIGH, PAUSE_LOW = 1.0, 0.9  # overflow "block": pause at the bound, resume below 90%
BACKLOG_LOG_EVERY = 60.0  # seconds between "overloaded" log lines
CHECKPOINT_INTERVAL = 1.0  # seconds between the writer's passive WAL checkpoints
RESERVE_CHECK = 10.0  # seconds between checks that the disk reserve beside the spool is held
STORE_RETRY_MIN, STORE_RETRY_MAX = 0.25, 5.0  # backoff between attempts while the spool fails
STORE_LOG_EVERY = 60.0  # seconds between "spool still failing" log lines
WATCH_INTERVAL = 1.0  # seconds between the watchdog's looks at the delivery process
# A start waits this much longer than the shutdown timeout for a killed service's delivery process.
LOCK_WAIT_EXTRA = 10.0
RESTARTS_ALLOWED, RESTART_WINDOW = 5, 600.0  # more delivery restarts than this in the window: stop
# On stop, listeners keep reading until no message came for DRAIN_IDLE seconds (at most DRAIN_MAX).
DRAIN_IDLE, DRAIN_MAX = 0.1, 2.0
INVENTORY_SAVE_EVERY = 30.0  # seconds between saves of the unmatched inventory (and at stop)
QUARANTINE_SHOWN = 20  # newest quarantined records the status page lists


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
    return SpoolOptions(
        fmt=config.netwrix.format,
        sync=config.spool.sync,
        secure_delete=config.spool.secure_delete,
        lock_timeout=config.spool.lock_timeout,
    )


def delivery_settings(
    config: ServiceConfig, spool_path: Path, netwrix: NetwrixConfig, *, shares_lock: bool = False
) -> DeliverySettings:
    """What a delivery process of `config` needs, with this process's log settings;
    `shares_lock`: it is given the spool's lock to hold too."""
    level, log_format = current_settings()
    return DeliverySettings(
        spool_path=spool_path,
        spool_options=spool_options(config),
        netwrix=netwrix,
        batching=config.batching,
        shutdown_timeout=config.shutdown_timeout,
        log_level=level,
        log_format=log_format,
        shares_lock=shares_lock,
    )


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
        self.host = HostState()
        # The spool failing (disk full, I/O error, read-only, locked): what it could not take
        # waits here, the listeners pause, and commits are retried with backoff.
        self._unwritten: list[bytes] = []
        self._store = Trouble(backoff_min=STORE_RETRY_MIN, backoff_max=STORE_RETRY_MAX, log_every=STORE_LOG_EVERY)
        self._disk_full = False  # the failure is "disk full": attempts write what fits (`_fitting`)
        self._reopen = False  # open a new connection before the next attempt
        self._state_file: StateFile | None = None
        self._lock: SpoolLock | None = None
        self._reserve: Reserve | None = None
        self._checkpointed = 0.0
        self._reserve_checked = 0.0
        self._stopping = False
        self._stash_files: list[Path] = []  # an earlier run's unwritten records, until committed
        self._inserted = 0  # the spool's counts.inserted after the last commit seen to succeed
        self.metrics = Metrics(
            Readings(
                sources=lambda: [(s.kind, f"{s.host}:{s.port}", s.stats) for s in self.sources],
                pipeline=lambda: self.pipeline.stats if self.pipeline else None,
                spool=self._spool_reading,
                delivery=lambda: self.delivery.stats if self.delivery else None,
                udp_drops=self._udp_drops,
                ready=self._ready,
                host=self._host_state,
                status=lambda: status_json(self),
                unmatched=lambda: {**unmatched_json(self.inventory), "refused": self.refused_senders()},
            )
        )
        self.started_at = time.time()
        # Unmatched messages by shape (kept beside the spool across restarts), the counters'
        # recent history and the newest quarantined records, for the status page and the CLI.
        self.inventory: Inventory | None = None
        self.inventory_path = inventory_path(self.spool_path)
        self.history = History(lambda: status_totals(self))
        self.quarantine_view: list[dict[str, Any]] = []
        self._quarantine_seen = -1
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

    @property
    def _store_error(self) -> str | None:
        """Why the last commit to the spool failed, or None while the spool takes commits."""
        return self._store.reason

    def _host_state(self) -> HostState:
        h = self.host
        h.spool_write_failing = self._store_error is not None
        h.listeners_paused = self._paused
        oldest = self.spool.oldest if self.spool is not None else None
        h.spool_oldest_age = max(0.0, time.time() - oldest) if oldest is not None else 0.0
        delivery = self.delivery
        if h.delivery_state not in ("stalled", "restarting"):
            if delivery is None:
                h.delivery_state = "starting"
            elif delivery.halted:
                h.delivery_state = "halted"
            elif delivery.retrying is not None:
                h.delivery_state = "retrying"
            else:
                h.delivery_state = "running"
        return h

    def _ready(self) -> tuple[bool, str]:
        """/readyz: 200 only while every message can go all the way (see README)."""
        if not self.started.is_set():
            return False, "starting"
        if self._store_error is not None:
            return False, f"spool not writable ({self._store_error}): {len(self._unwritten)} records held in memory"
        delivery = self.delivery
        if delivery is not None and delivery.halted:
            since = f" since {wall_time(delivery.halted_since)}" if delivery.halted_since is not None else ""
            return False, f"delivery halted{since}: {delivery.halted}"
        if self.host.delivery_state in ("stalled", "restarting"):
            return False, f"delivery process {self.host.delivery_state}"
        if delivery is not None and delivery.retrying is not None:
            since_wall, reason = delivery.retrying
            return False, f"delivery retrying since {wall_time(since_wall)} ({reason})"
        if self._spool_full:
            return False, "listeners paused: the spool is full (spool.overflow: block)"
        if self._backlog_full:
            return False, "listeners paused: records wait for the spool (overloaded)"
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
                "nwsyslog-status": self._status_keeper(),
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
        # One service per spool (ingestor.spool_lock); a killed one's delivery process may still
        # be flushing: give it its shutdown timeout and a little more to end.
        self._lock = SpoolLock(self.spool_path)
        await self._in_db(self._lock.acquire, config.shutdown_timeout + LOCK_WAIT_EXTRA)
        # A damaged spool (or one whose WAL lost commits) is salvaged into a fresh file first.
        self.spool, salvaged, _ = await self._in_db(open_checked, self.spool_path, spool_options(config))
        if salvaged is not None:
            self.host.salvaged = salvaged.recovered
            self.host.salvage_lost = salvaged.lost
        self._state_file = StateFile(self.spool_path)
        self._reserve = Reserve(self.spool_path)
        await self._in_db(self._after_open)
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
            inventory=await self._open_inventory(),
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
                context = server_context(listener) if listener.scheme == "tls" else None
                source = TcpSource(
                    listener.host,
                    listener.port,
                    self.pipeline.handle,
                    accept=accept,
                    max_message=listener.max_message,
                    idle_timeout=listener.idle_timeout,
                    ssl_context=context,
                    permitted_peers=listener.permitted_peers,
                    reuse_port=self.reuse_port,
                )
                source.kind = listener.scheme
            await source.start()
            self.sources.append(source)
            log.info("listening on %s://%s:%d", listener.scheme, listener.host, source.port)
        settings = delivery_settings(config, self.spool_path, self.netwrix, shares_lock=True)
        self.delivery = DeliveryProcess(settings, on_request=self.metrics.observe_request, lock_fd=self._lock_fd())
        await self.delivery.start()

    def _lock_fd(self) -> int | None:
        return self._lock.fd if self._lock is not None else None

    def _after_open(self) -> None:
        """(Spool thread.) The state file, the disk reserve, and a warning when the spool's
        filesystem cannot hold a full spool."""
        assert self.spool is not None and self._state_file is not None and self._reserve is not None
        self._inserted = self.spool.inserted
        for stashed in unstash(self.spool_path):
            held = 0 if stashed.since is None else self.spool.already_holds(stashed.since, stashed.records)
            log.warning(
                "taking in %d records that an earlier run could not write to the spool (%s)%s",
                len(stashed.records) - held,
                stashed.path,
                f"; {held} more had reached it after all (a commit reported as failed)" if held else "",
            )
            self._unwritten.extend(stashed.records[held:])
            self._stash_files.append(stashed.path)
        self._state_file.write(self.spool.inserted, self.spool.records)
        self._reserve.ensure()
        warning = space_warning(self.spool.path, self.config.spool.max_bytes)
        if warning is not None:
            log.warning("%s", warning)

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

        app = self.metrics.app(self.config.metrics)  # reads the auth secrets now; ConfigError
        sock = bind(host, port)
        self.metrics_port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = EmbeddedServer(config)
        self._metrics_server = server
        self._servers.append(asyncio.create_task(server.serve(sockets=[sock]), name="nwsyslog-metrics"))
        log.info("metrics on http://%s/metrics (also /healthz, /readyz)", f"{host}:{self.metrics_port}")

    # --- what the service sees: unmatched inventory, history, quarantine ---------------------
    async def _open_inventory(self) -> Inventory | None:
        """The unmatched inventory, with what an earlier run saved beside the spool."""
        settings = self.config.unmatched
        if not settings.enabled:
            return None
        inventory = Inventory.from_settings(settings)
        try:
            if await self._in_db(inventory.load, self.inventory_path):
                log.info(
                    "unmatched inventory: %d shapes (%d messages) from %s",
                    len(inventory),
                    inventory.total,
                    self.inventory_path,
                )
        except (OSError, ValueError) as exc:
            log.warning("unmatched inventory not restored (it starts empty): %s", exc)
        self.inventory = inventory
        return inventory

    async def _save_inventory(self) -> None:
        inventory = self.inventory
        if inventory is None or not inventory.changed:
            return
        try:
            await self._in_db(inventory.save, self.inventory_path)
        except OSError as exc:  # advice, not records: a full disk must not stop anything
            log.warning("could not save the unmatched inventory to %s: %s", self.inventory_path, exc)

    def _forget_mapped(self, ruleset: RuleSet) -> None:
        """After a reload: shapes whose every sample the new rules map leave the inventory."""
        inventory = self.inventory
        if inventory is None:
            return

        def still_unmatched(shape: Shape) -> bool:
            if not shape.samples:
                return True
            return any(ruleset.match(parse_syslog(line.encode("utf-8", "surrogateescape"))) is None
                       for line in shape.samples)  # fmt: skip

        gone = inventory.forget(still_unmatched)
        if gone:
            log.info(
                "unmatched inventory: %d shapes now mapped by the reloaded rules (%s)",
                len(gone),
                ", ".join(s.id for s in gone[:10]),
            )

    def refused_senders(self) -> list[dict[str, Any]]:
        """Senders refused by the accept list, per listener, most refused first."""
        out: list[dict[str, Any]] = []
        for s in self.sources:
            for address, entry in (getattr(s.stats, "refused", None) or {}).items():
                out.append(
                    {
                        "listener": f"{s.kind}://{s.host}:{s.port}",
                        "source": address,
                        "count": entry.count,
                        "last_seen": iso(entry.last_seen),
                    }
                )
        out.sort(key=lambda r: -int(r["count"]))
        return out

    async def _status_keeper(self) -> None:
        """Every HISTORY_INTERVAL s: a sample of the counters, the newest quarantined records
        when their number changed; every INVENTORY_SAVE_EVERY s the inventory, if it changed."""
        saved = time.monotonic()
        while True:
            self.history.sample()
            spool = self.spool
            if spool is not None and spool.quarantine_count != self._quarantine_seen:
                count = spool.quarantine_count
                with contextlib.suppress(sqlite3.Error, OSError):
                    rows = await self._in_db(spool.quarantined, QUARANTINE_SHOWN, max(0, count - QUARANTINE_SHOWN))
                    self.quarantine_view = [
                        {"id": r.id, "reason": r.reason, "at": iso(r.created)} for r in reversed(rows)
                    ]
                    self._quarantine_seen = count
            if time.monotonic() - saved >= INVENTORY_SAVE_EVERY:
                saved = time.monotonic()
                await self._save_inventory()
            await asyncio.sleep(HISTORY_INTERVAL)

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

    async def _commit(self, force: bool = False) -> None:
        """Commit the produced records in one transaction; when there are none, read the
        spool's totals now and then (the delivery process deletes, the bound and the metrics
        follow). A failed commit keeps its records in memory and pauses the listeners; the
        next attempt comes after a backoff (`force`: now)."""
        assert self.pipeline is not None and self.spool is not None
        inserts = self.pipeline.take()
        if self._backlog_full:
            # What waited is taken: take messages in again while it is committed (so at most
            # twice max_in_memory records are ever held).
            self._backlog_full = False
            self._set_paused()
        if self._unwritten:
            inserts = self._unwritten + inserts
            self._unwritten = []
        now = time.monotonic()
        if not force and not self._store.due(now):
            self._unwritten = inserts
            self.host.spool_held = len(inserts)
            if self._store.log_due(now):
                self._log_store_still_failing(now)
            return
        if not inserts and now - self._refreshed < REFRESH_INTERVAL and self._store_error is None:
            return
        self._refreshed = now
        inserts = self._bound(inserts)
        try:
            written = await self._in_db(self._write, inserts)
        except (sqlite3.Error, OSError) as exc:
            self._unwritten = inserts
            self.host.spool_held = len(self._unwritten)
            await self._store_failed(exc, now)
            return
        self.spooled += written
        if self._stash_files and written == len(inserts):
            for path in self._stash_files:
                path.unlink(missing_ok=True)
            self._stash_files = []
        if written < len(inserts):
            self._unwritten = inserts[written:]
            self.host.spool_held = len(self._unwritten)
            if self._store_error is None or not self._disk_full:
                room = free_bytes(self.spool_path) or 0
                await self._store_failed(
                    OSError(28, f"database or disk is full: {room / 2**20:.1f} MiB left on the spool's "
                            f"filesystem, {HEADROOM_BYTES // 1024} KiB of it kept for deleting delivered records"),
                    now,
                )  # fmt: skip
            else:
                self._store.retry_at = now + 0.5
            return
        self.host.spool_held = 0
        if self._store_error is not None:
            self._store_recovered(now, len(inserts))
        self._flow_control()

    def _fitting(self, inserts: list[bytes]) -> int:
        """(Spool thread.) How many of `inserts` the spool can take while HEADROOM_BYTES of its
        filesystem stay free for the delivery process's deletions and the WAL's checkpoints: the
        free space plus the pages free inside the file (a record needs its bytes about twice while
        it goes through the WAL, and some more in the file)."""
        if not inserts:
            return 0
        room = free_bytes(self.spool_path)
        if room is None:
            return len(inserts)
        budget = room - HEADROOM_BYTES
        if budget < 3 * sum(map(len, inserts)) and self.spool is not None:
            # Pages free in the file take records without the file growing.
            budget += self.spool.free_pages_bytes()
        if budget >= 3 * sum(map(len, inserts)):
            return len(inserts)
        used = 0
        for i, record in enumerate(inserts):
            used += 3 * len(record) + 64
            if used > budget:
                return i
        return len(inserts)

    def _write(self, inserts: list[bytes]) -> int:
        """(Spool thread.) One commit of as many of `inserts` as the disk has room for (see
        `_fitting`), the state file after it, and now and then a passive WAL checkpoint and the
        disk reserve. Returns how many were written."""
        spool = self.spool
        assert spool is not None
        if self._reopen:
            # After repeated failures a new connection: one that saw an I/O error (a filesystem
            # remounted read-only and back) may keep failing where a new one works.
            try:
                fresh = Spool(self.spool_path, **spool_options(self.config))
            except StartupError as exc:
                raise OSError(str(exc)) from None
            self._reopen = False
            with contextlib.suppress(sqlite3.Error):
                spool.close()
            self.spool = spool = fresh
        held = 0
        refreshed = False
        if self._store_error is not None:
            # A commit that failed may have reached the disk all the same (an fsync error after
            # its WAL frames were written): its records are then not written again.
            spool.refresh()
            refreshed = True
            held = spool.already_holds(self._inserted, inserts)
            if held:
                log.warning("%d records of a commit reported as failed had reached the spool after all", held)
                inserts = inserts[held:]
        fit = self._fitting(inserts)
        if fit:
            spool.apply(inserts if fit == len(inserts) else inserts[:fit])
        elif not refreshed:
            spool.refresh()
        self._inserted = spool.inserted
        if self._state_file is not None:
            self._state_file.write(spool.inserted, spool.records)
        now = time.monotonic()
        if now - self._checkpointed >= CHECKPOINT_INTERVAL or spool.wal_size() > WAL_LIMIT:
            self._checkpointed = now
            try:
                spool.checkpoint()
            except sqlite3.Error as exc:
                log.debug("WAL checkpoint failed: %s", exc)
        if now - self._reserve_checked >= RESERVE_CHECK and self._reserve is not None:
            self._reserve_checked = now
            self._reserve.ensure()
        return held + fit

    async def _store_failed(self, exc: BaseException, now: float) -> None:
        self.host.spool_write_failures += 1
        if self._store.failed(exc, now):
            if self._store.attempts == 1:
                log.error(
                    "SPOOL WRITE FAILED (%s): %d records held in memory; listeners paused (UDP datagrams are "
                    "discarded and counted in nwsyslog_overload_dropped, TCP senders wait); retrying",
                    self._store.reason,
                    len(self._unwritten),
                )
            else:
                self._log_store_still_failing(now)
        if is_disk_full(exc):
            self._disk_full = True
            # SQLite's own "disk is full" (not the headroom kept above): the disk filled behind
            # the spool's back; the reserve gives the deletions room.
            if (
                isinstance(exc, sqlite3.Error)
                and self._reserve is not None
                and await self._in_db(self._reserve.release)
            ):
                log.warning(
                    "disk full: released the %d MiB reserve beside the spool, so that delivered records can "
                    "still be deleted and the spool drain",
                    RESERVE_BYTES // 2**20,
                )
        else:
            self._disk_full = False
            if self.host.spool_write_failures % 3 == 0:
                self._reopen = True
        self._set_paused()

    def _log_store_still_failing(self, now: float) -> None:
        log.error(
            "the spool is still not writable after %s (%s): %d records held in memory, listeners paused",
            duration(self._store.lasted(now)),
            self._store.reason,
            len(self._unwritten),
        )

    def _store_recovered(self, now: float, written: int) -> None:
        log.warning(
            "the spool is writable again after %.1f s: %d held records written; listeners resumed",
            self._store.lasted(now),
            written,
        )
        self._store.recovered(now)
        self._disk_full = False
        self._set_paused()

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
        """With overflow 'block', pause the listeners at the bound and resume below 90%. While
        stopping, the spool may go past its bound by `max_in_memory` records: what paused TCP
        senders had queued is read into it rather than left in the kernel."""
        spool, bound = self.spool, self.config.spool
        assert spool is not None
        if bound.overflow != "block":
            return
        records = spool.records - (bound.max_in_memory if self._stopping else 0)
        fill = max(records / bound.max_records, spool.bytes / bound.max_bytes)
        if self._stopping:
            fill = records / bound.max_records
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
        paused = self._spool_full or self._backlog_full or (self._store_error is not None and not self._stopping)
        if paused != self._paused:
            self._paused = paused
            for s in self.sources:
                if paused:
                    s.pause()
                else:
                    s.resume()

    async def _watch_delivery(self) -> None:
        """The watchdog: the delivery process reports every 0.5 s. Silent for
        `watchdog.stalled_after` seconds (SIGSTOP, a hang) it counts as stalled (logged,
        /readyz 503); silent for `watchdog.restart_after` it is killed. One that ended (killed
        or on its own) is started again; what it had not deleted is sent again (at least once).
        More than RESTARTS_ALLOWED restarts within RESTART_WINDOW seconds stop the service."""
        watchdog = self.config.watchdog
        restarts: collections.deque[float] = collections.deque(maxlen=RESTARTS_ALLOWED)
        while True:
            delivery = self.delivery
            assert delivery is not None
            while not delivery.ended.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(delivery.ended.wait(), WATCH_INTERVAL)
                if delivery.ended.is_set():
                    break
                silent = time.monotonic() - delivery.last_heard
                self.host.delete_failures = delivery.delete_failures
                if silent >= watchdog.restart_after:
                    log.error(
                        "the delivery process (pid %s) has not reported for %.0f s: killing it and starting "
                        "a new one (what it had not deleted is sent again)",
                        delivery.pid,
                        silent,
                    )
                    self.host.delivery_state = "restarting"
                    delivery.kill()
                    break
                if silent >= watchdog.stalled_after and self.host.delivery_state != "stalled":
                    self.host.delivery_state = "stalled"
                    log.error(
                        "the delivery process (pid %s) has not reported for %.0f s (stopped or hung?); "
                        "it is restarted after %.0f s of silence",
                        delivery.pid,
                        silent,
                        watchdog.restart_after,
                    )
                elif silent < watchdog.stalled_after and self.host.delivery_state == "stalled":
                    self.host.delivery_state = "running"
                    log.warning("the delivery process reports again")
            code = await delivery.reap()
            if self._stopping:
                return
            now = time.monotonic()
            restarts.append(now)
            if len(restarts) == RESTARTS_ALLOWED and now - restarts[0] < RESTART_WINDOW:
                raise RuntimeError(
                    f"the delivery process ended {RESTARTS_ALLOWED} times within {RESTART_WINDOW:.0f} s "
                    f"(last exit code {code}); stopping"
                )
            if self.host.delivery_state != "restarting":
                log.error("the delivery process ended (exit code %s); starting a new one", code)
            self.host.delivery_state = "restarting"
            fresh = DeliveryProcess(delivery.settings, on_request=self.metrics.observe_request, lock_fd=self._lock_fd())
            await fresh.start()
            self.delivery = fresh
            self.host.delivery_restarts += 1
            self.host.delivery_state = "running"
            log.warning("a new delivery process (pid %s) is running", fresh.pid)

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
                self._forget_mapped(ruleset)
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
        self._stopping = True
        if self.spool is not None:
            # Paused listeners are read again: what the senders queued goes into the spool
            # (past its bound by up to max_in_memory records), or, while the spool fails, into
            # memory and the stash file, rather than being reset.
            self._spool_full = False
            self._flow_control()
            self._set_paused()
        await self._drain()
        left = 0
        for s in self.sources:
            unread = getattr(s, "unread_bytes", None)
            if unread is not None:
                left += unread()
            s.close()
        if left:
            log.warning("stopping: %d bytes that senders had sent were left unread in the kernel's buffers", left)
        self._closing = True
        self._wake_writer.set()
        for task in tasks:
            if task.get_name() != "nwsyslog-writer":
                task.cancel()
        # (A task that failed was reported by `_task_failed`.)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.spool is not None and self.pipeline is not None:
            self._refreshed = 0.0
            await self._final_commit()
        await self._save_inventory()
        await self._stop_delivery()
        await self._close_resources()

    async def _final_commit(self) -> None:
        """The last commit; while the spool fails, retried for up to `shutdown_timeout` seconds.
        What still could not be written is lost, and said so."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        while True:
            await self._commit(force=True)
            if self._store_error is None or loop.time() >= deadline:
                break
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
        if self._unwritten:
            stashed = stash(self.spool_path, self._unwritten, since=self._inserted)
            if stashed is not None:
                for path in self._stash_files:  # (what remained of them is in the new file)
                    path.unlink(missing_ok=True)
                self._stash_files = []
                log.error(
                    "%d records could not be written to the spool before the stop (%s): kept in %s; "
                    "the next start takes them in",
                    len(self._unwritten),
                    self._store_error,
                    stashed,
                )
            else:
                log.critical(
                    "%d records could not be written to the spool before the stop (%s): they are lost",
                    len(self._unwritten),
                    self._store_error,
                )
            self._unwritten = []

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
        # Both counts from the delivery process, after its last commit: all the spool keeps (what
        # "spool closed with N records waiting" says next), and of those the ones it had read.
        waiting = self.delivery.waiting
        log.info(
            "delivery flushed in %.1fs: %s records stay spooled for the next start (%s of them read for sending, "
            "not yet acknowledged)",
            time.monotonic() - started,
            "its" if waiting is None else waiting,
            "its" if left is None else left,
        )

    async def _close_resources(self) -> None:
        for s in self.sources:
            s.close()
        if self.delivery is not None and not self.delivery.ended.is_set():
            await self.delivery.stop(0)  # (a start that failed after it)
        if self.spool is not None:
            spool = self.spool
            try:
                await self._in_db(spool.refresh)
                remaining: int | str = spool.records
            except (sqlite3.Error, OSError) as exc:
                remaining = f"an unknown number of ({exc})"
            with contextlib.suppress(sqlite3.Error, OSError):
                await self._in_db(spool.close)
            log.info("spool closed with %s records waiting", remaining)
            self.spool = None
        if self._state_file is not None:
            self._state_file.close()
        if self._lock is not None:
            self._lock.release()
        self._db.shutdown(wait=True)
        if self._metrics_server is not None:
            self._metrics_server.should_exit = True
        if self.emulator is not None:
            self.emulator.stop()
        if self._servers:
            await asyncio.wait(self._servers, timeout=5)
