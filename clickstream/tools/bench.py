"""`clickstream bench`: the record processor's own cost, through amazon_kclpy's protocol code.

One processor, as the daemon runs one per shard: generated traffic is turned into the
protocol's JSON lines, read and answered by amazon_kclpy's `KCLProcess` exactly as in a
worker, with the sinks in memory (so the figures are the processor's CPU, not the
emulator's). The processor's clock is simulated from an arrival rate, so its 1-second age
flushes happen as often as they would with that much traffic per shard; DynamoDB writes per
1,000 events follow from that, and are what a deployment pays for.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from consumer.core.batch import FlushPolicy
from consumer.processor import ClickstreamProcessor
from consumer.retry import Backoff
from consumer.testing import MemoryArchive, MemoryStore, ScriptedDaemon, protocol_records
from producer.generator import TrafficProfile, generate
from producer.run import outgoing


@dataclass(frozen=True)
class BenchResult:
    events_per_shard_second: float
    """The simulated arrival rate on the shard."""
    events: int
    dead_letters: int
    wall_seconds: float
    events_per_second: float
    flushes: int
    dynamodb_writes: int
    dynamodb_reads: int
    s3_puts: int
    writes_per_1000_events: float
    reads_per_1000_events: float
    s3_puts_per_1000_events: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(
    *,
    events: int,
    seed: int,
    arrival_rate: float,
    poll_seconds: float = 1.0,
    malformed: int = 0,
) -> BenchResult:
    """Process `events` generated events as one shard receiving `arrival_rate` events/s.

    Records come in deliveries of what arrives between two polls (KCL's polling reads once
    per `idleTimeBetweenReadsInMillis`, at most 10,000 records).
    """
    delivery_size = max(1, min(10_000, round(arrival_rate * poll_seconds)))
    start = datetime.now(UTC) - timedelta(hours=1)
    records, _ = generate(seed, start, events, TrafficProfile(malformed=malformed))
    payloads = [(out.data, out.partition_key) for out in map(outgoing, records)]
    shard_records = protocol_records(payloads)

    simulated_now = [0.0]

    def advance(action: dict[str, Any]) -> None:
        if action["action"] == "processRecords":
            simulated_now[0] += len(action["records"]) / arrival_rate

    daemon = ScriptedDaemon(on_action=advance).initialize("shardId-000000000000")
    for offset in range(0, len(shard_records), delivery_size):
        daemon.process(shard_records[offset : offset + delivery_size])
    daemon.shutdown_requested()

    store, archive = MemoryStore(), MemoryArchive()
    processor = ClickstreamProcessor(
        store,
        archive,
        flush_policy=FlushPolicy(),
        checkpoint_backoff=Backoff(),
        clock=lambda: simulated_now[0],
    )
    began = time.perf_counter()
    daemon.run(processor)
    wall = time.perf_counter() - began

    processed = processor.totals["events"]
    per_thousand = 1000 / processed if processed else 0.0
    return BenchResult(
        events_per_shard_second=arrival_rate,
        events=processed,
        dead_letters=processor.totals["dead_letters"],
        wall_seconds=round(wall, 3),
        events_per_second=round(processed / wall, 1) if wall else 0.0,
        flushes=processor.totals["flushes"],
        dynamodb_writes=store.writes,
        dynamodb_reads=store.reads,
        s3_puts=archive.puts,
        writes_per_1000_events=round(store.writes * per_thousand, 1),
        reads_per_1000_events=round(store.reads * per_thousand, 1),
        s3_puts_per_1000_events=round(archive.puts * per_thousand, 2),
    )
