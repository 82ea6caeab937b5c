"""Records that break the event contract on purpose, one of each kind a consumer meets."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import datetime

from clickstream.kernel.events import DeadLetterReason


@dataclass(frozen=True)
class MalformedRecord:
    """A record that breaks the event contract on purpose, and the reason it must get."""

    data: bytes
    partition_key: str
    expected_reason: DeadLetterReason

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def malformed_records(count: int, seed: int, around: datetime) -> list[MalformedRecord]:
    """`count` records that break the contract, cycling through the kinds a consumer meets."""
    rng = random.Random(seed ^ 0x5EED)
    at = around.isoformat().replace("+00:00", "Z")

    def valid(**changes: object) -> dict[str, object]:
        base: dict[str, object] = {
            "event_id": f"bad-{rng.getrandbits(40):010x}",
            "type": "click",
            "session_id": f"s-bad-{rng.getrandbits(32):08x}",
            "page": "/",
            "timestamp": at,
        }
        base.update(changes)
        return {k: v for k, v in base.items() if v is not _MISSING}

    def as_json(value: object) -> bytes:
        return json.dumps(value).encode()

    def make(reason: DeadLetterReason) -> bytes:
        if reason is DeadLetterReason.NOT_UTF8:
            return b'{"event_id": "\xff\xfe' + rng.randbytes(6) + b'"}'
        if reason is DeadLetterReason.NOT_JSON:
            return f"event_id={rng.getrandbits(32):x}&type=click".encode()
        if reason is DeadLetterReason.NOT_OBJECT:
            return as_json([rng.randint(0, 9), "click"])
        if reason is DeadLetterReason.MISSING_FIELD:
            return as_json(valid(session_id=_MISSING))
        if reason is DeadLetterReason.WRONG_TYPE:
            return as_json(valid(x=f"{rng.randint(0, 99)}px"))
        if reason is DeadLetterReason.INVALID_VALUE:
            return as_json(valid(type="hover"))
        # Epoch seconds where milliseconds are expected: a classic upstream bug.
        return as_json(valid(timestamp=rng.randint(1_000_000, 2_000_000_000)))

    kinds = [
        DeadLetterReason.NOT_UTF8,
        DeadLetterReason.NOT_JSON,
        DeadLetterReason.NOT_OBJECT,
        DeadLetterReason.MISSING_FIELD,
        DeadLetterReason.WRONG_TYPE,
        DeadLetterReason.INVALID_VALUE,
        DeadLetterReason.TIMESTAMP_OUT_OF_RANGE,
    ]
    records = []
    for index in range(count):
        reason = kinds[index % len(kinds)]
        data = make(reason)
        records.append(
            MalformedRecord(data, f"bad-{hashlib.sha256(data).hexdigest()[:12]}", reason)
        )
    return records


class _Missing:
    pass


_MISSING = _Missing()
