"""Posting events to a collector as browsers do: a session's events in small batches, in
order, many sessions at once; a 503 (or a lost connection) sent again with the same event
ids after the Retry-After the collector asked for."""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from clickstream.kernel.errors import ProducerError
from clickstream.kernel.events import ClickEvent
from clickstream.kernel.retry import Backoff, TryAgain, async_retrying, retry_after_seconds

RETRYABLE = frozenset({429, 500, 502, 503, 504})


def _worth_another_try(error: BaseException) -> bool:
    return isinstance(error, httpx.TransportError)


def _refusal(response: httpx.Response) -> Exception:
    """A non-200 answer: `TryAgain` (with the collector's `Retry-After`) when sending again
    may work, else a `ProducerError` saying what was refused."""
    if response.status_code not in RETRYABLE:
        return ProducerError(
            f"the collector refused a batch ({response.status_code}): {response.text}"
        )
    return TryAgain(
        f"{response.status_code}: {response.text[:200]}",
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
    )


@dataclass
class HttpReport:
    requests: int = 0
    events: int = 0
    retried_requests: int = 0
    seconds: float = 0.0


def session_batches(
    events: Sequence[ClickEvent], batch_size: int
) -> dict[str, list[list[ClickEvent]]]:
    """Each session's events in order, cut into batches: a browser's queue flushes."""
    by_session: dict[str, list[ClickEvent]] = {}
    for event in events:
        by_session.setdefault(event.session_id, []).append(event)
    return {
        session: [mine[start : start + batch_size] for start in range(0, len(mine), batch_size)]
        for session, mine in by_session.items()
    }


async def post_events(
    url: str,
    write_key: str,
    events: Sequence[ClickEvent],
    *,
    batch_size: int = 10,
    concurrency: int = 16,
    max_attempts: int = 8,
    on_progress: Callable[[int], None] = lambda done: None,
    addresses: Mapping[str, str] | None = None,
) -> HttpReport:
    """Every event into the collector at `url`, or `ProducerError` saying which was refused.

    `addresses` (session id -> the visitor's address) goes out as each batch's
    X-Forwarded-For, as a load balancer in front of the collector says who its client is: a
    collector that trusts this producer as its proxy then resolves each visitor's country
    (`producer.world`; the local stack's does)."""
    endpoint = url.rstrip("/") + "/v1/events"
    report = HttpReport()
    started = time.monotonic()
    # Each session's batches in order, one at a time, and across sessions the batch whose
    # first event is earliest goes next: browsers send events as they happen, so the stream's
    # event time runs forward, as the page-traffic rule expects. (Sending each session whole
    # put its last minutes into the stream ahead of other sessions' first ones: with a slow
    # collector the rule then judged minutes whose events were still to come.)
    queued = session_batches(events, batch_size)
    ready: list[tuple[datetime, int, str, int]] = [
        (batches[0][0].timestamp, order, session, 0)
        for order, (session, batches) in enumerate(queued.items())
    ]
    heapq.heapify(ready)
    left = sum(len(batches) for batches in queued.values())
    more = asyncio.Event()

    backoff = Backoff(
        base_seconds=0.2, cap_seconds=8.0, deadline_seconds=None, max_attempts=max_attempts
    )

    def counted(attempt: int, error: BaseException, delay: float) -> None:
        report.retried_requests += 1

    async def post(client: httpx.AsyncClient, batch: list[ClickEvent]) -> None:
        body = json.dumps({"events": [json.loads(e.to_record()) for e in batch]})
        address = (addresses or {}).get(batch[0].session_id)
        headers = {"X-Forwarded-For": address} if address else None
        try:
            async for attempt in async_retrying(
                backoff, retry_on=_worth_another_try, on_retry=counted
            ):
                with attempt:
                    report.requests += 1
                    response = await client.post(
                        endpoint, content=body, auth=(write_key, ""), headers=headers
                    )
                    if response.status_code != 200:
                        raise _refusal(response)
                    report.events += len(batch)
                    on_progress(report.events)
        except (TryAgain, httpx.TransportError) as exc:
            report.retried_requests += 1
            problem = exc.reason if isinstance(exc, TryAgain) else f"{type(exc).__name__}: {exc}"
            raise ProducerError(
                f"{endpoint}: gave up after {max_attempts} tries ({problem})"
            ) from None

    async def visitor(client: httpx.AsyncClient) -> None:
        nonlocal left
        while left:
            if not ready:  # the sessions left are each waiting for a batch in flight
                more.clear()
                await more.wait()
                continue
            _, order, session, index = heapq.heappop(ready)
            batches = queued[session]
            await post(client, batches[index])
            left -= 1
            if index + 1 < len(batches):
                heapq.heappush(ready, (batches[index + 1][0].timestamp, order, session, index + 1))
            more.set()

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(visitor(client) for _ in range(concurrency)))
    report.seconds = time.monotonic() - started
    return report
