"""JSON-ish text for property tests of the strict JSON rule: mostly JSON, with what hostile
or broken clients send (unpaired surrogate escapes, numbers past a double's range, NaN and
Infinity, nesting around the limit, unicode and repeated names, a BOM, raw control
characters), and a strict reader to hold what is written against."""

from __future__ import annotations

import json
import math
from typing import Any, Final

import msgspec
from hypothesis import strategies as st

NOW_TEXT: Final = "2026-11-23T11:59:00.000Z"
"""A timestamp inside the window of a clock at 2026-11-23T12:00Z."""

_PLAIN_TEXT = st.one_of(
    st.text(max_size=6).map(lambda text: json.dumps(text, ensure_ascii=False)[1:-1]),
    st.text(max_size=6).map(lambda text: json.dumps(text)[1:-1]),
)
_STRING_PARTS = st.one_of(
    _PLAIN_TEXT,
    _PLAIN_TEXT,
    _PLAIN_TEXT,
    st.sampled_from(
        [
            "\\ud800",
            "\\udfff",
            "x\\udc00y",
            "\\ud83d\\ude00",
            "\\ude00\\ud83d",
            "\\ud800\\ud800",
            "\\u0000",
            "\\/",
            "é",
            "\u2028",
            "\ufeff",
            "\x01",  # raw: not JSON
            "\ud800",  # a raw surrogate: not UTF-8 once written
        ]
    ),
)
STRINGS = st.lists(_STRING_PARTS, max_size=3).map(lambda parts: '"' + "".join(parts) + '"')
NUMBERS = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            "1e400",
            "-1e400",
            "1E+400",
            "1e-400",
            "-0",
            "0.0",
            "1.7976931348623157e308",
            "1.8e308",
            "1" + "0" * 307,
            "1" + "0" * 308,
            "9" * 309,
            "-" + "9" * 400,
            "123456789012345678901234567890",
            "NaN",
            "Infinity",
            "-Infinity",
            "01",
            "1.",
            "+1",
        ]
    ),
)
SCALARS = st.one_of(STRINGS, NUMBERS, st.sampled_from(["true", "false", "null"]))
NAMES = st.one_of(STRINGS, st.sampled_from(['"a"', '"a"', '"b"', '"é"', '"\\ud800"']))


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(children, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
    objects = st.lists(st.tuples(NAMES, children), max_size=3).map(
        lambda members: "{" + ",".join(f"{name}:{value}" for name, value in members) + "}"
    )
    return arrays | objects


VALUES = st.recursive(SCALARS, _containers, max_leaves=8)
DEEP = st.integers(min_value=60, max_value=70).flatmap(
    lambda depth: st.sampled_from(
        ['{"a":' * depth + "1" + "}" * depth, "[" * depth + "1" + "]" * depth]
    )
)
"""Nested around the limit: an event's own object is level 1, so its properties at 63 deep
are level 64, the last one taken."""

VALID_FIELDS: Final = {
    "event_id": '"e-1"',
    "type": '"click"',
    "session_id": '"s-1"',
    "page": '"/pricing"',
    "timestamp": f'"{NOW_TEXT}"',
}


@st.composite
def event_texts(draw: st.DrawFn, timestamp: str = NOW_TEXT) -> bytes:
    """One event as a client may send it: a valid one (at `timestamp`) with fields changed,
    added, repeated."""
    fields = {**VALID_FIELDS, "timestamp": f'"{timestamp}"'}
    if draw(st.integers(0, 3)) == 2:  # a field of the contract given something else
        fields[draw(st.sampled_from(sorted(fields)))] = draw(VALUES)
    members = [f'"{name}":{value}' for name, value in fields.items()]
    if draw(st.booleans()):
        members.append('"properties":' + draw(st.one_of(VALUES, DEEP)))
    if draw(st.booleans()):
        members.append(draw(NAMES) + ":" + draw(st.one_of(VALUES, DEEP)))
    if draw(st.booleans()):  # a repeated name: the last one counts
        name = draw(st.sampled_from(sorted(VALID_FIELDS)))
        members.append(f'"{name}":{draw(st.one_of(st.just(VALID_FIELDS[name]), VALUES))}')
    text = "{" + draw(st.sampled_from([",", ", ", ",\n  "])).join(members) + "}"
    if draw(st.integers(0, 9)) == 5:  # (not an edge: Hypothesis draws edges often)
        text = "\ufeff" + text
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def segment_batches(draw: st.DrawFn) -> bytes:
    """A `/v1/batch` body of Segment messages whose every part may be JSON-ish."""
    messages = []
    for number in range(draw(st.integers(min_value=1, max_value=3))):
        call = draw(st.one_of(st.sampled_from(['"track"', '"page"', '"identify"']), VALUES))
        members = [
            f'"type":{call}',
            f'"messageId":"m-{number}"',
            f'"anonymousId":{draw(st.one_of(st.just(chr(34) + "anon-1" + chr(34)), VALUES))}',
            f'"timestamp":"{NOW_TEXT}"',
            f'"event":{draw(st.one_of(st.just(chr(34) + "Signed Up" + chr(34)), VALUES))}',
            f'"properties":{draw(st.one_of(VALUES, DEEP))}',
            f'"context":{draw(VALUES)}',
        ]
        messages.append("{" + ",".join(members) + "}")
    return ('{"batch":[' + ",".join(messages) + "]}").encode("utf-8", errors="surrogatepass")


def strictly_read(data: bytes) -> Any:
    """`data` as a strict RFC 8259 reader takes it (msgspec: no NaN or Infinity, no number
    past a double's range as a fraction or exponent, no unpaired surrogate, UTF-8 only),
    also holding integers to a double's range (the contract's rule). Raises otherwise."""
    value = msgspec.json.decode(data)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            assert math.isfinite(float(item)), "an integer past a double's range"
    return value
