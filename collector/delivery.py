"""Many requests' events, few PutRecords calls; each request answered once its events are in.

`Deliverer.deliver(records)` returns only when every record is in the stream: records of
concurrent requests share PutRecords calls (a short linger; at most 500 records and 5 MiB a
call), entries Kinesis refused are sent again alone with backoff, and when the in-flight
budget is spent a new request is refused at once (`Overloaded`, a 503 with Retry-After)
instead of queueing without bound. A request whose records are not in the stream by its
deadline gets `Undelivered` (also a 503): the client sends again with the same event ids and
the consumer's dedupe makes a record that did arrive count once.

The Kinesis call is injected (`PutRecords`), so this runs against fakes in unit tests and
against a loopback stand-in in the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from clickstream.kernel.logging import get_logger
from collector.intake import StreamRecord

PutRecords = Callable[[Sequence[StreamRecord]], Awaitable[list[str | None]]]
"""One PutRecords call: per entry None (in the stream) or Kinesis' error code. Raising means
the call failed as a whole (throttled, unreachable): every entry is sent again."""

THROTTLED: Final = "ProvisionedThroughputExceededException"
CALL_FAILED: Final = "CallFailed"
MAX_RECORDS_PER_CALL: Final = 500
MAX_BYTES_PER_CALL: Final = 5 * 1024 * 1024
RECORD_OVERHEAD_BYTES: Final = 256
"""What a queued record costs beyond its bytes (its entry, record and ticket objects): the
in-flight budget counts it, so a budget of small records is not several times its size."""

log = get_logger(component="collector.delivery")


class Overloaded(Exception):
    """The in-flight budget is spent: the request is refused before anything is accepted."""


class Undelivered(Exception):
    """The request's records did not all reach the stream in time (or the server is closing)."""


class _Ticket:
    """One request's wait: how many of its records are not yet in the stream."""

    __slots__ = ("abandoned", "done", "remaining")

    def __init__(self, count: int, done: asyncio.Future[None]) -> None:
        self.remaining = count
        self.done = done
        self.abandoned = False

    def delivered_one(self) -> None:
        self.remaining -= 1
        if self.remaining == 0 and not self.done.done():
            self.done.set_result(None)


@dataclass(slots=True)
class _Entry:
    record: StreamRecord
    ticket: _Ticket
    attempt: int = 0

    @property
    def size(self) -> int:
        return len(self.record.data) + len(self.record.partition_key.encode())


@dataclass
class DeliveryStats:
    """Counters since the last `Deliverer.take_stats`, which the metrics task calls."""

    calls: int = 0
    records_sent: int = 0
    entries_refused: dict[str, int] = field(default_factory=dict)
    calls_failed: int = 0
    overloaded: int = 0
    undelivered: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def backoff_seconds(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with jitter in [0.5, 1) of the step; `jitter` in [0, 1)."""
    step: float = min(cap, base * 2 ** max(0, attempt - 1))
    return step * (0.5 + jitter / 2)


def _cost(record: StreamRecord) -> int:
    return len(record.data) + len(record.partition_key) + RECORD_OVERHEAD_BYTES


class Deliverer:
    def __init__(
        self,
        put_records: PutRecords,
        *,
        linger_seconds: float = 0.01,
        max_records: int = MAX_RECORDS_PER_CALL,
        max_bytes: int = MAX_BYTES_PER_CALL,
        max_concurrent_puts: int = 8,
        in_flight_limit: int = 20_000,
        in_flight_bytes_limit: int | None = None,
        timeout_seconds: float = 10.0,
        backoff_base_seconds: float = 0.05,
        backoff_cap_seconds: float = 2.0,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._put = put_records
        self._linger = linger_seconds
        self._max_records = min(max_records, MAX_RECORDS_PER_CALL)
        self._max_bytes = min(max_bytes, MAX_BYTES_PER_CALL)
        self._in_flight_limit = in_flight_limit
        self._bytes_limit = in_flight_bytes_limit
        self._in_flight_bytes = 0
        self._timeout = timeout_seconds
        self._backoff = (backoff_base_seconds, backoff_cap_seconds)
        self._jitter = jitter
        self._clock = clock
        self._puts = asyncio.Semaphore(max_concurrent_puts)
        self._queue: deque[_Entry] = deque()
        self._waiting_retry = 0
        self._running_puts: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None
        self.stats = DeliveryStats()

    @property
    def in_flight(self) -> int:
        """Records accepted into the queue and not yet in the stream (nor given up)."""
        return self._in_flight

    @property
    def in_flight_bytes(self) -> int:
        """The budget's bytes in use: queued records (with their overhead) and reservations."""
        return self._in_flight_bytes

    def reserve(self, size: int) -> None:
        """Take `size` bytes of the budget for something not yet queued (a request's body
        while it is read and parsed), or raise `Overloaded`; `release` gives them back."""
        if self._bytes_limit is not None and self._in_flight_bytes + size > self._bytes_limit:
            self.stats.overloaded += 1
            raise Overloaded(f"{self._in_flight_bytes} bytes in flight")
        self._in_flight_bytes += size

    def release(self, size: int) -> None:
        self._in_flight_bytes -= size

    def take_stats(self) -> DeliveryStats:
        taken, self.stats = self.stats, DeliveryStats()
        return taken

    def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def deliver(self, records: Sequence[StreamRecord]) -> None:
        """Return once every record is in the stream; `Overloaded` or `Undelivered` if not."""
        if not records:
            return
        if self._closing:
            self.stats.undelivered += 1
            raise Undelivered("the collector is shutting down")
        if self._in_flight + len(records) > self._in_flight_limit:
            self.stats.overloaded += 1
            raise Overloaded(f"{self._in_flight} events in flight")
        self.reserve(sum(_cost(record) for record in records))
        ticket = _Ticket(len(records), asyncio.get_running_loop().create_future())
        self._in_flight += len(records)
        self._queue.extend(_Entry(record, ticket) for record in records)
        if len(self._queue) >= self._max_records:
            self._full.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(ticket.done), self._timeout)
        except TimeoutError:
            ticket.abandoned = True
            self.stats.undelivered += 1
            raise Undelivered(
                f"{ticket.remaining} of {len(records)} events not in the stream after "
                f"{self._timeout:g} s"
            ) from None

    async def close(self, grace_seconds: float) -> int:
        """Refuse new requests, send what is queued, wait for calls in flight; returns how
        many records were still undelivered when the grace ran out (0 normally)."""
        self._closing = True
        deadline = self._clock() + grace_seconds
        while (self._queue or self._running_puts or self._waiting_retry) and (
            self._clock() < deadline
        ):
            self._wake.set()
            await asyncio.sleep(0.01)
        left = self._in_flight
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        return left

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            if len(self._queue) < self._max_records and self._linger > 0 and not self._closing:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._linger)
            while self._queue:
                batch = self._next_batch()
                if not batch:
                    break
                await self._puts.acquire()
                task = asyncio.get_running_loop().create_task(self._send(batch))
                self._running_puts.add(task)
                task.add_done_callback(self._running_puts.discard)

    def _next_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        while self._queue and len(batch) < self._max_records:
            entry = self._queue[0]
            if entry.ticket.abandoned:  # its request was answered 503: do not send it late
                self._queue.popleft()
                self._forget(entry)
                continue
            if batch and size + entry.size > self._max_bytes:
                break
            self._queue.popleft()
            batch.append(entry)
            size += entry.size
        return batch

    async def _send(self, batch: list[_Entry]) -> None:
        started = self._clock()
        try:
            try:
                codes = await self._put([entry.record for entry in batch])
            except Exception as exc:  # any failure of the whole call: its entries go again
                log.warning("PutRecords failed", error=repr(exc)[:300], records=len(batch))
                self.stats.calls_failed += 1
                codes = [CALL_FAILED] * len(batch)
            if len(codes) != len(batch):
                log.error("PutRecords answered for a different number of records")
                codes = [CALL_FAILED] * len(batch)
        finally:
            self._puts.release()
        self.stats.calls += 1
        self.stats.latencies_ms.append((self._clock() - started) * 1000)
        again: list[_Entry] = []
        for entry, code in zip(batch, codes, strict=True):
            if code is None:
                self.stats.records_sent += 1
                self._forget(entry)
                entry.ticket.delivered_one()
                continue
            refused = self.stats.entries_refused
            refused[code] = refused.get(code, 0) + 1
            if entry.ticket.abandoned:
                self._forget(entry)
            else:
                entry.attempt += 1
                again.append(entry)
        if again:
            self._retry_later(again)

    def _forget(self, entry: _Entry) -> None:
        """The entry is in the stream or given up: its share of the budget is free again."""
        self._in_flight -= 1
        self._in_flight_bytes -= _cost(entry.record)

    def _retry_later(self, entries: list[_Entry]) -> None:
        attempt = max(entry.attempt for entry in entries)
        delay = backoff_seconds(attempt, *self._backoff, self._jitter())
        self._waiting_retry += 1

        def requeue() -> None:
            self._waiting_retry -= 1
            self._queue.extendleft(reversed(entries))
            self._wake.set()

        asyncio.get_running_loop().call_later(delay, requeue)
