"""The Netwrix Auditor Integration API emulator, as a Starlette application.

Endpoints (under /netwrix/api/v1/activity_records): the write endpoint with and without the
trailing slash (Netwrix's documentation writes `.../activity_records/`, its own add-ons post to
`.../activity_records`), `enum` (GET first page, POST a ContinuationMark for the next) and
`search`. Any other path, `/write` included, is 404 as on the real server. Status codes and
bodies follow the spec: 200 with an empty text/plain body, 400 with an ErrorList,
401/404/405/413 with empty bodies, 500 with an empty body for corrupted JSON.

Faults for tests: `fail_rate`/`fail_status`/`fail_phase` fail a share of writes, `outage_s`
fails every write for a while, `latency_ms` delays every answer, and `poison` refuses forever,
with 500 and a ServerError ErrorList, every write holding a given text (a record the server
never takes).

Records read back look as the real server shows them: DataSource is "Netwrix API" whatever was
sent, and the Item's name carries its type, `name (Integration)`. `as_sent=True`
(`--as-sent`) returns them exactly as written instead, for tests of what a client sends.

Beyond the API, `GET /_emulator/stats` returns counters as JSON, for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ..netwrix.records import ITEM_TYPE_SUFFIX
from .auth import Authenticator, NtlmAcceptor
from .search import parse_search
from .store import RecordStore
from .wire import NS, BodyError, count_records, error_list, parse_xml, records_json, records_xml, validate_write

API = "/netwrix/api/v1/activity_records"
DEFAULT_PAGE = 1000
POISON_DESCRIPTION = "One or more Activity Records were not processed"


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything the emulator can be told; see `nwsyslog emulator --help`."""

    db: str = ":memory:"
    user: tuple[str, str] | None = None
    auth_scheme: Literal["basic", "digest", "ntlm"] = "basic"
    max_body_bytes: int | None = None
    fail_rate: float = 0.0
    fail_status: int = 503
    fail_phase: Literal["before", "after"] = "before"
    # An outage: every write fails with fail_status for this many seconds from the first one.
    outage_s: float = 0.0
    # A record the server never takes: a write whose body contains this text (as sent, escaped
    # by XML or JSON) is answered 500 with a ServerError ErrorList naming no record, and nothing
    # of it is stored; the same body without that record is written as usual.
    poison: str | None = None
    latency_ms: float = 0.0
    page_size: int = DEFAULT_PAGE
    seed: int | None = None
    # 1: every write body is parsed and checked against the XSD. N > 1 (benchmarks): only every
    # Nth body is; the others are counted by their record tags and stored as they came, so the
    # emulator can outrun the system under test instead of capping it.
    validate_every: int = 1
    # False: DataSource and Item read back as the real server shows them ("Netwrix API",
    # "name (Integration)"); True: exactly as written.
    as_sent: bool = False


class Emulator:
    """State shared by the endpoints: settings, store, counters, fault dice."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.store = RecordStore(settings.db)
        self.auth: Authenticator | None = None
        self.ntlm: NtlmAcceptor | None = None
        if settings.user and settings.auth_scheme == "ntlm":
            self.ntlm = NtlmAcceptor(*settings.user)
        elif settings.user:
            self.auth = Authenticator(*settings.user, settings.auth_scheme)  # type: ignore[arg-type]
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(settings.seed)
        # Parsing and XSD validation release the GIL: a few threads use every core.
        self._limiter = CapacityLimiter(max(2, os.cpu_count() or 2))
        self._writes = 0
        self._first_write: float | None = None
        self._poison = settings.poison.encode("utf-8") if settings.poison else None

    def _fault(self) -> bool:
        settings = self.settings
        if settings.outage_s > 0:
            now = time.monotonic()
            if self._first_write is None:
                self._first_write = now
            if now - self._first_write < settings.outage_s:
                return True
        return settings.fail_rate > 0 and self._rng.random() < settings.fail_rate

    def _answer(
        self, status: int, body: bytes = b"", media_type: str = "text/plain", headers: dict[str, str] | None = None
    ) -> Response:
        self.stats[f"status_{status}"] += 1
        return Response(body, status_code=status, media_type=media_type, headers=headers)

    def _error(self, exc: BodyError, fmt: str) -> Response:
        if not exc.errors:
            return self._answer(exc.status)
        media = "application/json" if fmt == "json" else "application/xml"
        return self._answer(exc.status, error_list(exc.errors, fmt), f"{media}; charset=UTF-8")

    async def _guard(self, request: Request) -> Response | None:
        """Authentication and injected latency, common to every API call."""
        self.stats["requests"] += 1
        if self.ntlm is not None:
            client = request.client
            connection = (client.host, client.port) if client else ("", 0)
            ok, challenge = self.ntlm.check(connection, request.headers.get("authorization"))
            if not ok:
                await _drain(request)
                return self._answer(401, headers={"WWW-Authenticate": f"NTLM {challenge}" if challenge else "NTLM"})
        if self.auth is not None:
            uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if not self.auth.check(request.headers.get("authorization"), request.method, uri):
                await _drain(request)
                return self._answer(401, headers={"WWW-Authenticate": self.auth.challenge()})
        if self.settings.latency_ms > 0:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        return None

    async def write(self, request: Request) -> Response:
        """POST .../activity_records/ (or without the slash): validate and store Activity Records."""
        if (denied := await self._guard(request)) is not None:
            return denied
        fmt = _format(request)
        try:
            body, too_large = await _read_body(request, self.settings.max_body_bytes)
        except ClientDisconnect:
            # The client went away mid-upload: nothing is stored, and nobody reads an answer.
            self.stats["client_disconnects"] += 1
            return Response(status_code=400)
        if too_large:
            return self._answer(413)
        if self._fault() and self.settings.fail_phase == "before":
            self.stats["faults"] += 1
            return self._answer(self.settings.fail_status)
        if self._poison is not None and self._poison in body:
            self.stats["poisoned"] += 1
            return self._poisoned(fmt)
        self._writes += 1
        try:
            if (self._writes - 1) % self.settings.validate_every == 0:  # the first, then every Nth
                count = await anyio.to_thread.run_sync(self._ingest, body, fmt, limiter=self._limiter)
            else:
                count = count_records(body, fmt)
                self.store.append(fmt, body, count)
                self.stats["unchecked_writes"] += 1
        except BodyError as exc:
            self.stats["rejected_requests"] += 1
            return self._error(exc, fmt)
        self.stats["records"] += count
        if self._fault() and self.settings.fail_phase == "after":
            # The records are stored but the client is told otherwise: a retry duplicates them.
            self.stats["faults"] += 1
            return self._answer(self.settings.fail_status)
        return self._answer(200)

    def _poisoned(self, fmt: str) -> Response:
        """The answer to a body holding the poison record: 500, as the real server answers when
        "one or more Activity Records were not processed", with no per-record status."""
        errors = [("ServerError", POISON_DESCRIPTION, "ActivityRecordList")]
        media = "application/json" if fmt == "json" else "application/xml"
        return self._answer(500, error_list(errors, fmt), f"{media}; charset=UTF-8")

    def _ingest(self, body: bytes, fmt: str) -> int:
        """Validate and store one write body (on a worker thread); return its record count."""
        count = validate_write(body, fmt).count
        self.store.append(fmt, body, count)
        return count

    async def enum(self, request: Request) -> Response:
        """GET/POST .../enum: page through every stored record in arrival order."""
        if (denied := await self._guard(request)) is not None:
            return denied
        fmt = _format(request)
        try:
            count = _count(request, self.settings.page_size)
            start = 0
            if request.method == "POST":
                start = _read_mark(await request.body(), fmt)
        except BodyError as exc:
            return self._error(exc, fmt)
        records, next_start = await anyio.to_thread.run_sync(self._page, start, count, limiter=self._limiter)
        return self._records(records, None if next_start is None else _encode_mark(next_start), fmt)

    async def search(self, request: Request) -> Response:
        """POST .../search: records matching a FilterList, paged by ContinuationMark."""
        if (denied := await self._guard(request)) is not None:
            return denied
        fmt = _format(request)
        try:
            count = _count(request, self.settings.page_size)
            search = parse_search(await request.body(), fmt)
            start = _decode_mark(search.mark) if search.mark else 0
        except BodyError as exc:
            return self._error(exc, fmt)
        records, next_start = await anyio.to_thread.run_sync(
            self._page, start, count, search.matches, limiter=self._limiter
        )
        # Netwrix's search is repeated until a page comes back empty: give a mark with every
        # non-empty page (past the end when this page was the last).
        mark = None
        if records:
            mark = _encode_mark(self.store.total if next_start is None else next_start)
        return self._records(records, mark, fmt)

    def _page(
        self, start: int, count: int, keep: Callable[[dict[str, Any]], bool] | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to `count` records from number `start` that pass `keep`, and the number the next
        page starts at (None when nothing is left)."""
        records: list[dict[str, Any]] = []
        for seq, stored in self.store.records(start, None if keep else count + 1):
            record = stored if self.settings.as_sent else as_server_shows(stored)
            if keep is not None and not keep(record):
                continue
            if len(records) == count:
                return records, seq
            records.append(record)
        return records, None

    def _records(self, records: list[dict[str, Any]], mark: str | None, fmt: str) -> Response:
        if fmt == "json":
            return self._answer(200, records_json(records, mark), "application/json; charset=UTF-8")
        return self._answer(200, records_xml(records, mark), "application/xml; charset=UTF-8")

    async def stats_endpoint(self, request: Request) -> Response:
        """GET /_emulator/stats: counters and the stored record total."""
        body = {**self.stats, "stored_records": self.store.total}
        return Response(json.dumps(body), media_type="application/json")


SERVER_DATA_SOURCE = "Netwrix API"


def as_server_shows(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the real server returns it: the server sets DataSource to "Netwrix
    API" on every record written through the API, and shows an Item with its type."""
    shown = {**record, "DataSource": SERVER_DATA_SOURCE}
    item = record.get("Item")
    if isinstance(item, dict) and isinstance(item.get("Name"), str):
        shown["Item"] = {**item, "Name": item["Name"] + ITEM_TYPE_SUFFIX}
    return shown


def _format(request: Request) -> str:
    return "json" if request.query_params.get("format", "").lower() == "json" else "xml"


def _count(request: Request, default: int) -> int:
    raw = request.query_params.get("count")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BodyError(400, [("InputError", f"count must be an integer, not {raw!r}", "count")]) from None
    if value < 1:
        raise BodyError(400, [("InputError", "count must be at least 1", "count")])
    return value


def _encode_mark(seq: int) -> str:
    return base64.urlsafe_b64encode(f"nwsyslog-emulator:{seq}".encode()).decode()


def _decode_mark(mark: str) -> int:
    try:
        prefix, _, seq = base64.urlsafe_b64decode(mark.strip().encode()).decode().partition(":")
        if prefix != "nwsyslog-emulator":
            raise ValueError(prefix)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BodyError(400, [("InputError", "invalid ContinuationMark", "ContinuationMark")]) from None


def _read_mark(body: bytes, fmt: str) -> int:
    if fmt == "json":
        try:
            mark = json.loads(body)
        except ValueError:
            raise BodyError(500, []) from None
        if isinstance(mark, dict):
            mark = mark.get("ContinuationMark")
        if not isinstance(mark, str):
            raise BodyError(400, [("InputError", "the body must be the ContinuationMark string", "body")])
        return _decode_mark(mark)
    root = parse_xml(body)
    if root.tag != NS + "ContinuationMark":
        raise BodyError(400, [("XMLError", "the root element must be ContinuationMark", "line 1")])
    return _decode_mark(root.text or "")


async def _read_body(request: Request, limit: int | None) -> tuple[bytes, bool]:
    """The body, or (b"", True) past `limit` bytes. Reads to the end either way, so the client
    gets the 413 instead of a reset connection in the middle of its upload."""
    declared = request.headers.get("content-length")
    if limit is None:
        return await request.body(), False
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await _drain(request)
        return b"", True
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        return b"", True
    return b"".join(chunks), False


async def _drain(request: Request) -> None:
    async for _ in request.stream():
        pass


def create_app(settings: EmulatorSettings | None = None) -> Starlette:
    """The emulator ASGI application; `app.state.emulator` holds its state."""
    emulator = Emulator(settings or EmulatorSettings())

    async def empty(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        emulator.stats[f"status_{status}"] += 1
        return Response(b"", status_code=status, media_type="text/plain")

    routes = [
        Route(f"{API}/", emulator.write, methods=["POST"]),
        Route(API, emulator.write, methods=["POST"]),
        Route(f"{API}/enum", emulator.enum, methods=["GET", "POST"]),
        Route(f"{API}/search", emulator.search, methods=["POST"]),
        Route("/_emulator/stats", emulator.stats_endpoint, methods=["GET"]),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {404: empty, 405: empty}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.emulator = emulator
    return app
