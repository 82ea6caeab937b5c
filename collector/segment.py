"""Segment's HTTP Tracking API messages, mapped onto our event contract. Pure.

Segment-compatible SDKs (analytics.js, RudderStack's, the mobile and server libraries) send
`track`, `page`, `screen`, `identify`, `group` and `alias` messages; each becomes one event in
the contract (README, "Event contract"), decisions documented in docs/collector.md:

- `messageId` is the `event_id` (retries of one message keep it, so the consumer dedupes).
- `page` → `page_view`; `screen` → `page_view` of `/screens/<name>`.
- `track` named like a click (`click`, `clicked`, `element clicked`, any case) whose
  properties carry whole-pixel `x` and `y` → `click`; any other `track` → `custom`.
- `identify`, `group`, `alias` → `custom`, their traits and ids kept in `properties`.
- The session: `context.sessionId`, else the Amplitude session plugin's
  `integrations["Actions Amplitude"].session_id` (qualified by the anonymous id: it is only a
  start time), else `properties.session_id`, else the anonymous id (or user id): a
  "visitor-level session".
- The time: Segment's own correction, `timestamp + (receivedAt - sentAt)`, so a device clock
  that is off moves nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from clickstream.kernel.enrichment.country import country_of
from clickstream.kernel.events import DeadLetterReason, InvalidEvent
from clickstream.kernel.timestamps import from_epoch_ms, from_iso

CALL_TYPES: Final = ("track", "page", "screen", "identify", "group", "alias")
SHORT_PATHS: Final = {
    "t": "track",
    "p": "page",
    "s": "screen",
    "i": "identify",
    "g": "group",
    "a": "alias",
}
"""analytics.js 2.0 posts single calls to `/v1/<first letter>`."""

NO_PAGE: Final = "/_no_page"
"""The page of a message that names none (a server-side `identify`, say)."""

_CLICK_NAMES: Final = frozenset({"click", "clicked", "element clicked"})
_AMPLITUDE: Final = "Actions Amplitude"
_MAX_ID = 128


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string or epoch milliseconds, as Segment's libraries send them."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return from_epoch_ms(value)
        if isinstance(value, str):
            return from_iso(value)
    except ValueError:
        return None
    return None


def corrected_time(
    timestamp: Any, sent_at: Any, received_at: datetime
) -> tuple[datetime | None, Any]:
    """Segment's clock-skew correction: the device said when it happened (`timestamp`) and when
    it sent (`sentAt`) by its own clock; shifting by `receivedAt - sentAt` puts the event on
    the server's clock. Returns the corrected time, or None and the raw value to validate."""
    happened = parse_time(timestamp)
    if happened is None:
        return None, timestamp if timestamp is not None else received_at.isoformat()
    sent = parse_time(sent_at)
    if sent is None:
        return happened, None
    return happened + (received_at - sent), None


def session_of(message: Mapping[str, Any]) -> tuple[str | None, str]:
    """The session id and where it came from (`context`, `amplitude`, `properties`,
    `visitor`)."""
    context = _mapping(message.get("context"))
    anonymous = _text(message.get("anonymousId"))
    visitor = anonymous or _text(message.get("userId"))
    if session := _text(context.get("sessionId")):
        return session, "context"
    plugin = _mapping(_mapping(message.get("integrations")).get(_AMPLITUDE))
    amplitude = _text(plugin.get("session_id"))
    if amplitude and visitor:
        return f"{visitor}:{amplitude}"[:_MAX_ID], "amplitude"
    if session := _text(_mapping(message.get("properties")).get("session_id")):
        return session, "properties"
    return visitor, "visitor"


def _page_of(message: Mapping[str, Any], call: str) -> str:
    properties = _mapping(message.get("properties"))
    page = _mapping(_mapping(message.get("context")).get("page"))
    if call == "screen":
        name = _text(message.get("name")) or _text(properties.get("name")) or "unnamed"
        return "/screens/" + quote(name, safe="")
    candidates = (
        (properties.get("url"), properties.get("path"), page.get("url"), page.get("path"))
        if call == "page"
        else (page.get("url"), page.get("path"), properties.get("url"), properties.get("path"))
    )
    for candidate in candidates:
        if isinstance(candidate, str) and (
            candidate.startswith("/") or re.match(r"^https?://", candidate)
        ):
            return candidate
    return NO_PAGE


def _whole_pixel(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value >= 0 and value.is_integer():
        return int(value)
    return None


CAMPAIGN_FIELDS: Final = ("source", "medium", "name", "term", "content")
"""Segment's `context.campaign` fields (its names for utm_source ... utm_content)."""


def _viewport(context: Mapping[str, Any]) -> tuple[Any, Any]:
    viewport = _mapping(context.get("viewport")) or _mapping(context.get("screen"))
    return _whole_pixel(viewport.get("width")), _whole_pixel(viewport.get("height"))


def event_id_of(message: Mapping[str, Any]) -> str:
    """`messageId`, or (for a library that sends none) a hash of the message, so that the
    same message sent twice still carries one id."""
    if message_id := _text(message.get("messageId")):
        return message_id
    canonical = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return "sha-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def to_contract(
    message: Any, call: str | None, *, received_at: datetime, batch_sent_at: Any = None
) -> dict[str, Any]:
    """One Segment message as a contract event (a mapping still to be validated).

    `call` is the endpoint's call type; None (`/v1/batch`) takes the message's own `type`.
    Raises `InvalidEvent` for a message that is not an object or has an unknown type.
    """
    if not isinstance(message, Mapping):
        raise InvalidEvent(DeadLetterReason.NOT_OBJECT, "a Segment message must be an object")
    call = call or _text(message.get("type"))
    if call not in CALL_TYPES:
        raise InvalidEvent(
            DeadLetterReason.INVALID_VALUE,
            f"type must be one of {', '.join(CALL_TYPES)}",
            "type",
        )
    context = _mapping(message.get("context"))
    properties = dict(_mapping(message.get("properties")))
    session, session_source = session_of(message)
    happened, raw_time = corrected_time(
        message.get("timestamp") or message.get("originalTimestamp"),
        message.get("sentAt") or batch_sent_at,
        received_at,
    )
    width, height = _viewport(context)
    event: dict[str, Any] = {
        "event_id": event_id_of(message),
        "session_id": session,
        "page": _page_of(message, call),
        "timestamp": happened.isoformat() if happened else raw_time,
        "user_id": _text(message.get("userId")),
        "anonymous_id": _text(message.get("anonymousId")),
        "referrer": _text(_mapping(context.get("page")).get("referrer")) or None,
        "user_agent": _text(context.get("userAgent")),
        "viewport_width": width,
        "viewport_height": height,
        # A server-side SDK reports the end user's address here: only its country is kept.
        "country": country_of(_text(context.get("ip"))),
    }
    name = _text(message.get("event")) or _text(message.get("name"))
    x, y = _whole_pixel(properties.get("x")), _whole_pixel(properties.get("y"))
    if call == "track" and (name or "").lower() in _CLICK_NAMES and x is not None and y is not None:
        event.update(type="click", x=x, y=y)
        extra = {key: value for key, value in properties.items() if key not in {"x", "y"}}
    elif call in {"page", "screen"}:
        event["type"] = "page_view"
        extra = {"name": name, **properties} if name else properties
        # The campaign Segment's SDKs read from the landing's utm_* tags (or a server-side
        # source states): the session's acquisition reads it from here (docs/enrichment.md).
        given = _mapping(context.get("campaign"))
        campaign = {key: text for key in CAMPAIGN_FIELDS if (text := _text(given.get(key)))}
        if campaign and "campaign" not in extra:
            extra["campaign"] = campaign
    else:
        event["type"] = "custom"
        extra = {"call": call, "event": name, "properties": properties}
        for key in ("traits", "groupId", "previousId"):
            if key in message:
                extra[key] = message[key]
    extra["session_source"] = session_source
    event["properties"] = {key: value for key, value in extra.items() if value is not None}
    return {key: value for key, value in event.items() if value is not None}
