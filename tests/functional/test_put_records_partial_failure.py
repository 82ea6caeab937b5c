"""Through a real emulator: a partial PutRecords failure re-sends only the failed entries."""

from __future__ import annotations

import json
from collections import Counter

from clickstream.kernel import aws
from clickstream.local.stack import LocalStackState
from clickstream.tools.streamread import read_stream
from producer.batching import OutgoingRecord
from producer.sender import PutRecordsSender
from tests.support.kinesis_fault_proxy import KinesisFaultProxy


def test_partial_failure_resends_only_failed_entries_and_stores_each_once(
    local_stack: LocalStackState,
) -> None:
    # GIVEN a stream of its own, behind a proxy that fails every 7th entry of the first call
    # and every 5th of the second
    direct = aws.local_client("kinesis", local_stack.kinesis_endpoint, local_stack.region)
    stream = "partial-failure"
    direct.create_stream(StreamName=stream, ShardCount=2)
    direct.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})

    def should_fail(call: int, index: int, data: bytes) -> bool:
        return (call == 0 and index % 7 == 3) or (call == 1 and index % 5 == 1)

    records = [
        OutgoingRecord(json.dumps({"n": n}).encode(), f"session-{n % 37}") for n in range(300)
    ]
    with KinesisFaultProxy(local_stack.kinesis_endpoint, should_fail) as proxy:
        client = aws.local_client("kinesis", proxy.endpoint, local_stack.region, max_attempts=1)
        sender = PutRecordsSender(client, stream, sleep=lambda _: None)
        # WHEN the batch is sent
        sender.send(records)

    # THEN each retry carried exactly the entries the call before it failed
    first_failures = [r.data for i, r in enumerate(records) if i % 7 == 3]
    assert proxy.put_records_calls[0] == [r.data for r in records]
    assert proxy.put_records_calls[1] == first_failures
    second_failures = [d for i, d in enumerate(first_failures) if i % 5 == 1]
    assert proxy.put_records_calls[2] == second_failures
    assert len(proxy.put_records_calls) == 3
    assert sender.stats.retried_entries == len(first_failures) + len(second_failures)
    # AND the stream holds every record exactly once, under its partition key
    stored = read_stream(direct, stream)
    assert Counter(r.data for r in stored) == Counter(r.data for r in records)
    assert {(r.data, r.partition_key) for r in stored} == {
        (r.data, r.partition_key) for r in records
    }
