"""The click event contract, shared by the producer and the consumer.

One JSON object per Kinesis record, UTF-8, at most 1 MiB. `decode_event` is the single
gate every record passes: it returns a `ClickEvent` or raises `InvalidEvent` carrying a
typed `DeadLetterReason` and the name of the offending field, which is what a dead letter
records. Pure: no I/O, and "now" comes from the caller's `TimestampPolicy`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic_core import PydanticCustomError

from clickstream.kernel import strict_json
from clickstream.kernel.timestamps import from_epoch_ms, from_iso

MAX_RECORD_BYTES: Final = 1024 * 1024
"""Kinesis' own limit for one record's data blob."""

# Timestamps outside these absolute bounds are absurd whatever the clock says.
EARLIEST_TIMESTAMP: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP: Final = datetime(2100, 1, 1, tzinfo=UTC)

_NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]+$"

# The contract's bounds, shared with the consumer's fast decoder (`clickstream.kernel.fast_decode`).
MAX_IDENTIFIER_CHARACTERS: Final = 128
MAX_LOCATION_CHARACTERS: Final = 2048
MAX_USER_AGENT_CHARACTERS: Final = 1024
MAX_COORDINATE: Final = 1_000_000
MAX_VIEWPORT_SIDE: Final = 100_000

Identifier = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_IDENTIFIER_CHARACTERS, pattern=_NO_CONTROL_CHARACTERS
    ),
]
PageLocation = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_LOCATION_CHARACTERS, pattern=_NO_CONTROL_CHARACTERS
    ),
]
_PAGE_PATTERN: Final = (
    r"^(?:/[^\x00-\x1f\x7f]*|https?://[^/\s\x00-\x1f\x7f]+(?:/[^\x00-\x1f\x7f]*)?)$"
)
Page = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LOCATION_CHARACTERS, pattern=_PAGE_PATTERN)
]
"""A path starting with / or an http(s) URL, no control characters: checked by pydantic's
core (one regex), not by a Python validator, since every record passes it."""
Coordinate = Annotated[int, Field(ge=0, le=MAX_COORDINATE)]
ViewportSide = Annotated[int, Field(ge=1, le=MAX_VIEWPORT_SIDE)]
COUNTRY_PATTERN: Final = r"^[A-Z]{2}$"
CountryCode = Annotated[str, StringConstraints(pattern=COUNTRY_PATTERN)]
"""ISO 3166-1 alpha-2, upper case: the collector's (`clickstream.kernel.enrichment.country`)
or a producer's that knows it. Never an address."""


class EventType(StrEnum):
    PAGE_VIEW = "page_view"
    CLICK = "click"
    SCROLL = "scroll"
    CUSTOM = "custom"


class DeadLetterReason(StrEnum):
    """Why a record was refused; the dead-letter archive and metrics use these names."""

    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    """Objects and arrays nested deeper than `strict_json.MAX_NESTING` (64)."""
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    """Not strict JSON text (`clickstream.kernel.strict_json`): a syntax error, `NaN` or `Infinity`,
    a number beyond a double's range, a string with an unpaired surrogate."""
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    PARTITION_KEY_MISMATCH = "partition_key_mismatch"
    """The record's partition key is not its session id: the session's records could reach
    two shards, whose processors would each hold a part of the session."""
    UNSTORABLE = "unstorable"
    """Valid, but an item it would change cannot be stored (a DynamoDB limit, named)."""


class InvalidEvent(ValueError):
    """A record that breaks the event contract. Never fatal: it becomes a dead letter."""

    def __init__(self, reason: DeadLetterReason, detail: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.detail = detail
        where = f" {field}:" if field else ""
        super().__init__(f"{reason.value}:{where} {detail}")


class TimestampPolicy(NamedTuple):
    """Which event times are plausible relative to `now` (the caller's clock).

    Events older than `max_age` or further than `max_future` ahead are dead letters: they
    would land in archive partitions and counters nobody looks at, and they are usually a
    bug upstream (epoch seconds sent as milliseconds, a client clock years off). (A named
    tuple: the consumer makes one per record, from the record's arrival.)
    """

    now: datetime
    max_age: timedelta = timedelta(days=30)
    max_future: timedelta = timedelta(days=1)

    def check(self, timestamp: datetime) -> None:
        """Raise `InvalidEvent` (timestamp_out_of_range) for a time outside the window."""
        earliest = max(EARLIEST_TIMESTAMP, self.now - self.max_age)
        latest = min(LATEST_TIMESTAMP, self.now + self.max_future)
        if not earliest <= timestamp <= latest:
            raise InvalidEvent(
                DeadLetterReason.TIMESTAMP_OUT_OF_RANGE,
                f"timestamp {timestamp.isoformat()} is outside the accepted window"
                f" {earliest.isoformat()} .. {latest.isoformat()}",
                "timestamp",
            )


def campaign_in(properties: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The `campaign` object of an event's properties, if it has one."""
    if not properties:
        return None
    campaign = properties.get("campaign")
    return campaign if isinstance(campaign, dict) else None


class ClickEvent(BaseModel):
    """One click event, exactly as DESIGN.md's event contract states it.

    Unknown top-level fields are ignored rather than refused, so that a producer that adds a
    field does not turn all its traffic into dead letters; the raw archive keeps them.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    event_id: Identifier
    type: Annotated[EventType, Field(strict=False)]  # its value, as JSON and Python callers give it
    session_id: Identifier
    page: Page
    timestamp: datetime
    user_id: Identifier | None = None
    anonymous_id: Identifier | None = None
    referrer: PageLocation | None = None
    user_agent: Annotated[str, StringConstraints(max_length=MAX_USER_AGENT_CHARACTERS)] | None = (
        None
    )
    x: Coordinate | None = None
    y: Coordinate | None = None
    viewport_width: ViewportSide | None = None
    viewport_height: ViewportSide | None = None
    country: CountryCode | None = None
    properties: dict[str, JsonValue] | None = None

    @field_validator("timestamp", mode="plain")
    @classmethod
    def _timestamp_from_iso_or_epoch_ms(cls, value: Any) -> datetime:
        # One plain validator (parse and bound) rather than a before and an after one: it runs
        # for every record the processor decodes. The policy's window is checked by the
        # caller (`decode_event`), which knows the record's arrival.
        return _absolute_timestamp(_parse_timestamp(value))

    @field_serializer("timestamp")
    def _timestamp_as_iso_utc(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @property
    def seconds(self) -> float:
        """The event's time in epoch seconds (the consumer's decoder carries it as a field)."""
        return self.timestamp.timestamp()

    @property
    def campaign(self) -> dict[str, Any] | None:
        """A page view's campaign as Segment states it (the collector keeps its
        `context.campaign` in the page view's properties: docs/enrichment.md)."""
        return campaign_in(self.properties) if self.type is EventType.PAGE_VIEW else None

    def to_record(self) -> bytes:
        """The Kinesis record data for this event: compact UTF-8 JSON, no nulls."""
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def _parse_timestamp(value: Any) -> datetime:
    """An event's time from ISO 8601 text or epoch milliseconds, in UTC."""
    if isinstance(value, str):
        try:
            # A timestamp without an offset is taken as UTC, the convention of server logs.
            return from_iso(value).astimezone(UTC)
        except ValueError:
            raise PydanticCustomError(
                "timestamp_unparsable",
                "timestamp is not ISO 8601: {value}",
                {"value": value[:64]},
            ) from None
    if isinstance(value, int) and not isinstance(value, bool):  # a bool is never a time
        try:
            return from_epoch_ms(value)
        except ValueError:
            raise PydanticCustomError(
                "timestamp_out_of_range",
                "epoch milliseconds {value} are out of range",
                {"value": value},
            ) from None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    raise PydanticCustomError("wrong_type", "timestamp must be ISO 8601 or epoch ms")


def _absolute_timestamp(value: datetime) -> datetime:
    if EARLIEST_TIMESTAMP <= value <= LATEST_TIMESTAMP:
        return value
    raise PydanticCustomError(
        "timestamp_out_of_range",
        "timestamp {timestamp} is outside {earliest} .. {latest}",
        {
            "timestamp": value.isoformat(),
            "earliest": EARLIEST_TIMESTAMP.isoformat(),
            "latest": LATEST_TIMESTAMP.isoformat(),
        },
    )


_WRONG_TYPE_SUFFIXES: Final = ("_type", "_parsing")


def _reason_for(error_type: str, field: str | None, message: str) -> DeadLetterReason:
    if error_type == "json_invalid":
        return (
            DeadLetterReason.TOO_DEEP if "recursion limit" in message else DeadLetterReason.NOT_JSON
        )
    if field is None and error_type in {"model_type", "model_attributes_type", "dict_type"}:
        return DeadLetterReason.NOT_OBJECT
    if error_type == "missing":
        return DeadLetterReason.MISSING_FIELD
    if error_type == "timestamp_out_of_range":
        return DeadLetterReason.TIMESTAMP_OUT_OF_RANGE
    if error_type == "wrong_type" or error_type.endswith(_WRONG_TYPE_SUFFIXES):
        return DeadLetterReason.WRONG_TYPE
    return DeadLetterReason.INVALID_VALUE


def invalid_event_from(error: ValidationError) -> InvalidEvent:
    """The first problem of a validation error, as a typed dead-letter reason."""
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"]
    if first["type"] == "string_pattern_mismatch" and location == "page":
        message = "page must be a path starting with / or an http(s) URL, no control characters"
    return InvalidEvent(_reason_for(first["type"], location, message), message, location)


def minute_key(timestamp: datetime) -> str:
    """The per-minute bucket an event counts in (UTC), shared by the manifest and the consumer."""
    return minute_text(int(timestamp.timestamp() // 60))


@functools.lru_cache(maxsize=16_384)
def minute_text(minute: int) -> str:
    """`minute_key` of a minute given as minutes since the epoch."""
    # Formatting a time per event was a good share of the processor's time; minutes repeat.
    return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%Y-%m-%dT%H:%M")


def decode_event(data: bytes, policy: TimestampPolicy | None) -> ClickEvent:
    """Decode one Kinesis record into an event, or raise `InvalidEvent` saying why not.

    Without a policy only the absolute bounds of timestamps apply (replaying old files).
    """
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidEvent(
            DeadLetterReason.TOO_LARGE, f"{len(data)} bytes exceed {MAX_RECORD_BYTES}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            DeadLetterReason.NOT_UTF8, f"invalid UTF-8 at byte {exc.start}"
        ) from None
    try:
        strict_json.check(text)
    except strict_json.NotStrictJson as exc:
        raise not_strict_json(exc) from None
    try:
        event = ClickEvent.model_validate_json(text)
    except ValidationError as exc:
        raise invalid_event_from(exc) from None
    if policy is not None:
        policy.check(event.timestamp)
    return event


def not_strict_json(error: strict_json.NotStrictJson) -> InvalidEvent:
    """A refusal of the strict JSON rule (`clickstream.kernel.strict_json`) as a dead-letter reason:
    `too_deep` for nesting, `not_json` for the rest."""
    reason = DeadLetterReason.TOO_DEEP if error.too_deep else DeadLetterReason.NOT_JSON
    return InvalidEvent(reason, error.detail)


REFUSAL_KEY: Final = "clickstream_refused"
"""A record whose JSON object has this key is an event the collector refused (it broke the
contract, or was over the size limit), passed on so that the workers keep it as a dead
letter with the collector's reason: the operator sees what a site sent wrong, by reason,
where the workers' own dead letters are. It is never an event."""
REFUSED_EXCERPT_BYTES: Final = 8 * 1024
"""How much of a refused event the envelope keeps (its size and sha256 are kept whole)."""


def refusal_record(reason: DeadLetterReason, detail: str, original: bytes, at: datetime) -> bytes:
    """The envelope of an event the collector refused: the reason, the detail, and the
    event's first `REFUSED_EXCERPT_BYTES` (as text, invalid UTF-8 replaced)."""
    excerpt = original[:REFUSED_EXCERPT_BYTES].decode("utf-8", errors="replace")
    envelope = {
        REFUSAL_KEY: {
            "reason": reason.value,
            "detail": detail[:1024],
            "at": at.isoformat(timespec="milliseconds"),
            "bytes": len(original),
            "sha256": hashlib.sha256(original).hexdigest(),
        },
        "excerpt": excerpt,
        "truncated": len(original) > REFUSED_EXCERPT_BYTES,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def carried_refusal(data: bytes) -> InvalidEvent | None:
    """The refusal an envelope carries (`refusal_record`), or None for any other record.
    Called only for records that failed the contract: no cost on the valid path."""
    if REFUSAL_KEY.encode() not in data[:64]:
        return None
    try:
        envelope = json.loads(data)
        refusal = envelope[REFUSAL_KEY]
        reason = DeadLetterReason(refusal["reason"])
        detail = str(refusal.get("detail", ""))
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return InvalidEvent(reason, f"refused by the collector: {detail}")
