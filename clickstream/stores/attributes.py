"""Attribute values as the stores write and read them: times as ISO 8601 text to the
millisecond, binary attributes as bytes. Pure."""

from __future__ import annotations

import functools
import math
from datetime import datetime
from decimal import Decimal
from typing import Any

from clickstream.kernel.timestamps import to_iso_ms


def stored_time(moment: datetime | None) -> str | None:
    return None if moment is None else to_iso_ms(moment)


@functools.lru_cache(maxsize=64)
def stored_update_time(moment: datetime) -> str:
    """An item's `updated_at`: every item of a save carries the same time, so it is
    formatted once, not once per item."""
    return to_iso_ms(moment)


def stored_bytes(value: object) -> bytes:
    """A binary attribute as read back (bytes, or boto3's Binary wrapper), b"" when absent."""
    if value is None:
        return b""
    raw: Any = getattr(value, "value", value)
    return bytes(raw)


def stored_number(value: float) -> Decimal | str:
    """A float as DynamoDB takes it: numbers cannot be infinite or NaN, so such a value is
    kept as its text."""
    return Decimal(repr(value)) if math.isfinite(value) else repr(value)


def read_number(value: object) -> float | int | str:
    """A number read back as it was written (an int, a float, or the text of a non-finite)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int | float):
        return value
    return str(value)
