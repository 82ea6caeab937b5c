"""Bad input at scale: a property-based corpus of hostile records through the processor.

Driven through amazon_kclpy's protocol code with the in-memory sinks (the DynamoDB and S3
edges are tested elsewhere): whatever the records, the processor never raises or stalls,
every record is either counted or dead-lettered with a typed reason, and the checkpoint
reaches the last record.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream.events import DeadLetterReason
from consumer.core.batch import FlushPolicy
from consumer.processor import ClickstreamProcessor
from consumer.retry import Backoff
from consumer.testing import MemoryArchive, MemoryStore, ScriptedDaemon, protocol_records

NOW = datetime.now(UTC)
REASONS = {reason.value for reason in DeadLetterReason}


def valid_event(n: int) -> dict[str, object]:
    return {
        "event_id": f"e-{n}",
        "type": "click",
        "session_id": f"s-{n % 7}",
        "page": "/p",
        "timestamp": (NOW - timedelta(minutes=5)).isoformat(),
    }


def as_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


hostile = st.one_of(
    st.binary(max_size=200),  # anything at all: mostly not UTF-8 or not JSON
    st.text(max_size=200).map(str.encode),  # UTF-8, mostly not JSON
    st.sampled_from([b"\xff\xfe\xfd", b"\xc3\x28", b"{", b"[1,2]", b"42", b"null", b'"x"', b""]),
    st.builds(
        lambda n, field, value: as_bytes({**valid_event(n), field: value}),
        st.integers(0, 99),
        st.sampled_from(["event_id", "type", "session_id", "page", "timestamp", "x", "properties"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.floats(allow_nan=False),
            st.text(max_size=30),
            st.lists(st.integers(), max_size=3),
            st.just("\x00\x07control"),
            st.just("/page\nwith newline"),
        ),
    ),
    st.builds(
        lambda n, field: as_bytes({k: v for k, v in valid_event(n).items() if k != field}),
        st.integers(0, 99),
        st.sampled_from(["event_id", "type", "session_id", "page", "timestamp"]),
    ),
    st.builds(
        lambda n, years: as_bytes(
            {**valid_event(n), "timestamp": (NOW + timedelta(days=365 * years)).isoformat()}
        ),
        st.integers(0, 99),
        st.sampled_from([-30, -3, 2, 50]),
    ),
    st.builds(
        lambda n: as_bytes({**valid_event(n), "page": "/" + "x" * (1024 * 1024)}), st.integers(0, 9)
    ),
    st.builds(nested, st.integers(64, 5000)),
    st.builds(lambda n: as_bytes(valid_event(n)), st.integers(0, 99)),  # some valid ones
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(payloads=st.lists(hostile, min_size=1, max_size=40), flush_every=st.integers(1, 50))
def test_hostile_records_are_counted_or_dead_lettered_never_fatal(
    payloads: list[bytes], flush_every: int
) -> None:
    records = protocol_records((data, f"pk-{i}") for i, data in enumerate(payloads))
    daemon = ScriptedDaemon().initialize("shardId-000000000000")
    for start in range(0, len(records), 7):
        daemon.process(records[start : start + 7])
    daemon.shutdown_requested()
    store, archive = MemoryStore(), MemoryArchive()
    processor = ClickstreamProcessor(
        store,
        archive,
        flush_policy=FlushPolicy(max_records=flush_every),
        checkpoint_backoff=Backoff(),
    )

    daemon.run(processor)  # raises (SystemExit) if the processor gave up on anything

    totals = processor.totals
    assert totals["events"] + totals["dead_letters"] == len(payloads)
    assert daemon.checkpoints[-1] == (str(records[-1].sequence_number), 0)
    letters = [
        json.loads(line)
        for key, body in archive.objects.items()
        if key.startswith("dead-letter/")
        for line in gzip.decompress(body).splitlines()
    ]
    assert len(letters) == totals["dead_letters"]
    assert {letter["reason"] for letter in letters} <= REASONS
    archived = sum(
        len(gzip.decompress(body).splitlines())
        for key, body in archive.objects.items()
        if key.startswith("raw/")
    )
    assert archived == totals["events"]
