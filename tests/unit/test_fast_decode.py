"""The consumer's fast decoder against the contract (`decode_event`), on generated records.

The fast path may refuse a valid record (it then goes to `decode_event`), but whatever it
accepts the contract must accept, with the same fields: otherwise the consumer would count a
record the contract refuses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream.kernel.events import ClickEvent, InvalidEvent, TimestampPolicy, decode_event
from clickstream.kernel.fast_decode import ConsumedEvent, _fast, decode_consumed
from producer.generator import TrafficProfile, generate

ARRIVAL = datetime(2026, 11, 20, 9, 5, tzinfo=UTC)

TRICKY_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "a\n",
            "a\x7f",
            "\x00",
            "tab\there",
            "é",
            "\u2028",
            "\u180e",
            "\u00a0",
            "x" * 128,
            "x" * 129,
            "back\\slash",
            '"quoted"',
        ]
    ),
)
PAGES = st.one_of(
    st.sampled_from(
        [
            "/",
            "/pricing?utm_source=x#plans",
            "https://shop.example.com/cart",
            "http://Shop.Example.com:8080",
            "https://host name/",
            "https://hôst.example/",
            "https://host\u00a0x/",
            "https:///nohost",
            "ftp://example.com/",
            "pricing",
            "/" + "p" * 2047,
            "/" + "p" * 2048,
            "/a\nb",
            "HTTPS://example.com/",
        ]
    ),
    st.text(max_size=20).map(lambda text: "/" + text),
    st.text(alphabet=st.characters(codec="ascii"), max_size=20).map(lambda t: "https://" + t),
)
TIMESTAMPS = st.one_of(
    st.sampled_from(
        [
            "2026-11-20T09:04:00.000Z",
            "2026-11-20T09:04:00+00:00",
            "2026-11-20T09:04:00-00:00",
            "2026-11-20T11:04:00+02:00",
            "2026-11-20T09:04:00",
            "2026-11-20 09:04:00Z",
            "2026-11-20T09:04:00.123456789Z",
            "2026-11-20T09:04:00z",
            "2026-10-21T09:05:00Z",
            "2026-10-21T09:04:59Z",
            "2026-11-21T09:05:00Z",
            "2026-11-21T09:04:59.999Z",
            "1999-12-31T23:59:59Z",
            "not a time",
            "",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=2_000_000),
    st.sampled_from([0, 1, 100_000, 100_001, 1_000_000, 1_000_001, 5.0, 1.5, True, "5", None]),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
FIELDS: dict[str, Any] = {
    "event_id": TRICKY_TEXT,
    "type": st.sampled_from(["page_view", "click", "scroll", "custom", "hover", "CLICK", 5]),
    "session_id": TRICKY_TEXT,
    "page": PAGES,
    "timestamp": TIMESTAMPS,
    "user_id": st.one_of(st.none(), TRICKY_TEXT),
    "anonymous_id": st.one_of(st.none(), TRICKY_TEXT),
    "referrer": st.one_of(st.none(), PAGES, TRICKY_TEXT),
    "user_agent": st.one_of(st.none(), TRICKY_TEXT, st.just("u" * 1025)),
    "x": NUMBERS,
    "y": NUMBERS,
    "viewport_width": NUMBERS,
    "viewport_height": NUMBERS,
    "properties": st.one_of(st.none(), JSON_VALUES, st.just({"a": [[[[[[[[[[]]]]]]]]]]})),
    "extra": JSON_VALUES,
}
VALID = {
    "event_id": "e-1",
    "type": "click",
    "session_id": "s-1",
    "page": "/pricing",
    "timestamp": "2026-11-20T09:04:00.000Z",
}


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A valid event with some fields changed, dropped or added, serialised several ways."""
    event: dict[str, Any] = dict(VALID)
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=4, unique=True)):
        if draw(st.booleans()) and name in event:
            del event[name]
        else:
            event[name] = draw(FIELDS[name])
    text = json.dumps(
        event, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2]))
    )
    if draw(st.booleans()):  # a repeated key: the last one counts
        name = draw(st.sampled_from(sorted(FIELDS)))
        text = text[:-1] + f", {json.dumps(name)}: {json.dumps(draw(FIELDS[name]))}" + "}"
    return text.encode("utf-8", errors="surrogatepass")


def contract(data: bytes) -> ConsumedEvent | str:
    try:
        return ConsumedEvent.of(decode_event(data, TimestampPolicy(now=ARRIVAL)))
    except InvalidEvent as error:
        return error.reason.value


@settings(max_examples=3000, deadline=None)
@given(records())
def test_whatever_the_fast_path_accepts_the_contract_accepts_with_the_same_fields(
    data: bytes,
) -> None:
    # GIVEN a record; WHEN both decoders read it
    fast = _fast(data, ARRIVAL.timestamp())
    # THEN the fast one accepted it only if the contract does, with the same event
    if fast is not None:
        assert contract(data) == fast


@settings(max_examples=500, deadline=None)
@given(records())
def test_the_consumer_decides_every_record_as_the_contract_does(data: bytes) -> None:
    try:
        decided: ConsumedEvent | str = decode_consumed(data, ARRIVAL.timestamp())
    except InvalidEvent as error:
        decided = error.reason.value
    assert decided == contract(data)


def test_the_trackers_traffic_takes_the_fast_path() -> None:
    # GIVEN the generator's traffic (valid events as the tracker and SDKs send them)
    records, _ = generate(7, ARRIVAL - timedelta(minutes=5), 2000, TrafficProfile(malformed=0))
    datas = [record.to_record() for record in records if isinstance(record, ClickEvent)]
    assert len(datas) == 2000
    # WHEN the fast decoder reads them THEN it takes each one itself
    assert all(_fast(data, ARRIVAL.timestamp()) is not None for data in datas)
