"""The deliverer: requests batched across connections, answered only once in the stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

import pytest

from collector.delivery import THROTTLED, Deliverer, Overloaded, Undelivered, backoff_seconds
from collector.intake import StreamRecord

pytestmark = pytest.mark.anyio


class FakeStream:
    """A PutRecords stand-in: records each call; `refuse(call, index, record)` picks the
    entries it answers with a throttle; `gate` holds calls until opened."""

    def __init__(self, refuse: Callable[[int, int, StreamRecord], bool] | None = None) -> None:
        self.calls: list[list[StreamRecord]] = []
        self.stored: list[StreamRecord] = []
        self.refuse = refuse or (lambda call, index, record: False)
        self.gate = asyncio.Event()
        self.gate.set()
        self.raise_on_call: set[int] = set()

    async def put_records(self, records: Sequence[StreamRecord]) -> list[str | None]:
        call = len(self.calls)
        self.calls.append(list(records))
        await self.gate.wait()
        if call in self.raise_on_call:
            raise ConnectionError("stream unreachable")
        codes: list[str | None] = []
        for index, record in enumerate(records):
            if self.refuse(call, index, record):
                codes.append(THROTTLED)
            else:
                self.stored.append(record)
                codes.append(None)
        return codes


def records(request: int, count: int, size: int = 10) -> list[StreamRecord]:
    return [
        StreamRecord(f"s{request}", f"r{request}-{i}".ljust(size).encode()) for i in range(count)
    ]


def deliverer(stream: FakeStream, **options: object) -> Deliverer:
    values: dict[str, object] = {"linger_seconds": 0.02, "backoff_base_seconds": 0.001}
    values.update(options)
    return Deliverer(stream.put_records, jitter=lambda: 0.0, **values)  # type: ignore[arg-type]


async def test_concurrent_requests_share_put_records_calls_of_at_most_the_limit() -> None:
    # GIVEN a deliverer whose calls take at most 100 records
    stream = FakeStream()
    sender = deliverer(stream, max_records=100)
    sender.start()
    # WHEN 40 requests of 10 records arrive together
    await asyncio.gather(*(sender.deliver(records(r, 10)) for r in range(40)))
    # THEN they went out in a few full calls, each record exactly once
    assert len(stream.calls) == 4
    assert all(len(call) <= 100 for call in stream.calls)
    assert sorted(r.data for r in stream.stored) == sorted(
        r.data for n in range(40) for r in records(n, 10)
    )
    assert sender.in_flight == 0
    await sender.close(1)


async def test_a_call_is_cut_at_the_byte_limit() -> None:
    stream = FakeStream()
    sender = deliverer(stream, max_bytes=64 * 1024)
    sender.start()
    await sender.deliver(records(1, 20, size=10_000))  # 20 records of ~10 KB
    assert [len(call) for call in stream.calls] == [6, 6, 6, 2]
    await sender.close(1)


async def test_a_partial_failure_sends_again_only_the_refused_entries_before_answering() -> None:
    # GIVEN a stream that throttles the odd entries of the first call
    stream = FakeStream(refuse=lambda call, index, record: call == 0 and index % 2 == 1)
    sender = deliverer(stream)
    sender.start()
    batch = records(1, 10)
    # WHEN one request delivers
    await sender.deliver(batch)
    # THEN the second call carried exactly the five refused entries, and all ten are stored once
    assert [r.data for r in stream.calls[1]] == [batch[i].data for i in (1, 3, 5, 7, 9)]
    assert len(stream.calls) == 2
    assert sorted(r.data for r in stream.stored) == sorted(r.data for r in batch)
    assert sender.take_stats().entries_refused == {THROTTLED: 5}
    await sender.close(1)


async def test_a_call_that_fails_as_a_whole_is_sent_again() -> None:
    stream = FakeStream()
    stream.raise_on_call = {0}
    sender = deliverer(stream)
    sender.start()
    await sender.deliver(records(1, 3))
    assert len(stream.calls) == 2
    assert len(stream.stored) == 3
    assert sender.take_stats().calls_failed == 1
    await sender.close(1)


async def test_past_the_in_flight_budget_a_request_is_refused_at_once() -> None:
    # GIVEN a stream that does not answer yet and a budget of 10 records
    stream = FakeStream()
    stream.gate.clear()
    sender = deliverer(stream, in_flight_limit=10)
    sender.start()
    first = asyncio.create_task(sender.deliver(records(1, 8)))
    await asyncio.sleep(0.05)
    # WHEN a second request would pass the budget
    with pytest.raises(Overloaded):
        await sender.deliver(records(2, 5))
    # THEN nothing of it was taken, and the first request completes once the stream answers
    stream.gate.set()
    await first
    assert {r.partition_key for r in stream.stored} == {"s1"}
    await sender.close(1)


async def test_a_request_not_in_the_stream_by_its_deadline_is_told_so_and_not_sent_late() -> None:
    # GIVEN a stream that throttles everything
    stream = FakeStream(refuse=lambda call, index, record: True)
    sender = deliverer(stream, timeout_seconds=0.2, backoff_cap_seconds=0.05)
    sender.start()
    with pytest.raises(Undelivered):
        await sender.deliver(records(1, 4))
    await asyncio.sleep(0.2)
    # THEN its records are dropped from the queue: no more calls, nothing left in flight
    calls = len(stream.calls)
    await asyncio.sleep(0.2)
    assert len(stream.calls) == calls
    assert sender.in_flight == 0
    await sender.close(1)


async def test_close_sends_what_is_queued_and_refuses_new_requests() -> None:
    stream = FakeStream()
    stream.gate.clear()
    sender = deliverer(stream)
    sender.start()
    waiting = asyncio.create_task(sender.deliver(records(1, 5)))
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(sender.close(5))
    await asyncio.sleep(0.01)
    with pytest.raises(Undelivered):
        await sender.deliver(records(2, 1))
    stream.gate.set()
    assert await closing == 0
    await waiting
    assert len(stream.stored) == 5


def test_backoff_doubles_up_to_the_cap_with_jitter_below_the_step() -> None:
    assert backoff_seconds(1, 0.05, 2.0, 0.0) == pytest.approx(0.025)
    assert backoff_seconds(3, 0.05, 2.0, 0.999) == pytest.approx(0.2, rel=0.01)
    assert backoff_seconds(30, 0.05, 2.0, 0.0) == pytest.approx(1.0)


def test_the_collector_metrics_carry_exactly_the_documented_names() -> None:
    import io

    from clickstream.kernel.emf import EmfWriter
    from collector.delivery import DeliveryStats
    from collector.metrics import METRIC_NAMES, CollectorMetrics

    buffer = io.StringIO()
    metrics = CollectorMetrics(EmfWriter(stream=buffer, dimensions={"Stream": "s"}))
    metrics.request(8, {"not_json": 2})
    metrics.unavailable += 1
    stats = DeliveryStats(calls=2, latencies_ms=[float(n) for n in range(250)])
    stats.entries_refused[THROTTLED] = 3
    metrics.emit(stats)
    documents = [json.loads(line) for line in buffer.getvalue().splitlines()]
    names = {m["Name"] for d in documents for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == set(METRIC_NAMES)
    first = documents[0]
    assert (first["EventsAccepted"], first["EventsRejected"], first["ServiceUnavailable"]) == (
        8,
        2,
        1,
    )
    assert first["PutRecordsThrottled"] == 3
    assert len(first["PutRecordsLatency"]) == 100  # EMF's limit per metric, spread kept
    assert documents[1]["Reason"] == "not_json"
