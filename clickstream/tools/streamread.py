"""Reading a whole stream back with plain GetRecords: for checks, the demo and tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from clickstream.kernel import aws


@dataclass(frozen=True, slots=True)
class StreamRecord:
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes


def read_shard(
    kinesis: Any, stream_name: str, shard_id: str, idle_polls: int = 2
) -> list[StreamRecord]:
    """Every record of one shard from TRIM_HORIZON until the shard has nothing more."""
    iterator = kinesis.get_shard_iterator(
        StreamName=stream_name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[StreamRecord] = []
    empty_in_a_row = 0
    while iterator and empty_in_a_row < idle_polls:
        page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        for record in page["Records"]:
            records.append(
                StreamRecord(
                    shard_id, record["SequenceNumber"], record["PartitionKey"], record["Data"]
                )
            )
        caught_up = page.get("MillisBehindLatest", 0) == 0
        empty_in_a_row = empty_in_a_row + 1 if not page["Records"] and caught_up else 0
        iterator = page.get("NextShardIterator")
        if not page["Records"]:
            time.sleep(0.05)
    return records


def read_stream(kinesis: Any, stream_name: str) -> list[StreamRecord]:
    """Every record of every shard of the stream."""
    records: list[StreamRecord] = []
    for shard_id in aws.shard_ids(kinesis, stream_name):
        records.extend(read_shard(kinesis, stream_name, shard_id))
    return records
