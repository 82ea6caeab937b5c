"""What AWS bills a worker for, per call: DynamoDB capacity units and S3 requests. Pure.

DynamoDB (developer guide, "Read/write capacity mode" and "Item sizes"): a write costs one
write unit per started KB of the item, the larger of the item before and after for a put
that replaces one, and a conditional write that fails costs the same as one that succeeds.
A global secondary index adds its own writes: one put of the projected item when a write
changes what the index holds (a key, or a projected attribute), none otherwise. A strongly
consistent read costs one read unit per started 4 KB of each item read, an absent item one.

Item sizes here follow the guide: attribute names and string values by UTF-8 length, binary
by length, a number about one byte per two significant digits plus one, a boolean or null
one byte. (`clickstream.stores.limits.item_size` over-estimates numbers on purpose, to be safe
against the 400 KB limit; billing wants the closer figure.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

WRITE_UNIT_BYTES: Final = 1024
READ_UNIT_BYTES: Final = 4096

# us-east-1 list prices at the time of writing (check the AWS pricing pages).
DOLLARS_PER_MILLION_WRITE_UNITS: Final = 0.625
"""DynamoDB on-demand write request units."""
DOLLARS_PER_MILLION_READ_UNITS: Final = 0.125
"""DynamoDB on-demand read request units."""
DOLLARS_PER_MILLION_S3_PUTS: Final = 5.0
"""S3 Standard PUT requests ($0.005 per 1,000)."""


def number_bytes(value: int | float | Decimal) -> int:
    if isinstance(value, int):
        text = str(abs(value)).rstrip("0") or "0"  # trailing zeros are not significant
        return 1 + math.ceil(len(text) / 2) + (1 if value < 0 else 0)
    digits = Decimal(value).normalize().as_tuple().digits
    return 1 + math.ceil(len(digits) / 2) + (1 if value < 0 else 0)


def value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        return number_bytes(value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(k).encode()) + value_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + value_bytes(each) for each in value)
    raise TypeError(f"no DynamoDB size for a {type(value).__name__}")


def item_bytes(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int) -> int:
    """A strongly consistent read of one item (an absent item costs one unit too)."""
    return max(1, math.ceil(size / READ_UNIT_BYTES))


@dataclass(slots=True)
class Charge:
    calls: int = 0
    write_units: int = 0
    read_units: int = 0


@dataclass(slots=True)
class Ledger:
    """Calls a worker made, by what they were for, and the capacity units they cost."""

    charges: dict[str, Charge] = field(default_factory=dict)

    def write(self, what: str, units: int, calls: int = 1) -> None:
        charge = self.charges.setdefault(what, Charge())
        charge.calls += calls
        charge.write_units += units

    def read(self, what: str, units: int, calls: int = 1) -> None:
        charge = self.charges.setdefault(what, Charge())
        charge.calls += calls
        charge.read_units += units

    def call(self, what: str, calls: int = 1) -> None:
        """A request billed per call, not in capacity units (an S3 PUT)."""
        self.charges.setdefault(what, Charge()).calls += calls

    @property
    def write_units(self) -> int:
        return sum(charge.write_units for charge in self.charges.values())

    @property
    def read_units(self) -> int:
        return sum(charge.read_units for charge in self.charges.values())

    def calls(self, what: str) -> int:
        charge = self.charges.get(what)
        return 0 if charge is None else charge.calls


def dollars_per_million_events(
    events: int, write_units: float, read_units: float, s3_puts: float
) -> float:
    """What the given charges for `events` events cost per million events, at list prices."""
    if events <= 0:
        return 0.0
    return (1 / events) * (
        write_units * DOLLARS_PER_MILLION_WRITE_UNITS
        + read_units * DOLLARS_PER_MILLION_READ_UNITS
        + s3_puts * DOLLARS_PER_MILLION_S3_PUTS
    )
