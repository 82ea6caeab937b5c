"""One producer run: records in, PutRecords out (or JSON lines for --dry-run), a report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from clickstream.kernel.events import ClickEvent
from producer.batching import MAX_RECORDS_PER_CALL, OutgoingRecord, batches
from producer.generator import Record
from producer.kpl import aggregate_by_partition_key
from producer.manifest import partition_key_of
from producer.sender import PutRecordsSender


@dataclass(frozen=True)
class RunReport:
    records: int
    sent: int
    calls: int
    retried_entries: int
    seconds: float
    last_sequence: dict[str, str] = field(default_factory=dict)
    """Per shard, the highest sequence number written (empty for a dry run)."""

    @property
    def records_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def outgoing(record: Record) -> OutgoingRecord:
    data = record.to_record() if isinstance(record, ClickEvent) else record.data
    return OutgoingRecord(data=data, partition_key=partition_key_of(record))


def write_dry_run(records: Sequence[Record], out: BinaryIO) -> RunReport:
    """The records as they would be sent, one per line (malformed ones as they are)."""
    started = time.monotonic()
    for record in records:
        out.write(outgoing(record).data + b"\n")
    out.flush()
    return RunReport(len(records), len(records), 0, 0, time.monotonic() - started)


def send_all(
    records: Sequence[Record],
    sender: PutRecordsSender,
    *,
    rate: float | None = None,
    on_progress: Callable[[int], None] = lambda sent: None,
    kpl_aggregate: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunReport:
    """Send every record in order, at most `rate` records per second when given."""
    started = clock()
    # With a target rate, smaller calls keep the flow smooth (about five calls a second).
    per_call = MAX_RECORDS_PER_CALL if rate is None else max(1, min(500, int(rate / 5)))
    done = 0
    stream: Iterable[OutgoingRecord] = (outgoing(r) for r in records)
    if kpl_aggregate:
        stream = list(aggregate_by_partition_key(stream))
    for batch in batches(stream, max_records=per_call):
        if rate is not None:
            ahead = started + done / rate - clock()
            if ahead > 0:
                sleep(ahead)
        sender.send(batch)
        done += sum(record.user_records for record in batch)
        on_progress(done)
    stats = sender.stats
    return RunReport(
        len(records),
        stats.sent,
        stats.calls,
        stats.retried_entries,
        clock() - started,
        {shard: str(sequence) for shard, sequence in sorted(stats.last_sequence.items())},
    )
