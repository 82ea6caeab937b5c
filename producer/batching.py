"""PutRecords batches within Kinesis' limits. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

MAX_RECORDS_PER_CALL: Final = 500
MAX_BYTES_PER_CALL: Final = 5 * 1024 * 1024
MAX_PARTITION_KEY_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    data: bytes
    partition_key: str
    user_records: int = 1
    """How many events it carries: more than one for a KPL aggregate."""

    @property
    def size(self) -> int:
        # Kinesis counts the partition key's bytes against the 5 MiB as well as the data.
        return len(self.data) + len(self.partition_key.encode("utf-8"))

    def as_entry(self) -> dict[str, bytes | str]:
        return {"Data": self.data, "PartitionKey": self.partition_key}


def batches(
    records: Iterable[OutgoingRecord],
    max_records: int = MAX_RECORDS_PER_CALL,
    max_bytes: int = MAX_BYTES_PER_CALL,
) -> Iterator[list[OutgoingRecord]]:
    """Group records, in order, into batches of at most `max_records` and `max_bytes`."""
    batch: list[OutgoingRecord] = []
    size = 0
    for record in records:
        if record.size > max_bytes:
            raise ValueError(f"one record of {record.size} bytes exceeds the {max_bytes} per call")
        if batch and (len(batch) >= max_records or size + record.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record.size
    if batch:
        yield batch
