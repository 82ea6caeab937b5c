"""From an HTTP request's bytes to stream records, or a refusal saying why. Pure.

Everything here is a function of the request and the server's clock (`received_at`), so
the edge (`collector.app`) only reads the request and writes the answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from clickstream.kernel import strict_json
from clickstream.kernel.enrichment.country import country_of
from clickstream.kernel.events import (
    ClickEvent,
    DeadLetterReason,
    InvalidEvent,
    TimestampPolicy,
    decode_event,
    not_strict_json,
    refusal_record,
)
from clickstream.stores.suppression import Suppression
from collector import segment

TEXT_TYPES: Final = ("application/json", "text/plain")
"""What we parse as JSON: `text/plain` is what `navigator.sendBeacon`, our tracker and
analytics.js send (a POST of that type alone needs no CORS preflight; analytics.js 2.0 adds
an Authorization header, which does)."""


MAX_EVENTS_PER_REQUEST: Final = 2_500
"""Events (or elements) one request may carry. Segment's API states only bytes (500 KB a
batch, 32 KB an event); the SDKs send 10 to 100 a batch. Without a count a 500 KiB body of
tiny invalid elements makes hundreds of thousands of rejections."""
REJECTED_LISTED: Final = 100
"""How many rejected events an answer names one by one (and how many of a request's
refusals go on to the stream as dead letters); the rest are counted by reason."""
ERROR_CODES: Final = {
    400: "invalid_request",
    401: "invalid_write_key",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "service_unavailable",
}
"""The machine-readable `code` of each error answer, beside its `message`: the Segment and
RudderStack server SDKs read `code` from every error body (without it rudder-sdk-python
fails on a KeyError and retries a 4xx for minutes as if it were transient)."""


class Refused(Exception):
    """The whole request is refused: `status`, a one-line `reason` and a machine-readable
    `code` go back to the client."""

    def __init__(self, status: int, reason: str, code: str | None = None) -> None:
        self.status = status
        self.reason = reason
        self.code = code or ERROR_CODES.get(status, "error")
        super().__init__(f"{status}: {reason}")


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One event as it goes into Kinesis: partition key = session id."""

    partition_key: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str
    detail: str


@dataclass(slots=True)
class Intake:
    records: list[StreamRecord] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    refusals: list[StreamRecord] = field(default_factory=list)
    """One envelope per rejected event (`clickstream.kernel.events.refusal_record`), delivered with
    the accepted events so that the workers keep it as a dead letter with its reason."""
    suppressed: int = 0
    """Valid events of erased people (`clickstream.stores.suppression`): taken, answered as
    accepted (the client must not send them again) and dropped."""

    def refused_whole(self) -> Refused | None:
        """The answer when no event of the request was taken: 413 when each was refused for
        its size alone, else 400; None when some were taken."""
        if self.records or self.suppressed or not self.rejected:
            return None
        first = self.rejected[0]
        if all(r.reason == DeadLetterReason.TOO_LARGE.value for r in self.rejected):
            return Refused(413, f"event {first.index}: {first.detail}")
        return Refused(
            400, f"no valid event: event {first.index}: {first.detail}", "invalid_events"
        )

    def rejected_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rejection in self.rejected:
            counts[rejection.reason] = counts.get(rejection.reason, 0) + 1
        return counts

    def rejected_listed(self) -> list[dict[str, Any]]:
        """The first `REJECTED_LISTED` rejections as an answer names them."""
        return [
            {"index": r.index, "reason": r.reason, "message": r.detail}
            for r in self.rejected[:REJECTED_LISTED]
        ]

    @property
    def size(self) -> int:
        """The bytes this intake puts into the stream (the in-flight budget's unit)."""
        return sum(len(r.data) + len(r.partition_key) for r in self.records + self.refusals)


@dataclass(frozen=True, slots=True)
class Edge:
    """What the server knows of a request: its clock, the header user agent and address."""

    received_at: datetime
    user_agent: str | None = None
    client_ip: str | None = None
    max_event_bytes: int = 32 * 1024
    max_age: timedelta = timedelta(days=30)
    max_future: timedelta = timedelta(days=1)
    suppression: Suppression = field(default_factory=Suppression)
    """The ids erased with `clickstream forget`: their events are dropped and counted."""
    arrival_allowance: timedelta = timedelta(0)
    """How much later than its receipt a record may reach the stream (the delivery deadline
    and one PutRecords call). The workers judge an event's time at the record's arrival, so
    the window's old edge is judged here at the latest arrival: an event the collector takes
    is never dead-lettered for its age afterwards."""


def decode_body(
    body: bytes, *, content_type: str | None, content_encoding: str | None, max_bytes: int
) -> Any:
    """The request's JSON, gunzipped when it says so, never more than `max_bytes` of it."""
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type not in TEXT_TYPES:
        raise Refused(415, f"content type {media_type} is not application/json or text/plain")
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body, max_bytes)
    elif encoding != "identity":
        raise Refused(415, f"content encoding {encoding} is not gzip")
    if len(body) > max_bytes:
        raise Refused(413, f"request body of {len(body)} bytes exceeds {max_bytes}")
    try:
        # Strict JSON's exceptions (NaN, 1e400, ...) are kept in place, refused with their
        # event alone (`_collect`); what is not JSON at all refuses the whole request.
        return strict_json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused(400, "invalid JSON: the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise Refused(400, f"invalid JSON: {detail}") from None
    except RecursionError:
        raise Refused(400, "invalid JSON: nested too deeply") from None


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    # Bounded: a few KB of gzip can inflate to gigabytes (a "zip bomb").
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise Refused(400, "the body is not valid gzip") from None
    if len(inflated) > max_bytes or inflater.unconsumed_tail:
        raise Refused(413, f"request body inflates past {max_bytes} bytes")
    if not inflater.eof:
        raise Refused(400, "the gzip body is truncated")
    if inflater.unused_data:
        # A second gzip member or trailing bytes: never read, so refused rather than dropped.
        raise Refused(400, "the body has data after its gzip stream")
    return inflated


def write_key_from(authorization: str | None, body: Any) -> str | None:
    """HTTP Basic with the key as user name and an empty password (Segment's server
    libraries), or `writeKey` in the body (analytics.js, which sends no headers)."""
    if authorization and authorization[:6].lower() == "basic ":
        try:
            user = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user.split(":", 1)[0] or None
    if isinstance(body, Mapping):
        key = body.get("writeKey")
        if isinstance(key, str) and key:
            return key
        batch = body.get("batch")
        if isinstance(batch, list) and batch and isinstance(batch[0], Mapping):
            first = batch[0].get("writeKey")
            return first if isinstance(first, str) and first else None
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0].get("writeKey")
        return first if isinstance(first, str) and first else None
    return None


def key_is_known(key: str | None, known: Iterable[str]) -> bool:
    """Constant time in the key's content: every known key is compared, all the way."""
    if not key:
        return False
    offered = key.encode()
    found = False
    for candidate in known:
        found |= hmac.compare_digest(offered, candidate.encode())
    return found


def _finish(values: dict[str, Any], edge: Edge) -> tuple[StreamRecord, ClickEvent]:
    """Edge enrichment, then the same validation the consumer applies."""
    values["received_at"] = edge.received_at.isoformat(timespec="milliseconds")
    if not values.get("user_agent") and edge.user_agent:
        values["user_agent"] = edge.user_agent[:1024]
    values.pop("client_ip", None)  # never trust a client's claim of its own address
    if not values.get("country") and (country := country_of(edge.client_ip)):
        # The address's country, and nothing of the address itself.
        values["country"] = country
    policy = TimestampPolicy(
        edge.received_at, edge.max_age - edge.arrival_allowance, edge.max_future
    )
    try:
        data = strict_json.dumps(values)
    except strict_json.NotStrictJson as exc:
        raise not_strict_json(exc) from None
    # The bytes the workers will read, judged as they will judge them.
    event = decode_event(data, policy)
    if len(data) > edge.max_event_bytes:
        # This event alone is refused: the others of its batch are still taken.
        raise InvalidEvent(
            DeadLetterReason.TOO_LARGE,
            f"an event of {len(data)} bytes exceeds {edge.max_event_bytes}",
        )
    return StreamRecord(event.session_id, data), event


def _collect(candidates: Sequence[Any], edge: Edge, convert: Any) -> Intake:
    """Each candidate taken or rejected on its own; a rejected one also as an envelope (the
    first `REJECTED_LISTED` of a request: the rest are counted, not carried)."""
    if len(candidates) > MAX_EVENTS_PER_REQUEST:
        raise Refused(
            400,
            f"{len(candidates)} events in one request; at most {MAX_EVENTS_PER_REQUEST}",
            "too_many_events",
        )
    intake = Intake()
    for index, candidate in enumerate(candidates):
        try:
            # The event as sent, all of it (a Segment message's parts that its record drops
            # too): strict JSON or refused.
            if (problem := strict_json.problem(candidate)) is not None:
                raise not_strict_json(problem)
            values = convert(candidate)
            record, event = _finish(values, edge)
        except InvalidEvent as exc:
            intake.rejected.append(Rejection(index, exc.reason.value, str(exc)))
            if len(intake.refusals) < REJECTED_LISTED:
                intake.refusals.append(_refusal(candidate, exc, edge))
            continue
        if edge.suppression.holds(event.user_id, event.anonymous_id, event.session_id):
            intake.suppressed += 1
            continue
        intake.records.append(record)
    return intake


def _refusal(candidate: Any, error: InvalidEvent, edge: Edge) -> StreamRecord:
    if error.reason is DeadLetterReason.TOO_DEEP:
        # Not serialised again: that is what nesting this deep breaks.
        candidate = f"(an event nested deeper than {strict_json.MAX_NESTING} levels, not kept)"
    # As sent, strict JSON's exceptions included, so that the dead letter shows them.
    original = strict_json.lenient_dumps(candidate)
    data = refusal_record(error.reason, str(error), original.encode(), edge.received_at)
    # Refusals have no session to keep together: spread them by their content.
    return StreamRecord("refused-" + hashlib.sha256(data).hexdigest()[:16], data)


def own_events(body: Any, edge: Edge) -> Intake:
    """`POST /v1/events`: a JSON array of contract events, or `{"events": [...]}` with an
    optional `sent_at` (the client's clock when it sent; corrects each event's timestamp)."""
    sent_at: Any = None
    if isinstance(body, Mapping):
        sent_at = body.get("sent_at")
        body = body.get("events")
    if not isinstance(body, list):
        raise Refused(400, "expected a JSON array of events or an object with `events`")

    def convert(candidate: Any) -> dict[str, Any]:
        if not isinstance(candidate, Mapping):
            raise InvalidEvent(DeadLetterReason.NOT_OBJECT, "an event must be a JSON object")
        values = dict(candidate)
        happened, _ = segment.corrected_time(values.get("timestamp"), sent_at, edge.received_at)
        if happened is not None and sent_at is not None:
            values["timestamp"] = happened.isoformat()
        return values

    return _collect(body, edge, convert)


def segment_messages(body: Any, call: str | None, edge: Edge) -> Intake:
    """A Segment call (`call` set) carries one message; `/v1/batch` and analytics.js' batch
    path carry `{"batch": [...], "sentAt": ...}` or a bare array."""
    batch_sent_at: Any = None
    if call is None:
        if isinstance(body, Mapping):
            batch_sent_at = body.get("sentAt")
            body = body.get("batch")
        if not isinstance(body, list):
            raise Refused(400, "expected `batch`, an array of Segment messages")
        messages: list[Any] = body
    else:
        if not isinstance(body, Mapping):
            raise Refused(400, "expected a Segment message, a JSON object")
        messages = [body]

    def convert(message: Any) -> dict[str, Any]:
        return segment.to_contract(
            message, call, received_at=edge.received_at, batch_sent_at=batch_sent_at
        )

    return _collect(messages, edge, convert)
