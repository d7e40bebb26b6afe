"""`/api/status` and `/api/unmatched`: what the service sees, as JSON for the status page and the CLI.

`History` samples the cumulative counters every HISTORY_INTERVAL seconds for the last
HISTORY_POINTS samples (15 minutes); the page draws rates from consecutive points. The status
is read from the service's own objects when asked (a few dict lookups: no per-message cost).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import __version__
from .unmatched import Inventory, iso

if TYPE_CHECKING:
    from .service import Service

HISTORY_INTERVAL = 5.0  # seconds between samples of the counters
HISTORY_POINTS = 180  # 15 minutes of them
TOP_SHAPES = 10  # unmatched shapes the status shows (with their drafts)
SERIES = ("received", "records", "unmatched", "sent", "retries")


@dataclass(frozen=True, slots=True)
class Point:
    """The cumulative counters at one moment."""

    t: float
    received: int
    records: int
    unmatched: int
    sent: int
    retries: int


class History:
    """The last HISTORY_POINTS samples of the counters `read` returns."""

    def __init__(self, read: Callable[[], dict[str, int]], clock: Callable[[], float] = time.time) -> None:
        self._read = read
        self._clock = clock
        self.points: collections.deque[Point] = collections.deque(maxlen=HISTORY_POINTS)

    def sample(self) -> None:
        """Take one sample now."""
        values = self._read()
        self.points.append(Point(self._clock(), *(int(values.get(name, 0)) for name in SERIES)))

    def as_json(self) -> dict[str, Any]:
        """The samples, oldest first."""
        return {
            "interval": HISTORY_INTERVAL,
            "points": [
                {"t": p.t, "received": p.received, "records": p.records, "unmatched": p.unmatched,
                 "sent": p.sent, "retries": p.retries}
                for p in self.points
            ],
        }  # fmt: skip


def unmatched_json(inventory: Inventory | None, limit: int | None = None) -> dict[str, Any]:
    """The inventory (most frequent first), each shape with its draft; all zero when off."""
    shown = inventory if inventory is not None else Inventory(samples=False)
    return {"enabled": inventory is not None, **shown.as_json(limit, drafts=True)}


def totals(service: Service, drops: dict[str, int] | None = None) -> dict[str, int]:
    """The cumulative counters, as `/metrics` has them (`drops`: the kernel's UDP drop counts
    by listener address, when the caller has read them already)."""
    p = service.pipeline.stats if service.pipeline is not None else None
    d = service.delivery.stats if service.delivery is not None else None
    spool = service.spool
    sources = [s.stats for s in service.sources]
    return {
        "received": sum(s.messages for s in sources),
        "parsed": (p.received - p.parse_errors) if p else 0,
        "records": p.records if p else 0,
        "unmatched": p.unmatched if p else 0,
        "parse_errors": p.parse_errors if p else 0,
        "dropped_by_rule": p.dropped if p else 0,
        "rate_limited": p.rate_limited if p else 0,
        "sent": d.delivered if d else 0,
        "retries": d.retries if d else 0,
        "quarantined": spool.quarantine_count if spool is not None else 0,
        "kernel_drops": sum((drops if drops is not None else dict(service._udp_drops())).values()),
        "overload_dropped": sum(s.shed for s in sources),
        "refused": sum(s.denied for s in sources),
        "spool_overflow_dropped": service.overflow_dropped,
    }


def status(service: Service) -> dict[str, Any]:
    """The status page's data (see the README's "status page")."""
    host = service._host_state()
    ready, why = service._ready()
    delivery = service.delivery
    since: float | None = None
    reason: str | None = None
    if delivery is not None:
        if host.delivery_state == "halted":
            since, reason = delivery.halted_since, delivery.halted
        elif host.delivery_state == "retrying":
            retrying = delivery.retrying
            if retrying is not None:
                since, reason = retrying
    spool = service.spool
    drops = dict(service._udp_drops())
    return {
        "version": __version__,
        "now": iso(time.time()),
        "started_at": iso(service.started_at),
        "samples_allowed": service.inventory.samples if service.inventory is not None else False,
        "ready": {"ok": ready, "reason": why},
        "delivery": {"state": host.delivery_state, "since": iso(since) if since else None, "reason": reason},
        "totals": totals(service, drops),
        "history": service.history.as_json(),
        "spool": {
            "depth": spool.records if spool is not None else 0,
            "bytes": spool.bytes if spool is not None else 0,
            "oldest_seconds": round(host.spool_oldest_age, 1),
            "write_failing": host.spool_write_failing,
            "held_in_memory": host.spool_held,
        },
        "quarantine": list(service.quarantine_view),
        "unmatched": unmatched_json(service.inventory, TOP_SHAPES),
        "refused": service.refused_senders(),
        "listeners": [
            {
                "name": f"{s.kind}://{s.host}:{s.port}",
                "received": s.stats.messages,
                "kernel_drops": drops.get(f"{s.host}:{s.port}") if s.kind == "udp" else None,
            }
            for s in service.sources
        ],
    }
