"""A delivery's records decoded: events in shard order, and dead letters saying why. Pure
(the wall clock is the caller's, for records without an arrival time).

This is the processor's hot path, so it is one pass that does per record only what each
record needs: its position (and its place, hashed from the sequence number's text), its
data, its arrival as epoch seconds (a time is made only for a dead letter) and the event
(`clickstream.kernel.fast_decode`). Plausibility of an event's time is
judged against the record's arrival in the stream, not the processor's clock: every pass
over the record, a replay included, then decides the same.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickstream.kernel.events import DeadLetterReason, InvalidEvent, carried_refusal
from clickstream.kernel.fast_decode import decode_consumed
from clickstream.stores.positions import Position
from clickstream.stores.suppression import Suppression
from consumer.core.batch import DeadLetter
from consumer.core.positioned import PositionedEvent, place_hash


@dataclass(frozen=True, slots=True)
class DecodedDelivery:
    events: list[PositionedEvent]
    letters: list[DeadLetter]
    first: Position
    last: Position
    size: int
    """Bytes of record data."""


def decode_delivery(
    records: Sequence[Any], shard_id: str, wall_clock: Callable[[], datetime]
) -> DecodedDelivery:
    """Decode a non-empty delivery (amazon_kclpy's records) of the shard `shard_id`."""
    shard_prefix = f"{shard_id}/"
    events: list[PositionedEvent] = []
    letters: list[DeadLetter] = []
    size = 0
    first: Position | None = None
    for record in records:
        sequence_number = record.sequence_number
        sub_sequence = record.sub_sequence_number or 0
        position = Position(int(sequence_number), sub_sequence)
        if first is None:
            first = position
        data = binascii.a2b_base64(record.data)
        size += len(data)
        millis = record.timestamp_millis
        arrival = millis / 1000 if millis else wall_clock().timestamp()
        key = record.partition_key
        try:
            event = decode_consumed(data, arrival)
            if key != event.session_id:
                raise InvalidEvent(
                    DeadLetterReason.PARTITION_KEY_MISMATCH,
                    "the partition key must be the session id, so a session stays on one shard",
                    "session_id",
                )
        except InvalidEvent as error:
            at = datetime.fromtimestamp(arrival, tz=UTC)
            # An event the collector refused, passed on to be kept with the collector's reason.
            letters.append(DeadLetter(position, key, at, data, carried_refusal(data) or error))
            continue
        place = place_hash(shard_prefix, sequence_number, sub_sequence)
        events.append(PositionedEvent(position, event, data, key, arrival, place))
    if first is None:
        raise ValueError("a delivery to decode has records")
    return DecodedDelivery(events, letters, first, position, size)


def without_suppressed(events: list[PositionedEvent], listed: Suppression) -> list[PositionedEvent]:
    """The events none of whose ids is on the suppression list (all of them, at no cost, when
    the list is empty)."""
    if not listed:
        return events
    return [
        item
        for item in events
        if not listed.holds(item.event.user_id, item.event.anonymous_id, item.event.session_id)
    ]
