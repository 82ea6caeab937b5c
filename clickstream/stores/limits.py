"""DynamoDB's limits, and whether an item is within them. Pure.

The limits (DynamoDB developer guide, "Quotas" and "Item sizes"): an item is at most 400 KB,
counted as the UTF-8 length of every attribute name plus the size of its value; a partition
key value at most 2,048 bytes; a sort key value at most 1,024 bytes, the keys of every global
secondary index included (the page-stats table's `by-window` index sorts on `page`).

`item_size` over-estimates on purpose (every number as its largest, 21 bytes; a list or map
as 3 bytes plus 1 per element), so an item it passes DynamoDB takes. Each store names its
table's keys (`KeySchema`); the workers check their items before every write
(`consumer.core.limits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

MAX_ITEM_BYTES: Final = 400 * 1024


MAX_PARTITION_KEY_BYTES: Final = 2048


MAX_SORT_KEY_BYTES: Final = 1024


_NUMBER_BYTES: Final = 21


@dataclass(frozen=True, slots=True)
class KeySchema:
    """The key attributes of a table, its indexes' included."""

    partition_keys: tuple[str, ...]
    sort_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ItemLimits:
    """The limits checked; tests lower or raise them to reach DynamoDB's own refusal."""

    item_bytes: int = MAX_ITEM_BYTES
    partition_key_bytes: int = MAX_PARTITION_KEY_BYTES
    sort_key_bytes: int = MAX_SORT_KEY_BYTES


def value_size(value: Any) -> int:
    """The bytes DynamoDB counts for one attribute value (an upper bound)."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        return _NUMBER_BYTES
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, Mapping):
        return 3 + sum(1 + len(str(k).encode()) + value_size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(1 + value_size(each) for each in value)
    if isinstance(value, set | frozenset):
        return sum(value_size(each) for each in value)
    raw: Any = getattr(value, "value", None)  # boto3's Binary
    if isinstance(raw, bytes):
        return len(raw)
    raise TypeError(f"no DynamoDB size for a {type(value).__name__}")


def item_size(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def violation(
    item: Mapping[str, Any], keys: KeySchema, limits: ItemLimits = ItemLimits()
) -> str | None:
    """The first limit the item breaks, said for a dead letter, or None when it fits."""
    for name in keys.partition_keys:
        size = value_size(item.get(name, ""))
        if size > limits.partition_key_bytes:
            return f"key {name} is {size} bytes, over {limits.partition_key_bytes}"
    for name in keys.sort_keys:
        size = value_size(item.get(name, ""))
        if size > limits.sort_key_bytes:
            return f"sort key {name} is {size} bytes, over {limits.sort_key_bytes}"
    size = item_size(item)
    if size > limits.item_bytes:
        return f"item is {size} bytes, over {limits.item_bytes}"
    return None
