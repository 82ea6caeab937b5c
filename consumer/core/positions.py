"""Positions of records inside one shard: (sequence number, sub-sequence number).

Sequence numbers are decimal strings, comparable only within one shard: Kinesis's are 56
digits (its API allows up to 129), kinesis-mock's too. A KPL-aggregated record becomes several
user records sharing one sequence number and told apart by their sub-sequence number, so a
position is the pair. Stored positions are fixed-width strings within a shard, so DynamoDB's
string comparison in a condition expression orders them the way the integers order: the
sequence number is padded to 40 digits (the tests' small numbers), which leaves Kinesis's
56-digit ones as they are. Widening the padding would be a migration, not an edit: the new
positions' leading zeros would compare below every position stored before, and the position
guard would refuse the writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from hashlib import blake2b
from typing import Final, NamedTuple

from clickstream.kernel.fast_decode import FoldedEvent
from consumer.core.sketch import hash64, place_of

_SEQUENCE_DIGITS: Final = 40  # Kinesis's 56 digits are stored unpadded (module docstring)
_SUB_SEQUENCE_DIGITS: Final = 10


class Position(NamedTuple):
    """Ordered as the shard orders its records. A named tuple, not a dataclass: one is made
    for every record, and a tuple is made and compared in C."""

    sequence: int
    sub_sequence: int = 0

    @classmethod
    def of(cls, sequence_number: str, sub_sequence_number: int | None = None) -> Position:
        return cls(int(sequence_number), sub_sequence_number or 0)

    def encode(self) -> str:
        """Fixed-width text whose string order is the position order."""
        # The widths are _SEQUENCE_DIGITS and _SUB_SEQUENCE_DIGITS, written out: a literal
        # format spec is parsed once, not per call (a place is encoded for every record).
        return f"{self.sequence:040d}.{self.sub_sequence:010d}"

    @classmethod
    def decode(cls, text: str) -> Position:
        sequence, _, sub_sequence = text.partition(".")
        return cls(int(sequence), int(sub_sequence or 0))

    @property
    def sequence_number(self) -> str:
        """The sequence number as KCL's checkpointer takes it."""
        return str(self.sequence)

    def __str__(self) -> str:
        return f"{self.sequence}/{self.sub_sequence}"


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
