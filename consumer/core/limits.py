"""DynamoDB's limits, and whether an item the consumer writes is within them. Pure.

The limits (DynamoDB developer guide, "Quotas" and "Item sizes"): an item is at most 400 KB,
counted as the UTF-8 length of every attribute name plus the size of its value; a partition
key value at most 2,048 bytes; a sort key value at most 1,024 bytes, the keys of every global
secondary index included (the page-stats table's `by-window` index sorts on `page`).

`item_size` over-estimates on purpose (every number as its largest, 21 bytes; a list or map
as 3 bytes plus 1 per element), so an item it passes DynamoDB takes. Items are bounded by
construction (page keys, hashed and capped session bookkeeping); this check runs before every
write all the same, and an item that fails it is not written: the events that made it are
dead-lettered as `unstorable`, naming the limit (see `consumer.processor`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from consumer.core import items
from consumer.core.aggregate import Changes
from consumer.core.sketch import recent_bytes, touches_bytes
from consumer.core.state import PageMinuteKey, PageMinuteState, SessionState

MAX_ITEM_BYTES: Final = 400 * 1024
MAX_PARTITION_KEY_BYTES: Final = 2048
MAX_SORT_KEY_BYTES: Final = 1024
_NUMBER_BYTES: Final = 21


@dataclass(frozen=True, slots=True)
class KeySchema:
    """The key attributes of a table, its indexes' included."""

    partition_keys: tuple[str, ...]
    sort_keys: tuple[str, ...] = ()


SESSIONS_KEYS: Final = KeySchema(("session_id",))
PAGE_STATS_KEYS: Final = KeySchema(("page", "window_shard"), ("bucket_shard", "page"))
ALERTS_KEYS: Final = KeySchema(("rule",), ("window_subject",))


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


@dataclass(frozen=True, slots=True)
class Unstorable:
    """An item of a flush that cannot be stored, and why; the events that made it go to the
    dead letters."""

    limit: str
    session_id: str | None = None
    page: PageMinuteKey | None = None


_SESSION_FIXED_BYTES: Final = 1024
"""More than a session item's names, numbers, timestamps, ids and flags take (~600 bytes)."""


def surely_fits(session: SessionState, limits: ItemLimits) -> bool:
    """Whether a session's item is certainly within the limits, judged without building it
    (the check runs on every session each delivery changes: building each item was most of
    the processor's time). Generous per part: when unsure, the item is built and checked."""
    bound = (
        _SESSION_FIXED_BYTES
        + 2 * len(session.session_id)
        + 2 * len(session.first_event_id)
        + 2 * len(session.last_event_id)
        + 4 * len(session.user_agent or "")
        + 4 * len(session.entry_page or "")
        + 4 * len(session.exit_page or "")
        + session.pages.byte_size()
        + recent_bytes(len(session.recent_ids))
        + touches_bytes(len(session.first_touches))
    )
    return bound <= limits.item_bytes and 4 * len(session.session_id) <= min(
        limits.partition_key_bytes, limits.item_bytes
    )


_PAGE_FIXED_BYTES: Final = 512
"""More than a page-minute item's names, counters, position, times and separators take."""


def page_surely_fits(page: PageMinuteState, limits: ItemLimits) -> bool:
    """Whether a page-minute's item is certainly within the limits, judged without building
    it (every changed page-minute is checked each delivery). Its variable parts are its page
    key, its minute and its shard id, each at most 4 bytes a character: the page is a key
    (`page`) and the sort key of the `by-window` index, minute and shard make the others."""
    key_bytes = 4 * (len(page.page) + len(page.minute) + len(page.shard_id)) + 8
    return (
        key_bytes <= min(limits.partition_key_bytes, limits.sort_key_bytes)
        and _PAGE_FIXED_BYTES + 4 * key_bytes <= limits.item_bytes
    )


def unstorable_changes(
    changes: Changes, now: datetime, limits: ItemLimits = ItemLimits()
) -> list[Unstorable]:
    """The items of a flush that break a limit, checked as they will be written."""
    found: list[Unstorable] = []
    for session in changes.sessions:
        if surely_fits(session, limits):
            continue
        problem = violation(items.session_item(session, 0, now), SESSIONS_KEYS, limits)
        if problem:
            found.append(Unstorable(problem, session_id=session.session_id))
    for page in changes.pages:
        if page_surely_fits(page, limits):
            continue
        problem = violation(items.page_item(page, 0, now), PAGE_STATS_KEYS, limits)
        if problem:
            found.append(Unstorable(problem, page=page.key))
    return found
