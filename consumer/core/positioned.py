"""A decoded record and where it sits in its shard, and a record's place hashed as the
sessions' bookkeeping keeps it (`clickstream.stores.sketch`). Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from hashlib import blake2b
from typing import Final, NamedTuple

from clickstream.kernel.fast_decode import FoldedEvent
from clickstream.stores.positions import Position
from clickstream.stores.sketch import hash64, place_of


class PositionedEvent(NamedTuple):
    """A decoded record and where it sits (a named tuple: one is made per record)."""

    position: Position
    event: FoldedEvent
    raw: bytes = b""
    """The record's data as received: what the archive keeps."""
    partition_key: str = ""
    arrival_seconds: float | None = None
    """Kinesis' ApproximateArrivalTimestamp of the record, in epoch seconds (None in pure
    tests): a number, since the processor only rarely needs it as a time."""
    place: int | None = None
    """The record's place as `where_hash` gives it, when the decoder made it from the
    record's own sequence number text (`place_hash`); None: the fold computes it."""

    def arrival(self, otherwise: datetime) -> datetime:
        """The arrival as a time (`otherwise` when the record has none)."""
        if self.arrival_seconds is None:
            return otherwise
        return datetime.fromtimestamp(self.arrival_seconds, tz=UTC)


def where_hash(shard_id: str, position: Position) -> int:
    """A record's place (shard and position), hashed as the session's bookkeeping keeps it."""
    return place_of(hash64(f"{shard_id}/{position.encode()}"))


_SUB_SEQUENCE_ZERO: Final = ".0000000000"


def place_hash(shard_prefix: str, sequence_number: str, sub_sequence: int) -> int | None:
    """`where_hash(shard, Position(int(sequence_number), sub_sequence))` from the sequence
    number's own text, `shard_prefix` being `shard + "/"`: the record's place is hashed for
    every record, and padding the text KCL gave costs a fraction of printing the integer
    back. None when the text is not plain digits that print back as they are (the caller
    then uses `where_hash`)."""
    if not (sequence_number.isascii() and sequence_number.isdigit()):
        return None
    if len(sequence_number) > 40 and sequence_number[0] == "0":
        return None  # zeros beyond the padding's width: the integer prints without them
    sub = _SUB_SEQUENCE_ZERO if sub_sequence == 0 else f".{sub_sequence:010d}"
    # zfill pads to the width of Position.encode's format and leaves longer numbers alone.
    text = shard_prefix + sequence_number.zfill(40) + sub
    # The first four bytes of the big-endian digest: `place_of(hash64(text))`.
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest()[:4], "big")
