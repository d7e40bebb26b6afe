"""Prometheus metrics, `/healthz` and `/readyz` for the service.

Counters on the per-message path are plain integers in the stages' own stats objects; a custom
collector reads them when Prometheus scrapes, so counting costs nothing extra per message.
Request latency and batch size are histograms observed once per request.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .http_auth import AuthMiddleware, load_credentials
from .netwrix.sink import SendResult

if TYPE_CHECKING:
    from .config import MetricsConfig

log = logging.getLogger("nwsyslog.metrics")


# The delivery process's states, for HostState, the nwsyslog_delivery_state gauge and /readyz:
# starting (not started yet), running, retrying (writes fail and are retried), halted (401, 403,
# 404, a certificate problem: retried every minute), stalled (silent), restarting (a new process).
DeliveryState = Literal["starting", "running", "retrying", "halted", "stalled", "restarting"]
DELIVERY_STATES: tuple[DeliveryState, ...] = get_args(DeliveryState)


@dataclass
class HostState:
    """The service's view of its host-side health (read at scrape time)."""

    spool_write_failing: bool = False  # the last commit to the spool failed; records wait in memory
    spool_write_failures: int = 0  # failed commits since start
    spool_held: int = 0  # records held in memory because the spool could not take them
    delete_failures: int = 0  # failed commits of delivered ids (delivery process)
    listeners_paused: bool = False  # back-pressure: spool full, backlog, or spool failing
    delivery_state: DeliveryState = "starting"  # see DELIVERY_STATES
    delivery_restarts: int = 0  # delivery processes started again (stalled or ended)
    salvaged: int = 0  # records recovered from a damaged spool at start
    salvage_lost: int = 0  # records known lost with a damaged spool or its WAL
    spool_oldest_age: float = 0.0  # seconds the oldest waiting record has waited (0: none)


@dataclass
class Readings:
    """Callables the collector reads at scrape time (each returns current values)."""

    sources: Callable[[], Iterable[tuple[str, str, Any]]]  # (kind, address, SourceStats)
    pipeline: Callable[[], Any]  # PipelineStats
    spool: Callable[[], tuple[int, int, int, int, int]]  # depth, bytes, spooled, overflow dropped, quarantined
    delivery: Callable[[], Any]  # DeliveryStats or None
    udp_drops: Callable[[], Iterable[tuple[str, int]]]  # (address, kernel drop count)
    ready: Callable[[], tuple[bool, str]] = field(default=lambda: (True, "ok"))
    host: Callable[[], HostState] = field(default=HostState)
    # The status page's JSON (`/api/status`) and the unmatched inventory (`/api/unmatched`).
    status: Callable[[], dict[str, Any]] = field(default=dict)
    unmatched: Callable[[], dict[str, Any]] = field(default=dict)


class _Collector(Collector):
    def __init__(self, readings: Readings) -> None:
        self.r = readings

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily("nwsyslog_received", "Messages received", labels=["listener"])
        denied = CounterMetricFamily(
            "nwsyslog_accept_list_dropped", "Messages or connections refused by the accept list", labels=["listener"]
        )
        framing = CounterMetricFamily(
            "nwsyslog_framing_errors", "Empty datagrams, oversize or malformed TCP frames", labels=["listener", "kind"]
        )
        shed = CounterMetricFamily(
            "nwsyslog_overload_dropped",
            "Datagrams discarded unprocessed while the listeners were paused (spool full with "
            "overflow block, or records waiting for the spool at spool.max_in_memory)",
            labels=["listener"],
        )
        tls_refused = CounterMetricFamily(
            "nwsyslog_tls_refused",
            "TLS clients refused for their certificate (none where required, not signed by ca_file, "
            "not in permitted_peers)",
            labels=["listener"],
        )
        tls_failed = CounterMetricFamily(
            "nwsyslog_tls_handshake_failures",
            "Other failed TLS handshakes (no TLS spoken, protocol errors, timeouts)",
            labels=["listener"],
        )
        connections = CounterMetricFamily(
            "nwsyslog_tcp_connections",
            "TCP/TLS connections: accepted (past the accept list and the TLS checks), and of those the ones "
            "ended by an error (a reset, a malformed frame) or closed after idle_timeout",
            labels=["listener", "outcome"],
        )
        for kind, address, st in self.r.sources():
            name = f"{kind}://{address}"
            received.add_metric([name], st.messages)
            shed.add_metric([name], st.shed)
            denied.add_metric([name], st.denied)
            framing.add_metric([name, "empty"], st.empty)
            framing.add_metric([name, "oversize"], st.oversize)
            framing.add_metric([name, "malformed"], st.malformed)
            if kind in ("tcp", "tls"):
                connections.add_metric([name, "accepted"], st.connections)
                connections.add_metric([name, "error"], st.connection_errors)
                connections.add_metric([name, "idle_timeout"], st.idle_closed)
            if kind == "tls":
                tls_refused.add_metric([name], st.tls_refused)
                tls_failed.add_metric([name], st.tls_handshake_failures)
        yield from (received, denied, framing, shed, tls_refused, tls_failed, connections)
        p = self.r.pipeline()
        for metric, help_text, value in (
            ("nwsyslog_parsed", "Messages whose syslog header was read", p.received - p.parse_errors),
            ("nwsyslog_parse_errors", "Messages whose syslog header could not be read", p.parse_errors),
            ("nwsyslog_unmatched", "Messages no rule claimed", p.unmatched),
            ("nwsyslog_dropped_by_rule", "Messages claimed by a drop rule", p.dropped),
            ("nwsyslog_records", "Activity Records produced", p.records),
        ):
            yield CounterMetricFamily(metric, help_text, value=value)
        render = CounterMetricFamily(
            "nwsyslog_render_errors", "Matched messages whose record could not be built", labels=["rule"]
        )
        for rule_id, count in p.render_errors_by_rule.items():
            render.add_metric([rule_id], count)
        yield render
        limited = CounterMetricFamily(
            "nwsyslog_rate_limited", "Messages dropped by a source's rate_limit, per sender address", labels=["source"]
        )
        for source, count in list(p.rate_limited_by_source.items()):
            limited.add_metric([source], count)
        yield limited
        depth, size, spooled, overflow, quarantined = self.r.spool()
        yield GaugeMetricFamily("nwsyslog_spool_depth", "Records waiting in the spool", value=depth)
        yield GaugeMetricFamily("nwsyslog_spool_bytes", "Bytes of records waiting in the spool", value=size)
        yield CounterMetricFamily("nwsyslog_spooled", "Records written to the spool", value=spooled)
        yield CounterMetricFamily(
            "nwsyslog_spool_overflow_dropped", "Records dropped because the spool was full", value=overflow
        )
        yield GaugeMetricFamily("nwsyslog_quarantined", "Records in quarantine", value=quarantined)
        d = self.r.delivery()
        if d is not None:
            yield CounterMetricFamily("nwsyslog_sent", "Records the server acknowledged (200)", value=d.delivered)
            yield CounterMetricFamily("nwsyslog_retries", "Write requests retried", value=d.retries)
            yield CounterMetricFamily("nwsyslog_requests", "Write requests made", value=d.requests)
            yield CounterMetricFamily(
                "nwsyslog_quarantined_by_delivery", "Records quarantined by this process", value=d.quarantined
            )
            yield CounterMetricFamily(
                "nwsyslog_bisections_500",
                "Batches split because the server answered 500 to them for netwrix.retry.bisect_after_500 seconds",
                value=d.bisections_500,
            )
            yield CounterMetricFamily(
                "nwsyslog_bisect_resends",
                "Records sent again by a 500-bisection (at most this many may be duplicates)",
                value=d.bisect_resends,
            )
        drops = CounterMetricFamily(
            "nwsyslog_udp_kernel_drops", "Datagrams the kernel dropped on the socket", labels=["listener"]
        )
        for address, count in self.r.udp_drops():
            drops.add_metric([f"udp://{address}"], count)
        yield drops
        h = self.r.host()
        gauge, counter = GaugeMetricFamily, CounterMetricFamily
        for family, metric, help_text, value in (
            (gauge, "nwsyslog_spool_oldest_seconds",
             "Seconds the oldest record waiting in the spool has waited (0 when none waits)", h.spool_oldest_age),
            (gauge, "nwsyslog_spool_write_failing",
             "1 while commits to the spool fail (disk full, I/O error, read-only, locked): records wait in memory",
             int(h.spool_write_failing)),
            (counter, "nwsyslog_spool_write_failures", "Commits to the spool that failed and were retried",
             h.spool_write_failures),
            (gauge, "nwsyslog_spool_held_in_memory", "Records held in memory until the spool takes them",
             h.spool_held),
            (counter, "nwsyslog_spool_delete_failures",
             "Commits of delivered records' deletion that failed and were retried (delivery process)",
             h.delete_failures),
            (gauge, "nwsyslog_listeners_paused", "1 while the listeners are paused by back-pressure",
             int(h.listeners_paused)),
            (counter, "nwsyslog_delivery_restarts", "Delivery processes started again after a stall or an exit",
             h.delivery_restarts),
            (counter, "nwsyslog_spool_salvaged_records", "Records recovered from a damaged spool at start",
             h.salvaged),
            (counter, "nwsyslog_spool_lost_records",
             "Records known lost with a damaged spool or its missing WAL (found at start)", h.salvage_lost),
        ):  # fmt: skip
            yield family(metric, help_text, value=value)
        state = GaugeMetricFamily(
            "nwsyslog_delivery_state", "The delivery process's state (1 for the current one)", labels=["state"]
        )
        for name in DELIVERY_STATES:
            state.add_metric([name], int(h.delivery_state == name))
        yield state


class Metrics:
    """The registry of one service (tests may run several in one process)."""

    def __init__(self, readings: Readings) -> None:
        self.readings = readings
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(readings))
        self.latency = Histogram(
            "nwsyslog_request_seconds",
            "Write request latency",
            ["outcome"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.batch = Histogram(
            "nwsyslog_batch_records",
            "Records per write request",
            registry=self.registry,
            buckets=(1, 10, 50, 100, 250, 500, 750, 1000),
        )

    def observe_request(self, records: int, result: SendResult) -> None:
        """Called once per write request (the client's `on_request`)."""
        self.latency.labels(result.outcome.name.lower()).observe(result.elapsed)
        self.batch.observe(records)

    def text(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)

    def app(self, settings: MetricsConfig | None = None) -> Starlette:
        """`/` (the status page), `/metrics`, `/healthz` (the process answers) and `/readyz` (200
        when listening, the spool taking records, the listeners not paused and delivery running;
        503 with the reason otherwise). With `settings`' auth_token_file or basic_auth (read now)
        every path but `/healthz` needs them (401 otherwise); a listener beyond loopback without
        either is logged as a warning unless allow_unauthenticated is set."""

        async def metrics(request: Request) -> Response:
            return Response(self.text(), media_type=CONTENT_TYPE_LATEST)

        async def healthz(request: Request) -> Response:
            return PlainTextResponse("ok\n")

        async def readyz(request: Request) -> Response:
            ready, why = self.readings.ready()
            return PlainTextResponse(f"{why}\n", status_code=200 if ready else 503)

        page, page_headers = status_page()

        async def index(request: Request) -> Response:
            return Response(page, media_type="text/html; charset=utf-8", headers=page_headers)

        async def api_status(request: Request) -> Response:
            return JSONResponse(self.readings.status(), headers={"Cache-Control": "no-store"})

        async def api_unmatched(request: Request) -> Response:
            return JSONResponse(self.readings.unmatched(), headers={"Cache-Control": "no-store"})

        routes = [
            Route("/", index),
            Route("/api/status", api_status),
            Route("/api/unmatched", api_unmatched),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
        middleware: list[Middleware] = []
        if settings is not None:
            if settings.authenticated:
                middleware.append(Middleware(AuthMiddleware, credentials=load_credentials(settings)))
            warning = settings.exposure_warning()
            if warning is not None:
                log.warning("%s", warning)
        return Starlette(routes=routes, middleware=middleware)


@functools.cache
def status_page() -> tuple[bytes, dict[str, str]]:
    """The status page (ingestor/status_page.html, package data) and its response headers: a
    Content-Security-Policy that runs only its own inline script and style (by hash) and lets it
    fetch from this origin only, so that nothing a message carries could run or load anything."""
    page = importlib.resources.files("ingestor").joinpath("status_page.html").read_bytes()

    def hashes(tag: bytes) -> str:
        bodies = re.findall(rb"<%s>(.*?)</%s>" % (tag, tag), page, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in bodies)

    policy = (
        f"default-src 'none'; script-src {hashes(b'script')}; style-src {hashes(b'style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return page, headers
