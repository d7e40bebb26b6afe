"""Prometheus metrics, `/healthz` and `/readyz` for the service.

Counters on the per-message path are plain integers in the stages' own stats objects; a custom
collector reads them when Prometheus scrapes, so counting costs nothing extra per message.
Request latency and batch size are histograms observed once per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .netwrix.sink import SendResult


@dataclass
class Readings:
    """Callables the collector reads at scrape time (each returns current values)."""

    sources: Callable[[], Iterable[tuple[str, str, Any]]]  # (kind, address, SourceStats)
    pipeline: Callable[[], Any]  # PipelineStats
    spool: Callable[[], tuple[int, int, int, int, int]]  # depth, bytes, spooled, overflow dropped, quarantined
    delivery: Callable[[], Any]  # DeliveryStats or None
    udp_drops: Callable[[], Iterable[tuple[str, int]]]  # (address, kernel drop count)
    ready: Callable[[], tuple[bool, str]] = field(default=lambda: (True, "ok"))


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
        for kind, address, st in self.r.sources():
            name = f"{kind}://{address}"
            received.add_metric([name], st.messages)
            shed.add_metric([name], st.shed)
            denied.add_metric([name], st.denied)
            framing.add_metric([name, "empty"], st.empty)
            framing.add_metric([name, "oversize"], st.oversize)
            framing.add_metric([name, "malformed"], st.malformed)
        yield from (received, denied, framing, shed)
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
        drops = CounterMetricFamily(
            "nwsyslog_udp_kernel_drops", "Datagrams the kernel dropped on the socket", labels=["listener"]
        )
        for address, count in self.r.udp_drops():
            drops.add_metric([f"udp://{address}"], count)
        yield drops


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

    def app(self) -> Starlette:
        """`/metrics`, `/healthz` (the process answers) and `/readyz` (listening, spool open,
        delivery not halted)."""

        async def metrics(request: Request) -> Response:
            return Response(self.text(), media_type=CONTENT_TYPE_LATEST)

        async def healthz(request: Request) -> Response:
            return PlainTextResponse("ok\n")

        async def readyz(request: Request) -> Response:
            ready, why = self.readings.ready()
            return PlainTextResponse(f"{why}\n", status_code=200 if ready else 503)

        return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz)])
