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

from clickstream.kernel.events import DeadLetterReason
from clickstream.kernel.retry import Backoff
from consumer.core.pending import Cadences
from consumer.processor import ClickstreamProcessor
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


ANY_DEAD_LETTER = "any dead letter"
EITHER = "event or dead letter"
EVENT = "event"
MISMATCH = DeadLetterReason.PARTITION_KEY_MISMATCH.value

Hostile = tuple[bytes, str, str]
"""(record data, partition key, what the processor must make of it)."""


def replaced(n: int, field: str, value: object) -> Hostile:
    event = {**valid_event(n), field: value}
    key = event["session_id"] if isinstance(event.get("session_id"), str) else f"pk-{n}"
    return as_bytes(event), str(key), EITHER


def without(n: int, field: str) -> Hostile:
    event = {k: v for k, v in valid_event(n).items() if k != field}
    return as_bytes(event), f"s-{n % 7}", DeadLetterReason.MISSING_FIELD.value


def shifted(n: int, days: int) -> Hostile:
    event = {**valid_event(n), "timestamp": (NOW + timedelta(days=days)).isoformat()}
    return as_bytes(event), f"s-{n % 7}", DeadLetterReason.TIMESTAMP_OUT_OF_RANGE.value


hostile: st.SearchStrategy[Hostile] = st.one_of(
    # anything at all: mostly not UTF-8 or not JSON, never a whole event
    st.binary(max_size=200).map(lambda data: (data, "pk", ANY_DEAD_LETTER)),
    st.text(max_size=200).map(lambda text: (text.encode(), "pk", ANY_DEAD_LETTER)),
    st.sampled_from(
        [
            (b"\xff\xfe\xfd", "pk", DeadLetterReason.NOT_UTF8.value),
            (b"\xc3\x28", "pk", DeadLetterReason.NOT_UTF8.value),
            (b"{", "pk", DeadLetterReason.NOT_JSON.value),
            (b"[1,2]", "pk", DeadLetterReason.NOT_OBJECT.value),
            (b"42", "pk", DeadLetterReason.NOT_OBJECT.value),
            (b"null", "pk", DeadLetterReason.NOT_OBJECT.value),
            (b'"x"', "pk", DeadLetterReason.NOT_OBJECT.value),
            (b"", "pk", DeadLetterReason.NOT_JSON.value),
        ]
    ),
    st.builds(
        replaced,
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
        without,
        st.integers(0, 99),
        st.sampled_from(["event_id", "type", "session_id", "page", "timestamp"]),
    ),
    st.builds(shifted, st.integers(0, 99), st.sampled_from([-365 * 30, -40, 2, 365 * 50])),
    st.builds(
        lambda n: (
            as_bytes({**valid_event(n), "page": "/" + "x" * (1024 * 1024)}),
            f"s-{n % 7}",
            DeadLetterReason.TOO_LARGE.value,
        ),
        st.integers(0, 9),
    ),
    st.builds(lambda depth: (nested(depth), "pk", ANY_DEAD_LETTER), st.integers(64, 5000)),
    st.builds(
        lambda n: (
            as_bytes(valid_event(n)),
            "not-the-session",
            DeadLetterReason.PARTITION_KEY_MISMATCH.value,
        ),
        st.integers(0, 99),
    ),
    # valid ones, a good share of them
    st.builds(lambda n: (as_bytes(valid_event(n)), f"s-{n % 7}", EVENT), st.integers(0, 10_000)),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(corpus=st.lists(hostile, min_size=1, max_size=40), flush_every=st.integers(1, 50))
def test_hostile_records_are_counted_or_dead_lettered_never_fatal(
    corpus: list[Hostile], flush_every: int
) -> None:
    # GIVEN a shard of hostile records, each with what the processor must make of it
    records = protocol_records((data, key) for data, key, _ in corpus)
    daemon = ScriptedDaemon().initialize("shardId-000000000000")
    for start in range(0, len(records), 7):
        daemon.process(records[start : start + 7])
    daemon.shutdown_requested()
    store, archive = MemoryStore(), MemoryArchive()
    processor = ClickstreamProcessor(
        store,
        archive,
        cadences=Cadences(max_records=flush_every),
        checkpoint_backoff=Backoff(),
    )

    # WHEN the processor reads them all
    daemon.run(processor)  # raises (SystemExit) if the processor gave up on anything

    # THEN it checkpointed the last record, and each record is where it must be
    assert daemon.checkpoints[-1] == (str(records[-1].sequence_number), 0)
    letters = {
        (letter["sequence_number"], letter["reason"])
        for key, body in archive.objects.items()
        if key.startswith("dead-letter/")
        for letter in map(json.loads, gzip.decompress(body).splitlines())
    }
    lettered = dict(letters)
    archived = [
        line
        for key, body in archive.objects.items()
        if key.startswith("raw/")
        for line in gzip.decompress(body).splitlines()
    ]
    seen_ids: set[str] = set()
    expected_events = 0
    for record, (data, _, expected) in zip(records, corpus, strict=True):
        reason = lettered.get(str(record.sequence_number))
        if expected == EVENT:
            event_id = json.loads(data)["event_id"]
            if event_id in seen_ids:  # the same valid event twice: a re-send, counted once
                assert reason is None
                continue
            seen_ids.add(event_id)
            expected_events += 1
            assert reason is None, f"a valid event was dead-lettered: {reason}"
        elif expected == ANY_DEAD_LETTER:
            assert reason in REASONS
        elif expected != EITHER:
            assert reason == expected
    assert len(letters) == processor.totals["dead_letters"]
    assert len(archived) == processor.totals["events"]
    valid_archived = [line for line in archived if json.loads(line)["event_id"] in seen_ids]
    assert len({json.loads(line)["event_id"] for line in valid_archived}) == expected_events
