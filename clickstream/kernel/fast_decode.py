"""The consumer's decoder: the event contract checked in C for the plainly valid records.

`decode_event` (pydantic) is the contract's one definition and says why a record is refused.
It costs a few microseconds a record, more than the rest of the protocol path together, so
the consumer first tries a msgspec decoder that accepts only a strict subset of what the
contract accepts; whatever it does not accept, valid or not, goes to `decode_event`, whose
answer is final. The subset is what real traffic looks like:

- no backslash and no DEL byte in the record: no string then holds a control character (JSON
  forbids them raw, and escapes are the only other way in), so the contract's "no control
  characters" patterns hold without running them;
- no field the contract does not name, except the two the collector adds (`received_at`,
  `client_ip`): msgspec skips an unknown field without judging it, where strict JSON
  refuses `1e400` or nesting past its limit wherever they stand;
- a page that is a path, or an http(s) URL whose host is printable ASCII;
- when there are properties (msgspec refuses NaN, Infinity and `1e400` in them, as strict
  JSON does, but not an integer past a double's range, nor nesting): at most
  `_FAST_BRACKETS` brackets, the contract's nesting limit, and fewer digits in the whole
  record than a number past a double's range needs (`clickstream.kernel.strict_json`);
- a timestamp in ISO 8601 with the offset Z or +00:00 (the trackers' and SDKs' form), well
  inside the accepted window, judged on epoch seconds (the exact edges, other offsets and epoch
  milliseconds are left to `decode_event`).

Types, lengths and bounds are msgspec's (strict, as the contract is: no float for an int, no
bool for anything else). `tests/unit/test_fast_decode.py` checks on generated records that
whatever this decoder accepts, the contract accepts with the same fields. Pure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec

from clickstream.kernel.events import (
    COUNTRY_PATTERN,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_COORDINATE,
    MAX_IDENTIFIER_CHARACTERS,
    MAX_LOCATION_CHARACTERS,
    MAX_RECORD_BYTES,
    MAX_USER_AGENT_CHARACTERS,
    MAX_VIEWPORT_SIDE,
    ClickEvent,
    EventType,
    TimestampPolicy,
    campaign_in,
    decode_event,
)
from clickstream.kernel.strict_json import MAX_NESTING

_FAST_BRACKETS: Final = MAX_NESTING
_DIGITS: Final = b"0123456789"
_FAST_DIGITS: Final = 308
"""A record of at most this many digits cannot hold an integer too large for a double (309)."""
_EDGE_SECONDS: Final = 1.0
"""How far inside the window's edges a timestamp must be for the fast path."""
_EARLIEST_SECONDS: Final = EARLIEST_TIMESTAMP.timestamp()
_LATEST_SECONDS: Final = LATEST_TIMESTAMP.timestamp()
_DEFAULT_POLICY: Final = TimestampPolicy(now=EARLIEST_TIMESTAMP)
_MAX_AGE_SECONDS: Final = _DEFAULT_POLICY.max_age.total_seconds()
_MAX_FUTURE_SECONDS: Final = _DEFAULT_POLICY.max_future.total_seconds()
# The same window, its edges moved inside by _EDGE_SECONDS, as the fast path compares it.
_FAST_EARLIEST: Final = _EARLIEST_SECONDS + _EDGE_SECONDS
_FAST_LATEST: Final = _LATEST_SECONDS - _EDGE_SECONDS
_FAST_MAX_AGE: Final = _MAX_AGE_SECONDS - _EDGE_SECONDS
_FAST_MAX_FUTURE: Final = _MAX_FUTURE_SECONDS - _EDGE_SECONDS
_URL_PAGE: Final = re.compile(r"https?://[!-.0-~]+(?:/|\Z)")
"""An http(s) URL whose host is printable ASCII without a space (a subset of the contract's
host, which refuses only "/", whitespace and control characters)."""

_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IDENTIFIER_CHARACTERS)]
_Location = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LOCATION_CHARACTERS)]
_Coordinate = Annotated[int, msgspec.Meta(ge=0, le=MAX_COORDINATE)]
_Side = Annotated[int, msgspec.Meta(ge=1, le=MAX_VIEWPORT_SIDE)]
_Country = Annotated[str, msgspec.Meta(pattern=COUNTRY_PATTERN)]


class _WireEvent(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """The contract's fields as msgspec checks them (patterns and the time are checked after),
    and the collector's own: anything else goes to `decode_event`."""

    event_id: _Identifier
    type: EventType
    session_id: _Identifier
    page: _Location
    timestamp: str | int
    user_id: _Identifier | None = None
    anonymous_id: _Identifier | None = None
    referrer: _Location | None = None
    user_agent: Annotated[str, msgspec.Meta(max_length=MAX_USER_AGENT_CHARACTERS)] | None = None
    x: _Coordinate | None = None
    y: _Coordinate | None = None
    viewport_width: _Side | None = None
    viewport_height: _Side | None = None
    country: _Country | None = None
    properties: dict[str, Any] | None = None
    received_at: str | None = None
    client_ip: str | None = None


class ConsumedEvent(msgspec.Struct, frozen=True, gc=False):
    """What the consumer folds of a valid event (the archive keeps the record's own bytes)."""

    event_id: str
    type: EventType
    session_id: str
    page: str
    timestamp: datetime
    seconds: float
    """`timestamp` in epoch seconds: the minute and the hour an event counts in are read
    from it, once per event each."""
    user_agent: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    """The ids the suppression list is checked against (`clickstream.stores.suppression`)."""
    referrer: str | None = None
    country: str | None = None
    campaign: dict[str, Any] | None = None
    """A page view's Segment campaign (`ClickEvent.campaign`): with the page and referrer,
    what the session's acquisition is decided from."""

    @classmethod
    def of(cls, event: ClickEvent) -> ConsumedEvent:
        return cls(
            event.event_id,
            event.type,
            event.session_id,
            event.page,
            event.timestamp,
            event.seconds,
            event.user_agent,
            event.user_id,
            event.anonymous_id,
            event.referrer,
            event.country,
            event.campaign,
        )


FoldedEvent = ClickEvent | ConsumedEvent
"""An event as the consumer's core takes it: decoded by the consumer, or built in Python."""

_DECODER: Final = msgspec.json.Decoder(_WireEvent)


def decode_consumed(data: bytes, arrival_seconds: float) -> ConsumedEvent:
    """Decode one record that reached the stream at `arrival_seconds` (epoch) as
    `decode_event(data, TimestampPolicy(now=arrival))` does, or raise its `InvalidEvent`;
    the plainly valid records never reach pydantic."""
    fast = _fast(data, arrival_seconds)
    if fast is not None:
        return fast
    arrival = datetime.fromtimestamp(arrival_seconds, tz=UTC)
    return ConsumedEvent.of(decode_event(data, TimestampPolicy(now=arrival)))


def _fast(data: bytes, arrival_seconds: float) -> ConsumedEvent | None:
    """The event, when the record is in the plainly valid subset; None: ask `decode_event`."""
    if len(data) > MAX_RECORD_BYTES or b"\\" in data or b"\x7f" in data:
        return None
    try:
        wire = _DECODER.decode(data)
    except (msgspec.MsgspecError, RecursionError):  # msgspec's own depth limit: RecursionError
        return None
    page = wire.page
    if not page.startswith("/") and _URL_PAGE.match(page) is None:
        return None
    if wire.properties is not None and (
        data.count(b"[") + data.count(b"{") > _FAST_BRACKETS
        or len(data) - len(data.translate(None, _DIGITS)) > _FAST_DIGITS
    ):
        return None
    value = wire.timestamp
    if value.__class__ is not str:
        return None  # epoch milliseconds: rare, `decode_event` takes them
    try:
        timestamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if timestamp.tzinfo is not UTC:  # an offset or none: `decode_event` normalises it
        return None
    # The window in epoch seconds: the contract's absolute bounds and the arrival's, each
    # moved _EDGE_SECONDS inside.
    seconds = timestamp.timestamp()
    if not (
        _FAST_EARLIEST < seconds < _FAST_LATEST
        and arrival_seconds - _FAST_MAX_AGE < seconds < arrival_seconds + _FAST_MAX_FUTURE
    ):
        return None
    return ConsumedEvent(
        wire.event_id,
        wire.type,
        wire.session_id,
        page,
        timestamp,
        seconds,
        wire.user_agent,
        wire.user_id,
        wire.anonymous_id,
        wire.referrer,
        wire.country,
        campaign_in(wire.properties) if wire.type is EventType.PAGE_VIEW else None,
    )
