"""Which dead letters a replay puts back, and how: pure decisions."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from clickstream.kernel.errors import ConfigurationError
from clickstream.kernel.events import DeadLetterReason, refusal_record
from insights.dead_letters import StoredDeadLetter, decide, parse_renames, summarise

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def letter(data: bytes, reason: str = "missing_field", sequence: int = 1) -> StoredDeadLetter:
    line = {
        "reason": reason,
        "field": "session_id",
        "detail": "field required",
        "shard_id": "shardId-000000000000",
        "sequence_number": str(sequence),
        "sub_sequence_number": 0,
        "partition_key": "s-1",
        "arrival_time": (NOW - timedelta(minutes=sequence)).isoformat(),
        "sha256": "x",
        "data_base64": base64.b64encode(data).decode(),
    }
    return StoredDeadLetter.from_line(json.dumps(line).encode(), "dead-letter/k.jsonl.gz")


def event(**fields: object) -> bytes:
    values = {
        "event_id": "e-1",
        "type": "page_view",
        "sessionId": "s-1",
        "page": "/pricing",
        "timestamp": (NOW - timedelta(hours=1)).isoformat(),
        **fields,
    }
    return json.dumps(values).encode()


def test_a_rename_fixes_a_producers_field_and_the_session_keys_it() -> None:
    decision = decide(letter(event()), {"sessionId": "session_id"}, set(), NOW)
    assert decision.outcome == "replay"
    assert decision.partition_key == "s-1"
    assert json.loads(decision.data or b"")["session_id"] == "s-1"


def test_without_a_fix_it_is_still_invalid_and_says_why() -> None:
    decision = decide(letter(event()), {}, set(), NOW)
    assert decision.outcome == "still invalid"
    assert decision.why.startswith("missing_field")


def test_what_was_replayed_is_skipped() -> None:
    stored = letter(event())
    decision = decide(stored, {"sessionId": "session_id"}, {stored.identity}, NOW)
    assert decision.outcome == "already replayed"


def test_the_timestamp_is_judged_at_the_replays_arrival() -> None:
    old = event(timestamp=(NOW - timedelta(days=31)).isoformat())
    decision = decide(letter(old), {"sessionId": "session_id"}, set(), NOW)
    assert decision.outcome == "still invalid"
    assert decision.why.startswith(DeadLetterReason.TIMESTAMP_OUT_OF_RANGE.value)


def test_an_event_the_collector_refused_is_replayed_from_its_envelope() -> None:
    original = event()
    envelope = refusal_record(DeadLetterReason.MISSING_FIELD, "no session_id", original, NOW)
    decision = decide(letter(envelope), {"sessionId": "session_id"}, set(), NOW)
    assert decision.outcome == "replay"
    assert json.loads(decision.data or b"")["event_id"] == "e-1"
    cut = refusal_record(DeadLetterReason.TOO_LARGE, "big", event(pad="x" * 10_000), NOW)
    assert decide(letter(cut), {}, set(), NOW).outcome == "not replayable"


def test_records_that_are_not_objects_cannot_be_renamed() -> None:
    assert decide(letter(b"[1, 2]"), {"a": "b"}, set(), NOW).outcome == "still invalid"
    assert decide(letter(b"\xff\xfe"), {"a": "b"}, set(), NOW).outcome == "still invalid"


def test_renames_are_old_equals_new() -> None:
    assert parse_renames(["sessionId=session_id", " a = b "]) == {
        "sessionId": "session_id",
        "a": "b",
    }
    with pytest.raises(ConfigurationError, match="OLD=NEW"):
        parse_renames(["sessionId"])


def test_the_summary_counts_by_reason_with_replays_and_samples() -> None:
    letters = [letter(event(), sequence=n) for n in range(1, 6)]
    letters.append(letter(b"not json", reason="not_json", sequence=9))
    found = summarise(letters, {letters[0].identity, letters[1].identity})
    assert [(s.reason, s.count, s.replayed) for s in found] == [
        ("missing_field", 5, 2),
        ("not_json", 1, 0),
    ]
    assert len(found[0].samples) == 3
    assert found[0].first_arrival < found[0].last_arrival
