"""Records aggregated the way the Kinesis Producer Library does, with `aws-kinesis-agg`.

KCL de-aggregates such records and hands each user record over with the aggregate's
sequence number and its own sub-sequence number. Only records with the same partition key
(one session) share an aggregate here: KPL routes an aggregate by its first partition key,
so mixing sessions would move some of a session's events to another shard, and a session's
state lives on one shard.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from aws_kinesis_agg.aggregator import RecordAggregator

from producer.batching import OutgoingRecord

MAX_USER_RECORDS: Final = 50
"""User records per aggregate: small enough that a session spans several aggregates."""


def _emit(aggregated: Any) -> OutgoingRecord:
    partition_key, _explicit_hash_key, data = aggregated.get_contents()
    return OutgoingRecord(
        data=data, partition_key=partition_key, user_records=aggregated.get_num_user_records()
    )


def aggregate_by_partition_key(
    records: Iterable[OutgoingRecord], max_user_records: int = MAX_USER_RECORDS
) -> Iterator[OutgoingRecord]:
    """KPL-aggregated records, each holding consecutive records of one partition key.

    Order is kept within a partition key (which is all Kinesis keeps anyway).
    """
    open_aggregates: dict[str, RecordAggregator] = {}
    for record in records:
        aggregator = open_aggregates.setdefault(record.partition_key, RecordAggregator())
        full = aggregator.add_user_record(record.partition_key, record.data)
        if full is not None:  # the new record did not fit; it starts the next aggregate
            yield _emit(full)
        if aggregator.get_num_user_records() >= max_user_records:
            yield _emit(aggregator.clear_and_get())
            del open_aggregates[record.partition_key]
    for aggregator in open_aggregates.values():
        if aggregator.get_num_user_records():
            yield _emit(aggregator.clear_and_get())
