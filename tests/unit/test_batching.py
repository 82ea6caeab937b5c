"""PutRecords batches stay within Kinesis' per-call limits and keep the order."""

from __future__ import annotations

import pytest

from producer.batching import MAX_BYTES_PER_CALL, OutgoingRecord, batches


def test_at_most_500_records_per_call_in_order() -> None:
    records = [OutgoingRecord(f"{i}".encode(), f"k{i}") for i in range(1234)]
    grouped = list(batches(records))
    assert [len(b) for b in grouped] == [500, 500, 234]
    assert [r for b in grouped for r in b] == records


def test_at_most_5_mib_per_call_counting_partition_keys() -> None:
    big = [OutgoingRecord(b"x" * (1024 * 1024 - 2), "pk") for _ in range(12)]
    grouped = list(batches(big))
    assert [len(b) for b in grouped] == [5, 5, 2]
    assert all(sum(r.size for r in b) <= MAX_BYTES_PER_CALL for b in grouped)


def test_a_record_larger_than_a_call_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        list(batches([OutgoingRecord(b"x" * MAX_BYTES_PER_CALL, "pk")]))
