"""Drive a record processor through amazon_kclpy's real protocol code, without the daemon.

Used by the functional tests and by `clickstream bench`.

`ScriptedDaemon` plays the MultiLangDaemon's side of the JSON-lines protocol: it hands the
processor's `KCLProcess` one action per `readline()`, answers each checkpoint request the
processor writes (successfully, or with the error a test chooses), and keeps every line the
processor wrote to its stdout so tests can check that nothing else ever went there.
"""

from __future__ import annotations

import base64
import json
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from amazon_kclpy import kcl

SEQUENCE_BASE = 49_680_477_731_447_033_642_919_771_787_628_839_273_462_071_122_875_000_000
"""Real Kinesis sequence numbers are this long; the processor must not assume small ones."""


@dataclass
class ProtocolRecord:
    data: bytes
    partition_key: str
    sequence_number: int
    sub_sequence_number: int = 0
    arrival_ms: int = 1_795_400_000_000

    def as_json(self) -> dict[str, Any]:
        return {
            "action": "record",
            "data": base64.b64encode(self.data).decode("ascii"),
            "partitionKey": self.partition_key,
            "sequenceNumber": str(self.sequence_number),
            "subSequenceNumber": self.sub_sequence_number,
            "approximateArrivalTimestamp": self.arrival_ms,
        }


def protocol_records(
    payloads: Iterable[tuple[bytes, str]], first_sequence: int = 1
) -> list[ProtocolRecord]:
    """(data, partition key) pairs as consecutive records of one shard."""
    return [
        ProtocolRecord(data, partition_key, SEQUENCE_BASE + first_sequence + index)
        for index, (data, partition_key) in enumerate(payloads)
    ]


@dataclass
class ScriptedDaemon:
    actions: deque[dict[str, Any]] = field(default_factory=deque)
    written: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_errors: deque[str | None] = field(default_factory=deque)
    """Answers for the next checkpoint requests; None (or nothing left) means success."""
    on_action: Callable[[dict[str, Any]], None] | None = None
    """Called with each action as the processor reads it (a benchmark moves its clock)."""

    # -- what a test scripts ----------------------------------------------------------------

    def initialize(self, shard_id: str, checkpoint: str = "TRIM_HORIZON") -> ScriptedDaemon:
        self.actions.append(
            {
                "action": "initialize",
                "shardId": shard_id,
                "sequenceNumber": checkpoint,
                "subSequenceNumber": 0,
            }
        )
        return self

    def process(self, records: Iterable[ProtocolRecord]) -> ScriptedDaemon:
        self.actions.append(
            {
                "action": "processRecords",
                "millisBehindLatest": 0,
                "records": [record.as_json() for record in records],
            }
        )
        return self

    def shutdown_requested(self) -> ScriptedDaemon:
        self.actions.append({"action": "shutdownRequested"})
        return self

    def lease_lost(self) -> ScriptedDaemon:
        self.actions.append({"action": "leaseLost"})
        return self

    def shard_ended(self) -> ScriptedDaemon:
        self.actions.append({"action": "shardEnded"})
        return self

    def run(self, processor: Any) -> None:
        kcl.KCLProcess(processor, input_file=self, output_file=self, error_file=sys.stderr).run()

    # -- the file-like sides amazon_kclpy reads and writes ------------------------------------

    def readline(self) -> str:
        if not self.actions:
            return ""
        action = self.actions.popleft()
        if self.on_action is not None:
            self.on_action(action)
        return json.dumps(action) + "\n"

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if not line.strip():
                continue
            message = json.loads(line)  # anything that is not protocol JSON fails here
            self.written.append(message)
            if message["action"] == "checkpoint":
                error = self.checkpoint_errors.popleft() if self.checkpoint_errors else None
                self.actions.appendleft(
                    {
                        "action": "checkpoint",
                        "sequenceNumber": message["sequenceNumber"],
                        "subSequenceNumber": message["subSequenceNumber"],
                        "error": error,
                    }
                )
        return len(text)

    def flush(self) -> None:
        return None

    # -- what a test checks -------------------------------------------------------------------

    @property
    def checkpoints(self) -> list[tuple[str | None, int | None]]:
        return [
            (message["sequenceNumber"], message["subSequenceNumber"])
            for message in self.written
            if message["action"] == "checkpoint"
        ]

    @property
    def statuses(self) -> list[str]:
        return [m["responseFor"] for m in self.written if m["action"] == "status"]
