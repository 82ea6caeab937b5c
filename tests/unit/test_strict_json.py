"""Strict JSON end to end (issue 44): one rule at the collector and the workers.

Before: a lone surrogate escape in an event made the collector answer 500 (the whole batch
lost, retried by the SDK), and `1e400` was taken and written into the stream as `Infinity`,
which the workers archived. Now each such event is refused alone with `not_json`, the
collector writes only what a strict reader reads, and the workers decide each record as the
collector decided the event. `make fuzz` runs the properties with many more examples.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from clickstream.kernel import strict_json
from clickstream.kernel.events import (
    DeadLetterReason,
    InvalidEvent,
    TimestampPolicy,
    carried_refusal,
    decode_event,
)
from clickstream.kernel.fast_decode import ConsumedEvent, _fast, decode_consumed
from collector import intake
from collector.intake import Edge, Intake, Refused
from tests.support.json_ish import NOW_TEXT, event_texts, segment_batches, strictly_read

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXAMPLES = int(os.environ.get("CLICKSTREAM_FUZZ_EXAMPLES", "300"))
"""A few hundred in the unit suite; `make fuzz` sets many more."""
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
VALID = (
    f'{{"event_id":"e-%s","type":"click","session_id":"s-1","page":"/p","timestamp":"{NOW_TEXT}"'
)


def event(number: int, tail: str = "") -> str:
    return VALID % number + tail + "}"


def read(body: bytes, segment: bool = False) -> Intake:
    """The collector's intake of one request body, as its HTTP edge runs it."""
    parsed = intake.decode_body(
        body, content_type="application/json", content_encoding=None, max_bytes=512 * 1024
    )
    edge = Edge(received_at=NOW)
    return (
        intake.segment_messages(parsed, None, edge) if segment else intake.own_events(parsed, edge)
    )


def read_or_refused(body: bytes, segment: bool = False) -> Intake | Refused:
    try:
        return read(body, segment)
    except Refused as refused:  # the body is not JSON at all
        return refused


def answered(taken: Intake) -> JSONResponse:
    """The collector's answer to an intake (`collector.app`), rendered: it must not fail."""
    rejected = {"rejected": taken.rejected_listed(), "by": taken.rejected_by_reason()}
    whole = taken.refused_whole()
    if whole is not None:
        return JSONResponse({"code": whole.code, "message": whole.reason, **rejected}, whole.status)
    return JSONResponse({"success": True, **rejected})


def workers(data: bytes) -> ConsumedEvent | str:
    """What the workers decide on a record that reached the stream at NOW."""
    try:
        return decode_consumed(data, NOW.timestamp())
    except InvalidEvent as error:
        return error.reason.value


# The two findings of the issue, each failing on the code before it.


def test_a_lone_surrogate_is_refused_with_its_event_alone_never_a_500() -> None:
    # GIVEN a batch of a valid event and two with an unpaired surrogate escape: in an
    # unknown field's value, and as a property's name
    body = (
        "["
        + ",".join(
            [event(1), event(2, ',"extra":"\\ud800"'), event(3, ',"properties":{"\\udc00":1}')]
        )
        + "]"
    )
    # WHEN the collector reads it (before: UnicodeEncodeError, a 500)
    taken = read(body.encode())
    # THEN the valid event is taken and each other one refused alone, as not JSON
    assert [json.loads(r.data)["event_id"] for r in taken.records] == ["e-1"]
    assert [(r.index, r.reason) for r in taken.rejected] == [(1, "not_json"), (2, "not_json")]
    assert "unpaired surrogate \\ud800" in taken.rejected[0].detail
    # AND the answer renders, and the refusals go on as strict JSON the workers keep with
    # the collector's reason, the escape kept as it was sent
    assert answered(taken).status_code == 200
    for refusal in taken.refusals:
        strictly_read(refusal.data)
        carried = carried_refusal(refusal.data)
        assert carried is not None
        assert carried.reason is DeadLetterReason.NOT_JSON
    assert '"extra":"\\ud800"' in json.loads(taken.refusals[0].data)["excerpt"]
    # AND the workers refuse the same records, sent straight into the stream, the same way
    assert workers(event(2, ',"extra":"\\ud800"').encode()) == "not_json"


@pytest.mark.parametrize(
    ("number", "detail"),
    [
        ("1e400", "1e400 is beyond a double's range"),
        ("-1E+400", "-1E+400 is beyond a double's range"),
        ("1" + "0" * 400, "is beyond a double's range"),
        ("NaN", "NaN is not JSON"),
        ("-Infinity", "-Infinity is not JSON"),
    ],
)
def test_a_number_past_a_doubles_range_is_refused_alone_never_written_as_infinity(
    number: str, detail: str
) -> None:
    # GIVEN a batch of a valid event and one whose property no double can hold
    tail = ',"properties":{"n":' + number + "}"
    body = f"[{event(1)},{event(2, tail)}]"
    # WHEN the collector reads it (before: taken, and written as "n":Infinity)
    taken = read(body.encode())
    # THEN that event alone is refused, as not JSON, saying which number
    assert [(r.index, r.reason) for r in taken.rejected] == [(1, "not_json")]
    assert detail in taken.rejected[0].detail
    # AND nothing the collector writes holds a number a strict reader refuses
    assert len(taken.records) == 1
    for record in taken.records + taken.refusals:
        strictly_read(record.data)
    # AND the workers refuse such a record from any producer (before: taken and archived)
    assert workers(event(2, tail).encode()) == "not_json"


def test_a_single_event_call_with_a_number_past_range_gets_a_400() -> None:
    taken = read(event(1, ',"properties":{"n":1e400}').join("[]").encode())
    refused = taken.refused_whole()
    assert refused is not None
    assert (refused.status, refused.code) == (400, "invalid_events")


@pytest.mark.parametrize(
    ("tail", "kept"),
    [
        (',"properties":{"n":1e-400}', 0.0),  # the nearest double
        (',"properties":{"n":18446744073709551617}', 2**64 + 1),  # an integer, exactly
        (',"properties":{"n":1' + "0" * 307 + "}", 10**307),  # 308 digits: within range
        (',"properties":{"n":1.7976931348623157e308}', 1.7976931348623157e308),
        (',"properties":{"n":1,"n":2}', 2),  # a repeated name: the last one
        (',"properties":{"n":"\\ud83d\\ude00"}', "\U0001f600"),  # a surrogate pair
    ],
)
def test_what_the_rule_keeps_the_collector_and_the_workers_both_take(
    tail: str, kept: object
) -> None:
    taken = read(f"[{event(1, tail)}]".encode())
    (record,) = taken.records
    assert strictly_read(record.data)["properties"]["n"] == kept
    assert isinstance(workers(event(1, tail).encode()), ConsumedEvent)
    assert isinstance(workers(record.data), ConsumedEvent)


def test_nesting_is_held_to_the_same_limit_at_both_ends() -> None:
    # The event is level 1: properties nested 63 deep are level 64, the last one taken.
    for depth, decided in [(63, "taken"), (64, "too_deep")]:
        tail = ',"properties":' + '{"a":' * depth + "1" + "}" * depth
        taken = read(f"[{event(1, tail)}]".encode())
        at_collector = "taken" if taken.records else taken.rejected[0].reason
        at_workers = workers(event(1, tail).encode())
        assert at_collector == decided
        assert (at_workers if isinstance(at_workers, str) else "taken") == decided


def test_a_segment_message_is_judged_whole_even_where_its_record_drops_a_part() -> None:
    message = {
        "type": "track",
        "event": "Signed Up",
        "messageId": "m-1",
        "anonymousId": "a-1",
        "timestamp": NOW_TEXT,
    }
    bad_context = json.dumps(message)[:-1] + ',"context":{"library":{"name":"\\udfff"}}}'
    body = '{"batch":[' + json.dumps(message) + "," + bad_context + "]}"
    taken = read(body.encode(), segment=True)
    assert len(taken.records) == 1
    assert [(r.index, r.reason) for r in taken.rejected] == [(1, "not_json")]


def test_dumps_never_writes_what_a_strict_reader_refuses() -> None:
    for value in [{"n": math.inf}, {"n": math.nan}, {"s": "\ud800"}, {"\udc00": 1}]:
        with pytest.raises(strict_json.NotStrictJson):
            strict_json.dumps(value)
    assert (
        strict_json.dumps({"n": 2**64, "s": "é"}) == '{"n":18446744073709551616,"s":"é"}'.encode()
    )


# The properties: arbitrary JSON-ish bodies.


def _answered_below_500_and_strict(taken: Intake | Refused) -> None:
    """A request refused whole with a 4xx, or answered (2xx, 400, 413) with every record
    that goes on parsed by strict readers."""
    if isinstance(taken, Refused):
        assert 400 <= taken.status < 500
        return
    assert answered(taken).status_code in {200, 400, 413}
    for record in taken.records + taken.refusals:
        strictly_read(record.data)
        json.loads(record.data, parse_constant=_refuse)


def _refuse(name: str) -> Any:
    raise AssertionError(f"{name} written")


@PROPERTY
@given(events=st.lists(event_texts(), min_size=1, max_size=4))
def test_any_body_gets_a_2xx_or_a_4xx_and_only_strict_json_goes_on(events: list[bytes]) -> None:
    _answered_below_500_and_strict(read_or_refused(b"[" + b",".join(events) + b"]"))


@PROPERTY
@given(body=segment_batches())
def test_any_segment_batch_gets_a_2xx_or_a_4xx_and_only_strict_json_goes_on(body: bytes) -> None:
    _answered_below_500_and_strict(read_or_refused(body, segment=True))


@PROPERTY
@given(data=event_texts())
def test_the_workers_decide_each_record_as_the_collector_decided_the_event(data: bytes) -> None:
    # GIVEN one event, sent to the collector, and the same bytes put straight into the stream
    at_workers = workers(data)
    taken = read_or_refused(b"[" + data + b"]")
    if isinstance(taken, Refused):
        # THEN what is no JSON at all for the collector is none for the workers either
        assert at_workers in {"not_json", "not_utf8", "too_deep"}
        return
    if taken.rejected:
        # THEN a refusal has the same reason at both ends
        assert at_workers == taken.rejected[0].reason
        return
    # THEN an event the collector took, the workers take, as the same event, from the
    # collector's record and from the bytes as sent
    (record,) = taken.records
    assert isinstance(at_workers, ConsumedEvent)
    assert workers(record.data) == at_workers


@PROPERTY
@given(data=event_texts())
def test_whatever_the_fast_path_takes_the_strict_contract_takes(data: bytes) -> None:
    fast = _fast(data, NOW.timestamp())
    if fast is not None:
        assert ConsumedEvent.of(decode_event(data, TimestampPolicy(now=NOW))) == fast
