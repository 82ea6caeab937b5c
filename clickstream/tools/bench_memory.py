"""`clickstream bench --memory`: a record processor's memory over a long run.

A million events (by default) of one shard's steady traffic, generated and handed over one
delivery at a time (nothing of the run is held beforehand), to a processor whose sinks keep
nothing (they answer every read with "no item yet"), so what grows is the processor's own:
its caches, its commit window, its rollups. The resident size and the cache sizes are
sampled as the run goes; flat after the first minutes means states are let go once written.
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
from amazon_kclpy import kcl

from clickstream.stores.page_stats import MinuteRollup, PageMinuteKey, PageMinuteState
from clickstream.stores.sessions import SessionState
from clickstream.tools.bench_traffic import profile_for_rate, steady_events
from consumer.core.aggregate import Changes
from consumer.core.batch import ArchiveObject
from consumer.gc_policy import processing_gc
from consumer.sinks import SaveOutcome
from producer.run import outgoing

SHARD = "shardId-000000000000"
SEQUENCE_BASE = 49_680_477_731_447_033_642_919_771_787_628_839_273_462_071_122_875_000_000


class ForgetfulStore:
    """Takes every write, keeps none: every read finds no item."""

    def load(
        self, shard_id: str, sessions: set[str], pages: set[PageMinuteKey]
    ) -> tuple[dict[str, SessionState | None], dict[PageMinuteKey, PageMinuteState | None]]:
        return dict.fromkeys(sessions), dict.fromkeys(pages)

    def load_rollups(self, shard_id: str, minutes: set[str]) -> dict[str, MinuteRollup | None]:
        return dict.fromkeys(minutes)

    def save(self, changes: Changes, now: datetime) -> SaveOutcome:
        return SaveOutcome(written=changes.item_count)


class ForgetfulArchive:
    def put(self, objects: Sequence[ArchiveObject]) -> None:
        return None


@dataclass(frozen=True)
class MemorySample:
    events: int
    rss_mib: float
    cached_sessions: int
    cached_page_minutes: int
    window_records: int


@dataclass
class MemoryReport:
    events_per_shard_second: float
    events: int
    samples: list[MemorySample] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StreamingDaemon:
    """The daemon's side of the protocol, rendering each delivery as the processor asks."""

    def __init__(self, deliveries: Iterator[tuple[float, list[dict[str, Any]]]]) -> None:
        self._deliveries = deliveries
        self._answers: list[str] = []
        self._started = False
        self._ended = False
        self.now = 0.0
        self.delivered = 0

    def readline(self) -> str:
        if self._answers:
            return self._answers.pop(0)
        if not self._started:
            self._started = True
            action: dict[str, Any] = {
                "action": "initialize",
                "shardId": SHARD,
                "sequenceNumber": "TRIM_HORIZON",
                "subSequenceNumber": 0,
            }
            return json.dumps(action) + "\n"
        delivery = next(self._deliveries, None)
        if delivery is None:
            if self._ended:
                return ""
            self._ended = True
            return json.dumps({"action": "shutdownRequested"}) + "\n"
        self.now, records = delivery
        self.delivered += len(records)
        action = {"action": "processRecords", "millisBehindLatest": 0, "records": records}
        return json.dumps(action) + "\n"

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if '"checkpoint"' in line:
                self._answers.append(json.dumps({**json.loads(line), "error": None}) + "\n")
        return len(text)

    def flush(self) -> None:
        return None


def _deliveries(
    events: int, seed: int, rate: float, start: datetime
) -> Iterator[tuple[float, list[dict[str, Any]]]]:
    """One shard's steady traffic in one-second polls, generated as it is read."""
    profile = profile_for_rate(rate, seed)
    stream = itertools.islice(steady_events(seed, start, profile), events)
    sequence = SEQUENCE_BASE
    for second, group in itertools.groupby(
        stream, key=lambda e: int((e.timestamp - start).total_seconds())
    ):
        records = []
        for event in group:
            out = outgoing(event)
            sequence += 1
            arrival = event.timestamp + timedelta(milliseconds=50)
            records.append(
                {
                    "action": "record",
                    "data": base64.b64encode(out.data).decode("ascii"),
                    "partitionKey": out.partition_key,
                    "sequenceNumber": str(sequence),
                    "subSequenceNumber": 0,
                    "approximateArrivalTimestamp": int(arrival.timestamp() * 1000),
                }
            )
        yield float(second + 1), records


def run(
    *,
    events: int,
    seed: int,
    arrival_rate: float,
    samples: int = 10,
    on_sample: Any = None,
) -> MemoryReport:
    """Run `events` events at `arrival_rate` through one processor, sampling memory."""
    from clickstream.tools.bench import default_processor

    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    daemon = StreamingDaemon(_deliveries(events, seed, arrival_rate, start))
    processor = default_processor(
        ForgetfulStore(),
        ForgetfulArchive(),
        clock=lambda: daemon.now,
        wall_clock=lambda: start + timedelta(seconds=daemon.now),
    )
    report = MemoryReport(arrival_rate, events)
    every = max(1, events // samples)
    process = psutil.Process()
    next_sample = every

    def sampled_readline() -> str:
        nonlocal next_sample
        line = StreamingDaemon.readline(daemon)
        if daemon.delivered >= next_sample:
            sessions, pages = processor.cached
            sample = MemorySample(
                daemon.delivered,
                round(process.memory_info().rss / 2**20, 1),
                sessions,
                pages,
                processor.pending_records,
            )
            report.samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
            next_sample += every
        return line

    daemon.readline = sampled_readline  # type: ignore[method-assign]
    with processing_gc():  # the worker's collector settings: memory as a worker holds it
        kcl.KCLProcess(
            processor, input_file=daemon, output_file=daemon, error_file=sys.stderr
        ).run()
    return report
