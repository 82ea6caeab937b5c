"""One shard's traffic for the bench: as many concurrent visitors as the rate implies.

A shard taking 1,000 events/s serves about ten times the sessions of one taking 100, not
the same sessions faster: the generator's sessions-per-minute is scaled to the rate, from
its own events per session (measured, not assumed), and its first minutes, when visitors
are still arriving and no session has gone on long, are dropped, so the bench sees steady
traffic. Records arrive in deliveries of one KCL poll each (`idleTimeBetweenReadsInMillis`),
the way the daemon hands them to a record processor.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from producer.generator import TrafficGenerator, TrafficProfile
from producer.run import outgoing

WARMUP = timedelta(minutes=10)
"""Long enough for the generator's sessions (median ~1.5 minutes, a long tail) to settle."""
_CALIBRATION = timedelta(minutes=10)
MAX_RECORDS_PER_DELIVERY = 10_000
"""KCL's `maxRecords` per GetRecords."""


def steady_events(
    seed: int, start: datetime, profile: TrafficProfile, warmup: timedelta = WARMUP
) -> Iterator[Any]:
    """The generator's events from `start` on, its sessions having begun `warmup` before."""
    generator = TrafficGenerator(seed, start - warmup, profile)
    return itertools.dropwhile(lambda event: event.timestamp < start, generator.events())


def events_per_second(profile: TrafficProfile, seed: int) -> float:
    """The steady event rate a profile makes (measured over the generator's own traffic)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + _CALIBRATION
    count = sum(1 for _ in itertools.takewhile(lambda e: e.timestamp < end, steady_events(
        seed, start, profile
    )))  # fmt: skip
    return count / _CALIBRATION.total_seconds()


def profile_for_rate(rate: float, seed: int, base: TrafficProfile | None = None) -> TrafficProfile:
    """`base` with its sessions per minute scaled so that its traffic comes at `rate`."""
    base = base or TrafficProfile()
    natural = events_per_second(base, seed)
    return replace(base, sessions_per_minute=base.sessions_per_minute * rate / natural)


@dataclass(frozen=True, slots=True)
class ShardRecord:
    data: bytes
    partition_key: str
    arrival_ms: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one poll of the shard hands the record processor, and when."""

    at: float
    """Seconds since the traffic began."""
    records: list[ShardRecord]


def shard_traffic(events: int, seed: int, rate: float, start: datetime) -> list[ShardRecord]:
    """`events` steady events at `rate` events/s, as records in their arrival order (each
    arrives 50 ms after its timestamp)."""
    profile = profile_for_rate(rate, seed)
    records = []
    for event in itertools.islice(steady_events(seed, start, profile), events):
        out = outgoing(event)
        arrival = event.timestamp + timedelta(milliseconds=50)
        records.append(ShardRecord(out.data, out.partition_key, int(arrival.timestamp() * 1000)))
    return records


def deliveries(records: list[ShardRecord], poll_seconds: float) -> list[Delivery]:
    """The records grouped by the poll that reads them; polls that find nothing included
    (KCL calls the processor with no records then: `callProcessRecordsEvenForEmptyRecordList`)."""
    if not records:
        return []
    first_ms = records[0].arrival_ms
    polls: list[Delivery] = []
    index = 0
    poll = 1
    while index < len(records):
        at = poll * poll_seconds
        cutoff = first_ms + at * 1000
        batch: list[ShardRecord] = []
        while (
            index < len(records)
            and records[index].arrival_ms <= cutoff
            and len(batch) < MAX_RECORDS_PER_DELIVERY
        ):
            batch.append(records[index])
            index += 1
        polls.append(Delivery(at, batch))
        poll += 1
    return polls


def traffic_seconds(records: list[ShardRecord]) -> float:
    if len(records) < 2:
        return 0.0
    return (records[-1].arrival_ms - records[0].arrival_ms) / 1000


def distinct_sessions(records: list[ShardRecord]) -> int:
    return len({record.partition_key for record in records})


def least_session_writes(records: list[ShardRecord], bound_seconds: float) -> int:
    """The fewest writes that keep one item per session no more than `bound_seconds` behind
    its records' arrivals: each write waits as long as the oldest record it has not yet
    written allows, and takes every record arrived by then (greedy, which is optimal for a
    single deadline). With DynamoDB's one write unit or more per item written, it is the
    least any design reading sessions by id from their own items can bill for them."""
    arrivals: dict[str, list[int]] = {}
    for record in records:
        arrivals.setdefault(record.partition_key, []).append(record.arrival_ms)
    bound_ms = bound_seconds * 1000
    writes = 0
    for times in arrivals.values():
        deadline = float("-inf")
        for arrival in times:  # in arrival order already
            if arrival > deadline:
                writes += 1
                deadline = arrival + bound_ms
    return writes
