"""Protocol records from generated traffic, for driving processors in tests."""

from __future__ import annotations

from collections.abc import Iterable

from consumer import testing
from consumer.testing import ProtocolRecord, ScriptedDaemon
from producer.generator import Record
from producer.run import outgoing

__all__ = ["ProtocolRecord", "ScriptedDaemon", "protocol_records"]


def protocol_records(records: Iterable[Record], first_sequence: int = 1) -> list[ProtocolRecord]:
    payloads = ((out.data, out.partition_key) for out in map(outgoing, records))
    return testing.protocol_records(payloads, first_sequence)
