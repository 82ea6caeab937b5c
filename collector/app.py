"""The collector's HTTP edge (Starlette): read the request, call the pure intake, wait for
delivery, answer. Every answer is JSON shaped like Segment's: `{"success": true}` or
`{"success": false, "code": ..., "message": ...}`."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final, Protocol

import rjsmin
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clickstream.kernel.emf import EmfWriter
from clickstream.kernel.logging import get_logger
from clickstream.stores.suppression import Suppression, SuppressionList
from collector import intake
from collector.delivery import Deliverer, Overloaded, Undelivered
from collector.intake import Edge, Intake, Refused
from collector.metrics import CollectorMetrics
from collector.segment import CALL_TYPES, SHORT_PATHS
from collector.settings import CollectorSettings

log = get_logger(component="collector")

BATCH_PATHS: Final = ("batch", "import", "b")
"""Segment's `/v1/batch` (and its old name `/v1/import`); analytics.js 2.0 batches to `/b`
under its API host, which is `<host>/v1`."""

READY_CACHE_SECONDS: Final = 2.0
PREFLIGHT_CACHE_SECONDS: Final = 86_400
PARSED_OFF_LOOP_BYTES: Final = 64 * 1024
"""Bodies larger than this are parsed in a worker thread, one at a time, so a large batch
never holds the event loop (and `/health`, `/ready`) for its whole parse."""
PARSE_EXPANSION: Final = 4
"""How many times its size a body is taken from the in-flight budget while it is read and
parsed (an ordinary batch parses into 1 to 4 times its bytes; bodies of tiny elements more,
which the one-at-a-time parse bounds)."""
PUT_CALL_SECONDS: Final = 30.0
"""The longest one PutRecords call can last (two attempts of 5 s to connect and 5 s to read,
and backoff): a record in a call when its request's deadline passes lands within it."""


class Stream(Protocol):
    stream_name: str

    async def put_records(self, records: Any) -> list[str | None]: ...

    async def ready(self) -> tuple[bool, str]: ...


StreamFactory = Callable[[CollectorSettings], AbstractAsyncContextManager[Stream]]


def tracker_script() -> bytes:
    """The tracker as served: its source (commented for those who read it) minified once,
    when the app starts (rjsmin: comments and needless whitespace out, nothing renamed)."""
    source = resources.files("collector").joinpath("static/clickstream.js").read_text()
    minified: str = rjsmin.jsmin(source)
    return minified.encode()


class Collector:
    """The app's state: settings, the deliverer, metrics and the stream's readiness."""

    def __init__(
        self,
        settings: CollectorSettings,
        stream: Stream,
        writer: EmfWriter,
        suppression: SuppressionList | None = None,
    ) -> None:
        self.settings = settings
        self.suppression_list = suppression
        self.suppression = Suppression()
        self.stream = stream
        self.deliverer = Deliverer(
            stream.put_records,
            linger_seconds=settings.linger_ms / 1000,
            max_records=settings.max_batch_records,
            max_bytes=settings.max_batch_bytes,
            max_concurrent_puts=settings.max_concurrent_puts,
            in_flight_limit=settings.in_flight_events,
            in_flight_bytes_limit=settings.resolved_in_flight_bytes(),
            timeout_seconds=settings.delivery_timeout_seconds,
        )
        self.parsing = asyncio.Semaphore(1)
        self.metrics = CollectorMetrics(writer)
        self.write_keys = [key.get_secret_value() for key in settings.write_keys]
        self._ready: tuple[float, bool, str] = (0.0, False, "not checked")
        self._probing: asyncio.Task[None] | None = None
        self.tracker = tracker_script()
        self.tracker_gzipped = gzip.compress(self.tracker, 9)

    async def ready(self) -> tuple[bool, str]:
        """The stream's last known readiness, at once: once it is READY_CACHE_SECONDS old a
        probe starts in the background. A slow stream (the case the load balancer's check
        must survive) never makes `/ready` slow; only the first call waits for a probe."""
        checked_at, ok, status = self._ready
        if checked_at == 0.0:
            await self._probe()
        elif time.monotonic() - checked_at > READY_CACHE_SECONDS and self._probing is None:
            self._probing = asyncio.get_running_loop().create_task(self._probe())
            self._probing.add_done_callback(self._probed)
        _, ok, status = self._ready
        return ok, status

    async def _probe(self) -> None:
        ok, status = await self.stream.ready()
        self._ready = (time.monotonic(), ok, status)

    def _probed(self, task: asyncio.Task[None]) -> None:
        self._probing = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("readiness probe failed", error=repr(task.exception())[:500])

    def edge(self, request: Request) -> Edge:
        return Edge(
            received_at=datetime.now(UTC),
            user_agent=request.headers.get("user-agent"),
            client_ip=request.client.host if request.client else None,
            suppression=self.suppression,
            max_event_bytes=self.settings.max_event_bytes,
            arrival_allowance=timedelta(
                seconds=self.settings.delivery_timeout_seconds + PUT_CALL_SECONDS
            ),
        )

    async def body(self, request: Request, held: list[int]) -> bytes:
        """The body, refused past the size limit before it is all read, or when it comes
        slower than the body deadline; its declared length (or each chunk, without one) is
        taken from the in-flight budget first (`held` says how much, for the caller to give
        back)."""
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise Refused(413, f"request body of {declared} bytes exceeds {limit}")
        chunks, size = [], 0
        if declared and declared.isdigit():
            # The whole body at once, before any of it is read: requests that each hold a
            # part of the budget could otherwise all run out of it half-read.
            self.deliverer.reserve(int(declared) * PARSE_EXPANSION)
            held[0] += int(declared) * PARSE_EXPANSION
        try:
            async with asyncio.timeout(self.settings.body_timeout_seconds):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise Refused(413, f"request body exceeds {limit} bytes")
                    if size * PARSE_EXPANSION > held[0]:  # chunked: no length declared
                        self.deliverer.reserve(len(chunk) * PARSE_EXPANSION)
                        held[0] += len(chunk) * PARSE_EXPANSION
                    chunks.append(chunk)
        except TimeoutError:
            raise Refused(
                408, f"the body did not arrive within {self.settings.body_timeout_seconds:g} s"
            ) from None
        return b"".join(chunks)

    def parse(self, raw: bytes, request: Request, read: Callable[[Any, Edge], Intake]) -> Intake:
        """The request's events, from its bytes; the parsed body is gone when this returns."""
        authorization = request.headers.get("authorization")
        body = intake.decode_body(
            raw,
            content_type=request.headers.get("content-type"),
            content_encoding=request.headers.get("content-encoding"),
            max_bytes=self.settings.max_request_bytes,
        )
        if not authorization:
            key = intake.write_key_from(None, body)
            if not intake.key_is_known(key, self.write_keys):
                raise Refused(401, "unknown write key" if key else "missing write key")
        return read(body, self.edge(request))

    async def accept(self, request: Request, read: Callable[[Any, Edge], Intake]) -> Response:
        held = [0]
        try:
            # A key in the header is checked before the body is read; only without one does
            # the body's `writeKey` count (analytics.js sends no headers).
            authorization = request.headers.get("authorization")
            if authorization and not intake.key_is_known(
                intake.write_key_from(authorization, None), self.write_keys
            ):
                raise Refused(401, "unknown write key")
            raw = await self.body(request, held)
            if len(raw) > PARSED_OFF_LOOP_BYTES or request.headers.get("content-encoding"):
                async with self.parsing:
                    accepted = await asyncio.to_thread(self.parse, raw, request, read)
            else:
                accepted = self.parse(raw, request, read)
            del raw  # only the records wait for the stream, not the body
        except Refused as refused:
            self.metrics.request(0, {f"http_{refused.status}": 1})
            return _answer(refused)
        except Overloaded as exc:
            return self.unavailable(exc, 0)
        except ClientDisconnect:
            return Response(status_code=499)
        finally:
            self.deliverer.release(held[0])
        return await self.deliver(accepted)

    def unavailable(self, exc: Overloaded | Undelivered, events: int) -> Response:
        self.metrics.unavailable += 1
        log.warning("answered 503", why=str(exc), events=events)
        why = (
            "too much in flight"
            if isinstance(exc, Overloaded)
            else "the stream did not take the events in time"
        )
        return _answer(
            Refused(503, f"not accepted, send again: {why}"),
            {"Retry-After": str(self.settings.retry_after_seconds)},
        )

    async def deliver(self, accepted: Intake) -> Response:
        """Put the accepted events and the refused ones' envelopes into the stream, then
        answer: 2xx when some events were taken, 400 or 413 when none was (the refusals are
        in the stream all the same, for the workers' dead letters)."""
        records = accepted.records + accepted.refusals
        try:
            await self.deliverer.deliver(records)
        except (Overloaded, Undelivered) as exc:
            return self.unavailable(exc, len(records))
        by_reason = accepted.rejected_by_reason()
        self.metrics.request(len(accepted.records), by_reason, accepted.suppressed)
        # The first rejections one by one, every one counted: the answer stays small
        # whatever the request carried.
        rejected: dict[str, Any] = {}
        if accepted.rejected:
            rejected = {
                "rejected": accepted.rejected_listed(),
                "rejected_count": len(accepted.rejected),
                "rejected_by_reason": by_reason,
            }
        whole = accepted.refused_whole()
        if whole is not None:
            return _answer(whole, extra=rejected)
        return JSONResponse({"success": True, **rejected})


def _answer(
    refused: Refused, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> Response:
    content = {"success": False, "code": refused.code, "message": refused.reason, **(extra or {})}
    return JSONResponse(content, refused.status, headers=headers)


def create_app(
    settings: CollectorSettings,
    open_stream: StreamFactory,
    writer: EmfWriter | None = None,
    suppression: SuppressionList | None = None,
) -> Starlette:
    """The ASGI app. `open_stream` opens the stream for the app's lifetime (aiobotocore in
    production, a loopback stand-in in the benchmark); `suppression`, when given, is read
    before the app takes a request (it does not start without it) and again every
    `refresh_seconds`."""
    state: dict[str, Collector] = {}

    def collector() -> Collector:
        return state["collector"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_stream(settings) as stream:
            state["collector"] = made = Collector(
                settings,
                stream,
                writer
                or EmfWriter(settings.metrics_namespace, dimensions={"Stream": stream.stream_name}),
                suppression,
            )
            if suppression is not None:
                made.suppression = await asyncio.to_thread(suppression.load)
            made.deliverer.start()
            if "*" in settings.allowed_origins:
                log.warning(
                    "CORS: pages of any origin may send with a write key; "
                    "CLICKSTREAM_COLLECTOR_ALLOWED_ORIGINS lists the sites' origins to restrict it"
                )
            metrics_task = asyncio.get_running_loop().create_task(_emit_metrics(made))
            refresh_task = asyncio.get_running_loop().create_task(_refresh_suppression(made))
            log.info("collector ready", stream=stream.stream_name)
            try:
                yield
            finally:
                left = await made.deliverer.close(settings.shutdown_grace_seconds)
                metrics_task.cancel()
                refresh_task.cancel()
                made.metrics.emit(made.deliverer.take_stats())
                log.info("collector stopped", undelivered=left)

    async def own(request: Request) -> Response:
        return await collector().accept(request, intake.own_events)

    def segment_route(call: str | None) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            return await collector().accept(
                request, lambda body, edge: intake.segment_messages(body, call, edge)
            )

        return handle

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def sdk_telemetry(request: Request) -> Response:
        # analytics.js 2.0 posts its own usage counters to `<apiHost>/m` every 30 s; they
        # are not events. Taken and dropped, so no page logs an error for them.
        return JSONResponse({"success": True})

    async def ready(request: Request) -> Response:
        ok, why = await collector().ready()
        return JSONResponse({"ready": ok, "stream": why}, 200 if ok else 503)

    async def tracker(request: Request) -> Response:
        headers = {"Cache-Control": "public, max-age=300", "Vary": "Accept-Encoding"}
        body = collector().tracker
        if "gzip" in request.headers.get("accept-encoding", ""):
            body, headers["Content-Encoding"] = collector().tracker_gzipped, "gzip"
        return Response(body, media_type="application/javascript", headers=headers)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/clickstream.js", tracker, methods=["GET"]),
        Route("/v1/events", own, methods=["POST"]),
        Route("/v1/m", sdk_telemetry, methods=["POST"]),
    ]
    for call in CALL_TYPES:
        routes.append(Route(f"/v1/{call}", segment_route(call), methods=["POST"]))
    for short, call in SHORT_PATHS.items():
        routes.append(Route(f"/v1/{short}", segment_route(call), methods=["POST"]))
    for path in BATCH_PATHS:
        routes.append(Route(f"/v1/{path}", segment_route(None), methods=["POST"]))
    # CORS: every header a browser SDK asks for is allowed (analytics.js 2.0 sends
    # Authorization on every call and X-Retry-Count on its retries; SDKs add headers over
    # time), preflights are cached for a day (browsers cap it lower), never credentials.
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            allow_credentials=False,
            max_age=PREFLIGHT_CACHE_SECONDS,
        )
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


async def _refresh_suppression(collector: Collector) -> None:
    """The suppression list read again every `refresh_seconds` (in a thread: boto3's
    calls block); a failed read keeps the last list (`SuppressionList.current`)."""
    listed = collector.suppression_list
    if listed is None:
        return
    while True:
        await asyncio.sleep(listed.refresh_seconds)
        collector.suppression = await asyncio.to_thread(listed.current)


async def _emit_metrics(collector: Collector) -> None:
    while True:
        await asyncio.sleep(collector.settings.metrics_interval_seconds)
        collector.metrics.emit(collector.deliverer.take_stats())
