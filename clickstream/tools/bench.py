"""`clickstream bench`: what one record processor costs per event, and how fast it runs.

One processor, as the daemon runs one per shard, fed one shard's steady traffic at a given
rate (`bench_traffic`: concurrency in proportion to the rate) through amazon_kclpy's own
protocol code, with the sinks in memory. Its clock follows the traffic, so its cadences
(page counters, sessions, archive objects, checkpoints) fire as often as they would on a
shard with that much traffic, and every call it makes is billed as AWS would bill it
(`consumer.core.billing`): DynamoDB write and read units, KCL's checkpoints and lease
renewals, S3 PUTs.

Speed is the processor's alone: the protocol lines are rendered before the clock starts
(the daemon's serialisation is Java's work), and the same lines are read by a processor that
only decodes each record and checkpoints each delivery: the bare protocol ceiling. The ratio
of the two says how much our processing adds to the least a Python record processor does
(the KCL daemon's own CPU, in Java, is in neither).
"""

from __future__ import annotations

import base64
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from amazon_kclpy.messages import ProcessRecordsInput
from amazon_kclpy.v3.processor import RecordProcessorBase

from clickstream.kernel import aws
from clickstream.kernel.dynamo import to_dynamo
from clickstream.kernel.retry import Backoff
from clickstream.stores.guarded import CONDITION_NAMES
from clickstream.stores.sessions import SESSION_WRITE_CONDITION
from clickstream.tools import aws_standin
from clickstream.tools.bench_traffic import (
    Delivery,
    deliveries,
    distinct_sessions,
    least_session_writes,
    shard_traffic,
    traffic_seconds,
)
from consumer.core.billing import Ledger, dollars_per_million_events
from consumer.core.pending import Cadences
from consumer.gc_policy import processing_gc
from consumer.processor import ClickstreamProcessor
from consumer.testing import (
    MemoryAlerts,
    MemoryArchive,
    MemoryLease,
    MemoryStore,
    PreRenderedDaemon,
    render_action,
)

SHARD = "shardId-000000000000"
FAILOVER_SECONDS = 10.0
"""KCL renews each lease it holds every third of `failoverTimeMillis` (the default 10 s)."""
SHARD_READ_BYTES_PER_SECOND = 2_000_000
"""What a shard gives one consumer at most: 2 MB/s of record data (GetRecords' limit, and
enhanced fan-out's per consumer). A processor faster than this keeps up with any backlog."""
KCL_CALLS = frozenset({"checkpoints", "lease renewals"})
"""Calls the KCL daemon makes (with Java's SDK), not the record processor."""
SDK_PROBE_CALLS = 300
SESSION_FRESHNESS_SECONDS = 60.0
"""The freshness promised for session items (p95, `clickstream bench freshness`)."""
SEQUENCE_BASE = 49_680_477_731_447_033_642_919_771_787_628_839_273_462_071_122_875_000_000


@dataclass(frozen=True)
class CallFigures:
    calls: float
    write_units: float
    read_units: float


@dataclass(frozen=True)
class BenchResult:
    events_per_shard_second: float
    """The arrival rate on the shard."""
    events: int
    sessions: int
    """Distinct sessions in the run's traffic."""
    traffic_seconds: float
    dead_letters: int
    processor_seconds: float
    events_per_second: float
    ceiling_events_per_second: float
    """The bare protocol path on the same lines: decode each record, checkpoint each poll."""
    ratio_to_ceiling: float
    shard_read_events_per_second: float
    """The most events a shard can deliver to one consumer (`SHARD_READ_BYTES_PER_SECOND`
    over the run's average record data size): what the processor must keep up with."""
    sdk_cpu_ms_per_call: float
    """CPU the AWS SDK (boto3, built as the worker builds it) spends in the processor on one
    conditional PutItem of the run's session items (`sdk_cpu_per_call`): the in-memory
    sinks leave the client side of every call out of `events_per_second`."""
    sdk_calls_per_1000_events: float
    """The processor's own calls to AWS (KCL's checkpoints and lease renewals left out)."""
    sdk_cpu_us_per_event: float
    """`sdk_calls_per_1000_events` / 1,000 x `sdk_cpu_ms_per_call` (each call costed as a
    PutItem)."""
    events_per_core_second: float
    """What one core sustains, the processing and the SDK's calls together."""
    headroom_over_shard_reads: float
    """`events_per_core_second` over `shard_read_events_per_second`: above 1, a processor
    keeps up with all its shard can deliver."""
    per_1000_events: dict[str, CallFigures] = field(default_factory=dict)
    """Calls and capacity units by what they were for."""
    write_units_per_1000_events: float = 0.0
    read_units_per_1000_events: float = 0.0
    s3_puts_per_1000_events: float = 0.0
    dollars_per_million_events: float = 0.0
    least_session_writes_per_1000_events: float = 0.0
    """The fewest session writes one item per session allows at `SESSION_FRESHNESS_SECONDS`
    (`least_session_writes`): at a write unit or more each, the floor of the sessions' write
    units for any design that reads a session by id from its own item."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CeilingProcessor(RecordProcessorBase):  # type: ignore[misc]  # untyped base
    """The least a record processor can do: decode each record, checkpoint each delivery."""

    version = 3

    def initialize(self, initialize_input: Any) -> None:
        self.records = 0

    def process_records(self, process_records_input: ProcessRecordsInput) -> None:
        records = process_records_input.records
        for record in records:
            base64.b64decode(record.data)
        self.records += len(records)
        if records:
            last = records[-1]
            process_records_input.checkpointer.checkpoint(
                last.sequence_number, last.sub_sequence_number
            )

    def lease_lost(self, lease_lost_input: Any) -> None:
        return None

    def shard_ended(self, shard_ended_input: Any) -> None:
        shard_ended_input.checkpointer.checkpoint()

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        return None


def protocol_lines(polls: Sequence[Delivery]) -> list[tuple[str, float]]:
    """The daemon's actions for one shard's run, rendered, each with its moment."""
    lines = [
        (
            render_action(
                {
                    "action": "initialize",
                    "shardId": SHARD,
                    "sequenceNumber": "TRIM_HORIZON",
                    "subSequenceNumber": 0,
                }
            ),
            0.0,
        )
    ]
    sequence = SEQUENCE_BASE
    for poll in polls:
        rendered = []
        for record in poll.records:
            sequence += 1
            rendered.append(
                {
                    "action": "record",
                    "data": base64.b64encode(record.data).decode("ascii"),
                    "partitionKey": record.partition_key,
                    "sequenceNumber": str(sequence),
                    "subSequenceNumber": 0,
                    "approximateArrivalTimestamp": record.arrival_ms,
                }
            )
        action = {"action": "processRecords", "millisBehindLatest": 0, "records": rendered}
        lines.append((render_action(action), poll.at))
    end = polls[-1].at if polls else 0.0
    lines.append((render_action({"action": "shutdownRequested"}), end))
    return lines


def sdk_cpu_per_call(
    session_items: Sequence[dict[str, Any]], log_path: Path, calls: int = SDK_PROBE_CALLS
) -> float:
    """CPU seconds this process spends in one conditional DynamoDB PutItem of these items
    (as `DynamoDBStore` writes a session) through a boto3 client built as the worker builds
    it, against a stand-in on loopback that answers at once (`aws_standin`, in a process of
    its own): serialising, signing, sending and parsing, without DynamoDB's latency."""
    with aws_standin.running(log_path) as url:
        client = aws.local_client("dynamodb", url, "us-east-1", parameter_validation=False)

        def put(item: dict[str, Any]) -> None:
            client.put_item(
                TableName="bench",
                Item=to_dynamo(item),
                ConditionExpression=SESSION_WRITE_CONDITION,
                ExpressionAttributeNames=CONDITION_NAMES,
                ExpressionAttributeValues=to_dynamo(
                    {":position": item["position"], ":shard": item["shard_id"]}
                ),
            )

        put(session_items[0])  # the first call loads the service's model
        # The fastest of three rounds, as for the processor: a shared machine slows one
        # round by a fifth now and then.
        rounds = []
        for _ in range(3):
            began = time.process_time()
            for number in range(calls):
                put(session_items[number % len(session_items)])
            rounds.append((time.process_time() - began) / calls)
        return min(rounds)


def _timed(processor: Any, daemon: PreRenderedDaemon) -> float:
    began = time.perf_counter()
    daemon.run(processor)
    return time.perf_counter() - began


def run(
    *,
    events: int,
    seed: int,
    arrival_rate: float,
    poll_seconds: float = 1.0,
    make_processor: Callable[..., Any] | None = None,
    timing_runs: int = 3,
) -> BenchResult:
    """Process `events` steady events as one shard receiving `arrival_rate` events/s.

    The ceiling and the processor each read the lines `timing_runs` times, in turns, and
    the fastest of each counts: a shared machine slows single runs by a fifth now and then,
    and the turns make both figures come from the same stretch of time. The calls billed are
    the first processor run's (every run makes the same calls)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    records = shard_traffic(events, seed, arrival_rate, start)
    polls = deliveries(records, poll_seconds)
    lines = protocol_lines(polls)
    wall_start = datetime.fromtimestamp(records[0].arrival_ms / 1000, tz=UTC)
    build = make_processor or default_processor

    def processor_run(ledger: Ledger) -> tuple[Any, PreRenderedDaemon, float, MemoryStore]:
        store, archive = MemoryStore(ledger=ledger), MemoryArchive(ledger=ledger)
        daemon = PreRenderedDaemon(lines)
        processor = build(
            store,
            archive,
            lease=MemoryLease(ledger),
            alerts=MemoryAlerts(ledger),
            clock=lambda: daemon.now,
            wall_clock=lambda: wall_start + timedelta(seconds=daemon.now),
        )
        # The in-memory store's billing and limit checks are the bench's, not the processor's.
        seconds = _timed(processor, daemon) - store.accounting_seconds
        return processor, daemon, seconds, store

    # Only the lines (text, which the collector never scans) stay: the generated records
    # would make every collection in the timed runs longer than in a worker.
    sessions, span = distinct_sessions(records), traffic_seconds(records)
    least_writes = least_session_writes(records, SESSION_FRESHNESS_SECONDS)
    mean_record_bytes = sum(len(record.data) for record in records) / len(records)
    shard_read_rate = SHARD_READ_BYTES_PER_SECOND / mean_record_bytes
    del records, polls
    ceiling = CeilingProcessor()
    ledger = Ledger()
    with processing_gc():  # as the worker runs (`consumer.gc_policy`), for both
        ceiling_seconds = _timed(ceiling, PreRenderedDaemon(lines))
        processor, daemon, seconds, store = processor_run(ledger)
        for _ in range(timing_runs - 1):
            ceiling_seconds = min(
                ceiling_seconds, _timed(CeilingProcessor(), PreRenderedDaemon(lines))
            )
            seconds = min(seconds, processor_run(Ledger())[2])

    with tempfile.TemporaryDirectory() as logs, processing_gc():
        sdk_per_call = sdk_cpu_per_call(list(store.sessions.values()), Path(logs) / "standin.log")
    del store
    processed = processor.totals["events"] + processor.totals["dead_letters"]
    ledger.write("checkpoints", daemon.checkpoints, calls=daemon.checkpoints)
    renewals = round(span / (FAILOVER_SECONDS / 3))
    ledger.write("lease renewals", renewals, calls=renewals)
    per = 1000 / processed if processed else 0.0
    figures = {
        what: CallFigures(
            round(charge.calls * per, 2),
            round(charge.write_units * per, 2),
            round(charge.read_units * per, 2),
        )
        for what, charge in sorted(ledger.charges.items())
    }
    s3_puts = ledger.calls("s3 puts")
    rate = processed / seconds if seconds else 0.0
    sdk_calls = sum(
        charge.calls for what, charge in ledger.charges.items() if what not in KCL_CALLS
    )
    sdk_seconds_per_event = sdk_calls * sdk_per_call / processed if processed else 0.0
    core_rate = 1 / (1 / rate + sdk_seconds_per_event) if rate else 0.0
    ceiling_rate = ceiling.records / ceiling_seconds if ceiling_seconds else 0.0
    return BenchResult(
        events_per_shard_second=arrival_rate,
        events=processor.totals["events"],
        sessions=sessions,
        traffic_seconds=round(span, 1),
        dead_letters=processor.totals["dead_letters"],
        processor_seconds=round(seconds, 3),
        events_per_second=round(rate),
        ceiling_events_per_second=round(ceiling_rate),
        ratio_to_ceiling=round(rate / ceiling_rate, 3) if ceiling_rate else 0.0,
        shard_read_events_per_second=round(shard_read_rate),
        sdk_cpu_ms_per_call=round(sdk_per_call * 1e3, 2),
        sdk_calls_per_1000_events=round(sdk_calls * per, 1),
        sdk_cpu_us_per_event=round(sdk_seconds_per_event * 1e6, 1),
        events_per_core_second=round(core_rate),
        headroom_over_shard_reads=round(core_rate / shard_read_rate, 2),
        per_1000_events=figures,
        write_units_per_1000_events=round(ledger.write_units * per, 1),
        read_units_per_1000_events=round(ledger.read_units * per, 1),
        s3_puts_per_1000_events=round(s3_puts * per, 3),
        dollars_per_million_events=round(
            dollars_per_million_events(processed, ledger.write_units, ledger.read_units, s3_puts),
            3,
        ),
        least_session_writes_per_1000_events=round(least_writes * per, 1),
    )


def default_processor(store: Any, archive: Any, **sinks_and_clocks: Any) -> ClickstreamProcessor:
    """The processor as a worker builds it, with its default settings."""
    return ClickstreamProcessor(
        store,
        archive,
        cadences=Cadences(),
        checkpoint_backoff=Backoff(),
        **sinks_and_clocks,
    )
