"""DynamoDB item shapes of the sessions and page-stats tables, both ways. Pure.

Items are written whole ("absolute state"), each carrying the position of the last record
it includes; `WRITE_CONDITION`s refuse any write that would move that position backwards,
which is also what fences off a worker that lost its lease but still flushes (a zombie).
Equal positions are allowed: the same flush written twice (a retried put) is the same item.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from clickstream.kernel.timestamps import from_iso_or_none, to_iso_ms
from clickstream.stores.page_stats import page_sort_key
from consumer.core.positions import Position
from consumer.core.sketch import (
    DistinctCounter,
    recent_from_bytes,
    recent_to_bytes,
    touches_from_bytes,
    touches_to_bytes,
)
from consumer.core.state import PageMinuteKey, PageMinuteState, SessionState, ShardPosition

SESSION_WRITE_CONDITION: Final = (
    "attribute_not_exists(#position) OR #shard <> :shard OR #position <= :position"
)
"""A session moves to a child shard after a reshard; positions only compare within a shard."""
PAGE_WRITE_CONDITION: Final = "attribute_not_exists(#position) OR #position <= :position"
PAGE_INDEX_PROJECTION: Final = "KEYS_ONLY"
"""The page-stats `by-window` index's projection in the template (a unit test compares)."""
CONDITION_NAMES: Final = {"#position": "position", "#shard": "shard_id"}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else to_iso_ms(moment)


@functools.lru_cache(maxsize=64)
def _updated_at(moment: datetime) -> str | None:
    # Every item of a save carries the same time: formatted once, not once per item.
    return _iso(moment)


def _bytes(value: object) -> bytes:
    """A binary attribute as read back (bytes, or boto3's Binary wrapper), b"" when absent."""
    if value is None:
        return b""
    raw: Any = getattr(value, "value", value)
    return bytes(raw)


def session_item(state: SessionState, expires_at: int, updated_at: datetime) -> dict[str, Any]:
    if state.written_by is None:
        raise ValueError(f"session {state.session_id} has no position to write")
    pages = state.pages
    item: dict[str, Any] = {
        "session_id": state.session_id,
        "shard_id": state.written_by.shard_id,
        "position": state.written_by.position.encode(),
        "events": state.events,
        "page_views": state.page_views,
        "clicks": state.clicks,
        "scrolls": state.scrolls,
        "custom": state.custom,
        "first_event_id": state.first_event_id,
        "last_event_id": state.last_event_id,
        "duration_seconds": Decimal(str(state.duration_seconds)),
        "distinct_pages": pages.count(),
        "gap_count": state.gap_count,
        # Floats go through their shortest repr, so a state read back is the state written.
        "gap_mean": Decimal(repr(state.gap_mean)),
        "gap_m2": Decimal(repr(state.gap_m2)),
        "bot_score": Decimal(repr(state.bot_score)),
        "bot_alerted": state.bot_alerted,
        "updated_at": _updated_at(updated_at),
        "expires_at": expires_at,
    }
    # What is unknown or implied is left out (added one by one: a session item is built
    # for every write of a session, and filtering a whole dict of Nones cost more).
    if state.first_seen is not None:
        item["first_seen"] = _iso(state.first_seen)
    if state.last_seen is not None:
        item["last_seen"] = _iso(state.last_seen)
    if state.entry_page is not None:
        item["entry_page"] = state.entry_page
    if state.exit_page is not None:
        item["exit_page"] = state.exit_page
    if state.user_agent is not None:
        item["user_agent"] = state.user_agent
    # Left out while exact (the common case): readers take an absent flag as exact.
    if not pages.exact:
        item["distinct_pages_exact"] = False
    # Hashed, fixed-size records in binary attributes (consumer.core.sketch); empty ones
    # are left out.
    page_hashes = pages.to_bytes()
    if page_hashes:
        item["pages"] = page_hashes
    if state.first_touches:
        item["first_touches"] = touches_to_bytes(state.first_touches)
    if state.recent_ids:
        item["recent_event_ids"] = recent_to_bytes(state.recent_ids)
    # Left out when it is the last event's time (records in order, the common case).
    if state.previous_at is not None and state.previous_at != state.last_seen:
        item["previous_at"] = _iso(state.previous_at)
    return item


def session_from_item(item: Mapping[str, Any]) -> SessionState:
    first_seen = item.get("first_seen")
    last_seen = item.get("last_seen")
    return SessionState(
        session_id=str(item["session_id"]),
        written_by=ShardPosition(str(item["shard_id"]), Position.decode(str(item["position"]))),
        events=int(item.get("events", 0)),
        page_views=int(item.get("page_views", 0)),
        clicks=int(item.get("clicks", 0)),
        scrolls=int(item.get("scrolls", 0)),
        custom=int(item.get("custom", 0)),
        first_seen=from_iso_or_none(first_seen),
        first_event_id=str(item.get("first_event_id", "")),
        entry_page=item.get("entry_page"),
        last_seen=from_iso_or_none(last_seen),
        last_event_id=str(item.get("last_event_id", "")),
        exit_page=item.get("exit_page"),
        user_agent=item.get("user_agent"),
        pages=DistinctCounter.from_bytes(_bytes(item.get("pages"))),
        first_touches=touches_from_bytes(_bytes(item.get("first_touches"))),
        recent_ids=recent_from_bytes(_bytes(item.get("recent_event_ids"))),
        previous_at=from_iso_or_none(item.get("previous_at", last_seen)),
        gap_count=int(item.get("gap_count", 0)),
        gap_mean=float(item.get("gap_mean", 0)),
        gap_m2=float(item.get("gap_m2", 0)),
        bot_score=float(item.get("bot_score", 0)),
        bot_alerted=bool(item.get("bot_alerted", False)),
    )


def page_item(state: PageMinuteState, expires_at: int, updated_at: datetime) -> dict[str, Any]:
    if state.position is None:
        raise ValueError(f"page-minute {state.key} has no position to write")
    return {
        "page": state.page,
        "bucket_shard": page_sort_key(state.minute, state.shard_id),
        "window": state.minute,
        # The `by-window` index's key: one query per shard answers "top pages this minute".
        "window_shard": page_sort_key(state.minute, state.shard_id),
        "shard_id": state.shard_id,
        "position": state.position.encode(),
        "views": state.views,
        "clicks": state.clicks,
        "sessions": state.sessions,
        "updated_at": _updated_at(updated_at),
        "expires_at": expires_at,
    }


def page_from_item(item: Mapping[str, Any]) -> PageMinuteState:
    return PageMinuteState(
        page=str(item["page"]),
        minute=str(item["window"]),
        shard_id=str(item["shard_id"]),
        position=Position.decode(str(item["position"])),
        views=int(item.get("views", 0)),
        clicks=int(item.get("clicks", 0)),
        sessions=int(item.get("sessions", 0)),
    )


def page_key(key: PageMinuteKey, shard_id: str) -> dict[str, str]:
    return {"page": key.page, "bucket_shard": page_sort_key(key.minute, shard_id)}


# -- alerts table: alerts and shard progress --------------------------------------------------
