"""The event contract: what decodes, and the typed reason and field of what does not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clickstream.kernel.events import (
    MAX_RECORD_BYTES,
    ClickEvent,
    DeadLetterReason,
    EventType,
    InvalidEvent,
    TimestampPolicy,
    decode_event,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = TimestampPolicy(now=NOW)


def record(**changes: object) -> bytes:
    base: dict[str, object] = {
        "event_id": "e-1",
        "type": "click",
        "session_id": "s-1",
        "page": "/products/p-1",
        "timestamp": "2026-11-23T11:59:00.000Z",
    }
    base.update(changes)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def reason_of(data: bytes) -> tuple[DeadLetterReason, str | None]:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(data, POLICY)
    return caught.value.reason, caught.value.field


def test_valid_record_decodes_with_every_optional_field() -> None:
    # GIVEN a record using every field of the contract
    data = record(
        user_id="u-1",
        anonymous_id="a-1",
        referrer="https://example.com/",
        user_agent="UA",
        x=10,
        y=20,
        viewport_width=1280,
        viewport_height=720,
        properties={"k": [1, {"n": None}]},
    )
    # WHEN it is decoded
    event = decode_event(data, POLICY)
    # THEN every field comes through typed
    assert event.type is EventType.CLICK
    assert event.timestamp == datetime(2026, 11, 23, 11, 59, tzinfo=UTC)
    assert (event.x, event.y, event.viewport_width) == (10, 20, 1280)
    assert event.properties == {"k": [1, {"n": None}]}


def test_epoch_milliseconds_and_iso_offsets_mean_the_same_instant() -> None:
    as_ms = decode_event(record(timestamp=int(NOW.timestamp() * 1000)), POLICY)
    as_offset = decode_event(record(timestamp="2026-11-23T13:00:00+01:00"), POLICY)
    assert as_ms.timestamp == as_offset.timestamp == NOW


def test_timestamp_without_offset_is_taken_as_utc() -> None:
    event = decode_event(record(timestamp="2026-11-23T11:00:00"), POLICY)
    assert event.timestamp == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


def test_round_trip_through_the_record_bytes_is_lossless() -> None:
    event = decode_event(record(x=1, y=2, properties={"a": "b"}), POLICY)
    assert decode_event(event.to_record(), POLICY) == event
    assert b"null" not in event.to_record()  # absent optionals are omitted, not null


@pytest.mark.parametrize(
    ("data", "reason", "field"),
    [
        (b"\xff\xfe{}", DeadLetterReason.NOT_UTF8, None),
        (b"event_id=1&type=click", DeadLetterReason.NOT_JSON, None),
        (b"[1, 2]", DeadLetterReason.NOT_OBJECT, None),
        (b'"a string"', DeadLetterReason.NOT_OBJECT, None),
        (record(session_id=None), DeadLetterReason.MISSING_FIELD, "session_id"),
        (record(event_id=17), DeadLetterReason.WRONG_TYPE, "event_id"),
        (record(x="12px"), DeadLetterReason.WRONG_TYPE, "x"),
        (record(x=1.5), DeadLetterReason.WRONG_TYPE, "x"),
        (record(timestamp=True), DeadLetterReason.WRONG_TYPE, "timestamp"),
        (record(properties=[1]), DeadLetterReason.WRONG_TYPE, "properties"),
        (record(type="hover"), DeadLetterReason.INVALID_VALUE, "type"),
        (record(page="products"), DeadLetterReason.INVALID_VALUE, "page"),
        (record(session_id="s\u0000"), DeadLetterReason.INVALID_VALUE, "session_id"),
        (record(session_id=""), DeadLetterReason.INVALID_VALUE, "session_id"),
        (record(x=-1), DeadLetterReason.INVALID_VALUE, "x"),
        (record(timestamp="yesterday"), DeadLetterReason.INVALID_VALUE, "timestamp"),
        (record(timestamp=1_700_000_000), DeadLetterReason.TIMESTAMP_OUT_OF_RANGE, "timestamp"),
        (record(timestamp=10**20), DeadLetterReason.TIMESTAMP_OUT_OF_RANGE, "timestamp"),
        (b'{"properties":' + b"[" * 300 + b"]" * 300 + b"}", DeadLetterReason.TOO_DEEP, None),
        (b" " * (MAX_RECORD_BYTES + 1), DeadLetterReason.TOO_LARGE, None),
    ],
)
def test_contract_violations_get_a_typed_reason_and_the_field(
    data: bytes, reason: DeadLetterReason, field: str | None
) -> None:
    assert reason_of(data) == (reason, field)


def test_error_message_names_the_field_and_the_problem() -> None:
    with pytest.raises(InvalidEvent, match=r"^missing_field: session_id: Field required"):
        decode_event(record(session_id=None), POLICY)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (-timedelta(days=29), True),
        (-timedelta(days=31), False),
        (timedelta(hours=23), True),
        (timedelta(days=2), False),
    ],
)
def test_timestamps_are_held_to_the_policy_window(offset: timedelta, accepted: bool) -> None:
    data = record(timestamp=(NOW + offset).isoformat())
    if accepted:
        assert decode_event(data, POLICY).timestamp == NOW + offset
    else:
        assert reason_of(data) == (DeadLetterReason.TIMESTAMP_OUT_OF_RANGE, "timestamp")


def test_without_a_policy_only_the_absolute_bounds_apply() -> None:
    old = record(timestamp="2003-05-01T00:00:00Z")
    assert decode_event(old, None).timestamp.year == 2003
    with pytest.raises(InvalidEvent) as caught:
        decode_event(record(timestamp="1999-12-31T23:59:59Z"), None)
    assert caught.value.reason is DeadLetterReason.TIMESTAMP_OUT_OF_RANGE


def test_unknown_top_level_fields_are_ignored_not_refused() -> None:
    assert decode_event(record(experiment="b"), POLICY).event_id == "e-1"


SURROGATES: tuple[Literal["Cs"]] = ("Cs",)

identifiers = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, exclude_characters="\x7f", exclude_categories=SURROGATES
    ),
    min_size=1,
    max_size=40,
)


@given(
    event_id=identifiers,
    session_id=identifiers,
    kind=st.sampled_from(list(EventType)),
    path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_/", max_size=30),
    millis=st.integers(
        min_value=int((NOW - timedelta(days=29)).timestamp() * 1000),
        max_value=int(NOW.timestamp() * 1000),
    ),
    x=st.none() | st.integers(0, 10_000),
    properties=st.none()
    | st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
)
def test_any_valid_event_survives_the_round_trip(
    event_id: str,
    session_id: str,
    kind: EventType,
    path: str,
    millis: int,
    x: int | None,
    properties: dict[str, object] | None,
) -> None:
    event = ClickEvent.model_validate_json(
        json.dumps(
            {
                "event_id": event_id,
                "session_id": session_id,
                "type": kind.value,
                "page": "/" + path,
                "timestamp": millis,
                "x": x,
                "properties": properties,
            }
        )
    )
    decoded = decode_event(event.to_record(), POLICY)
    assert decoded == event
    assert int(decoded.timestamp.timestamp() * 1000) == millis
