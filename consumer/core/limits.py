"""Whether the items a flush will write are within DynamoDB's limits
(`clickstream.stores.limits`). Pure.

Items are bounded by
construction (page keys, hashed and capped session bookkeeping); this check runs before every
write all the same, and an item that fails it is not written: the events that made it are
dead-lettered as `unstorable`, naming the limit (see `consumer.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from clickstream.stores.limits import ItemLimits, violation
from clickstream.stores.page_stats import PAGE_STATS_KEYS, PageMinuteKey, PageMinuteState, page_item
from clickstream.stores.sessions import SESSIONS_KEYS, SessionState, session_item
from clickstream.stores.sketch import recent_bytes, touches_bytes
from consumer.core.aggregate import Changes


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
        problem = violation(session_item(session, 0), SESSIONS_KEYS, limits)
        if problem:
            found.append(Unstorable(problem, session_id=session.session_id))
    for page in changes.pages:
        if page_surely_fits(page, limits):
            continue
        problem = violation(page_item(page, 0, now), PAGE_STATS_KEYS, limits)
        if problem:
            found.append(Unstorable(problem, page=page.key))
    return found
