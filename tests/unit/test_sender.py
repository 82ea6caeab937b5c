"""PutRecords retries: only failed entries are re-sent; giving up names what was not sent.

A fake Kinesis client stands in for the service here (pure retry logic); the functional
test in tests/functional does the same through a real emulator.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from clickstream.kernel.errors import ProducerError
from producer.batching import OutgoingRecord
from producer.sender import DeliveryError, PutRecordsSender


class FakeKinesis:
    """Fails the entries whose data is in `fail_first_attempts` that many times each."""

    def __init__(
        self, failures: dict[bytes, int] | None = None, call_errors: list[str] | None = None
    ) -> None:
        self.failures = dict(failures or {})
        self.call_errors = list(call_errors or [])
        self.calls: list[list[bytes]] = []
        self.stored: list[bytes] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([r["Data"] for r in Records])
        if self.call_errors:
            code = self.call_errors.pop(0)
            answer = {
                "Error": {"Code": code, "Message": "x"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(cast(Any, answer), "PutRecords")
        results = []
        for entry in Records:
            if self.failures.get(entry["Data"], 0) > 0:
                self.failures[entry["Data"]] -= 1
                results.append(
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded",
                    }
                )
            else:
                self.stored.append(entry["Data"])
                results.append({"SequenceNumber": str(len(self.stored)), "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def batch(n: int) -> list[OutgoingRecord]:
    return [OutgoingRecord(f"r{i}".encode(), f"k{i}") for i in range(n)]


def test_partial_failure_resends_only_the_failed_entries() -> None:
    # GIVEN a stream that refuses records 3 and 7 once
    kinesis = FakeKinesis({b"r3": 1, b"r7": 1})
    delays: list[float] = []
    sender = PutRecordsSender(kinesis, "s", sleep=delays.append)
    # WHEN a batch of ten is sent
    sender.send(batch(10))
    # THEN the second call carries exactly the two failed entries, and all ten are stored once
    assert kinesis.calls[1] == [b"r3", b"r7"]
    assert sorted(kinesis.stored) == sorted(r.data for r in batch(10))
    assert sender.stats.retried_entries == 2
    assert sender.stats.sent == 10
    assert len(delays) == 1


def test_backoff_grows_and_is_capped() -> None:
    kinesis = FakeKinesis({b"r0": 6})
    delays: list[float] = []
    sender = PutRecordsSender(kinesis, "s", base_delay=0.1, max_delay=1.0, sleep=delays.append)
    sender.send(batch(1))
    assert len(delays) == 6
    assert max(delays) <= 1.0
    # Full jitter draws below the cap 0.1 * 2**attempt: the bounds grow, the draws vary.
    assert all(d <= min(1.0, 0.1 * 2 ** (i + 1)) for i, d in enumerate(delays))


def test_gives_up_after_max_attempts_naming_how_many_were_not_sent() -> None:
    kinesis = FakeKinesis({b"r1": 99, b"r2": 99})
    sender = PutRecordsSender(kinesis, "s", max_attempts=4, sleep=lambda _: None)
    with pytest.raises(DeliveryError, match=r"^2 of 5 records were not sent after 4 attempts") as e:
        sender.send(batch(5))
    assert e.value.unsent == 2
    assert len(kinesis.calls) == 4
    assert sorted(kinesis.stored) == [b"r0", b"r3", b"r4"]


def test_a_throttled_call_is_retried_whole_and_a_bad_request_is_not() -> None:
    kinesis = FakeKinesis(call_errors=["ProvisionedThroughputExceededException"])
    PutRecordsSender(kinesis, "s", sleep=lambda _: None).send(batch(3))
    assert len(kinesis.calls) == 2
    assert len(kinesis.stored) == 3

    refused = FakeKinesis(call_errors=["ResourceNotFoundException"])
    with pytest.raises(ProducerError, match="ResourceNotFoundException"):
        PutRecordsSender(refused, "s", sleep=lambda _: None).send(batch(3))
    assert len(refused.calls) == 1
