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

from typing import Final, NamedTuple

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
