"""The dashboard's pure figures: archive tallies, the chart's rows, active sessions, top
pages, which minutes to read again, shard states."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from clickstream.stores.page_stats import hidden_rows
from insights import live

NOW = datetime(2026, 11, 23, 10, 30, 15, tzinfo=UTC)


def event(kind: str, session: str, at: str, **extra: object) -> bytes:
    return json.dumps({"type": kind, "session_id": session, "timestamp": at, **extra}).encode()


def test_a_raw_object_is_tallied_per_minute_and_type_with_each_sessions_last_event() -> None:
    # GIVEN an archive object's lines: two sessions over two minutes, one unknown type
    lines = [
        event("page_view", "a", "2026-11-23T10:29:10.000Z"),
        event("click", "a", "2026-11-23T10:29:50.500Z"),
        event("scroll", "b", "2026-11-23T10:30:01.000Z"),
        event("identify", "b", "2026-11-23T10:30:02.000Z"),
        event("click", "a", "2026-11-23T10:29:20.000Z"),  # out of order within the object
    ]
    # WHEN it is tallied
    tally = live.tally_raw(lines)
    # THEN counts are per minute and type (unknown types under "other"), last events kept
    assert tally.per_minute == Counter(
        {
            ("2026-11-23T10:29", "page_view"): 1,
            ("2026-11-23T10:29", "click"): 2,
            ("2026-11-23T10:30", "scroll"): 1,
            ("2026-11-23T10:30", "other"): 1,
        }
    )
    assert tally.last_seen == {
        "a": datetime(2026, 11, 23, 10, 29, 50, 500000, tzinfo=UTC),
        "b": datetime(2026, 11, 23, 10, 30, 2, tzinfo=UTC),
    }


def test_lines_that_are_not_events_are_skipped_not_fatal() -> None:
    tally = live.tally_raw([b"not json", b'{"type": "click"}', b"[]"])
    assert tally.per_minute == Counter()
    assert tally.last_seen == {}


def test_dead_letters_are_counted_per_arrival_minute_and_reason() -> None:
    lines = [
        json.dumps({"reason": "invalid_json", "arrival_time": "2026-11-23T10:29:59.999Z"}).encode(),
        json.dumps({"reason": "invalid_json", "arrival_time": "2026-11-23T10:30:00.000Z"}).encode(),
        json.dumps({"reason": "missing_field", "arrival_time": "2026-11-23T10:30:01Z"}).encode(),
        b"garbage",
    ]
    assert live.tally_dead_letters(lines) == Counter(
        {
            ("2026-11-23T10:29", "invalid_json"): 1,
            ("2026-11-23T10:30", "invalid_json"): 1,
            ("2026-11-23T10:30", "missing_field"): 1,
        }
    )


def test_the_window_is_the_last_minutes_up_to_now_oldest_first() -> None:
    assert live.window_minutes(NOW, 3) == [
        "2026-11-23T10:28",
        "2026-11-23T10:29",
        "2026-11-23T10:30",
    ]


def test_the_hours_to_list_are_those_the_window_overlaps() -> None:
    hours = live.hours_covering(NOW - timedelta(minutes=60), NOW)
    assert hours == [
        datetime(2026, 11, 23, 9, tzinfo=UTC),
        datetime(2026, 11, 23, 10, tzinfo=UTC),
    ]
    assert live.hours_covering(NOW - timedelta(minutes=10), NOW) == [hours[1]]


def test_events_per_minute_sum_objects_and_give_every_minute_a_row() -> None:
    # GIVEN two objects (two shards) with events in the window and one before it
    first = live.tally_raw(
        [
            event("page_view", "a", "2026-11-23T10:29:10Z"),
            event("click", "a", "2026-11-23T10:29:11Z"),
            event("page_view", "a", "2026-11-23T09:00:00Z"),
        ]
    )
    second = live.tally_raw([event("page_view", "b", "2026-11-23T10:29:30Z")])
    # WHEN the rows of the last three minutes are made
    rows = live.events_per_minute([first, second], live.window_minutes(NOW, 3))
    # THEN the minutes without events are zeros, the others summed over objects
    assert [row["total"] for row in rows] == [0, 3, 0]
    assert rows[1] == {
        "minute": "2026-11-23T10:29",
        "page_view": 2,
        "click": 1,
        "scroll": 0,
        "custom": 0,
        "other": 0,
        "total": 3,
    }


def test_a_session_is_active_by_its_last_event_across_objects() -> None:
    # GIVEN session a's events in two objects, b only long ago
    early = live.tally_raw(
        [
            event("page_view", "a", "2026-11-23T09:50:00Z"),
            event("page_view", "b", "2026-11-23T09:55:00Z"),
        ]
    )
    later = live.tally_raw([event("click", "a", "2026-11-23T10:20:00Z")])
    # WHEN sessions active in the last 30 minutes are counted
    since = NOW - timedelta(minutes=30)
    # THEN a counts once, b not at all
    assert live.active_sessions([early, later], since) == 1
    assert live.active_sessions([early], since) == 0


def page_item(page: str, minute: str, shard: str, views: int, clicks: int = 0) -> dict[str, object]:
    return {"page": page, "window": minute, "shard_id": shard, "views": views, "clicks": clicks}


def test_top_pages_sum_shards_and_minutes_busiest_first_with_the_recent_views() -> None:
    items = [
        page_item("/a", "2026-11-23T10:20", "shard-0", 5, 1),
        page_item("/a", "2026-11-23T10:29", "shard-1", 2),
        page_item("/b", "2026-11-23T10:29", "shard-0", 9, 3),
        page_item("/c", "2026-11-23T10:00", "shard-0", 7),
    ]
    rows = live.top_pages(items, recent_from="2026-11-23T10:26", top=2)
    # /a's views over two shards and minutes tie /c's; its click ranks it first
    assert [row.as_dict() for row in rows] == [
        {
            "page": "/b",
            "views": 9,
            "clicks": 3,
            "sessions": 0,
            "bot_views": 0,
            "minutes": 1,
            "recent_views": 9,
        },
        {
            "page": "/a",
            "views": 7,
            "clicks": 1,
            "sessions": 0,
            "bot_views": 0,
            "minutes": 2,
            "recent_views": 2,
        },
    ]
    assert live.top_pages(items, recent_from="2026-11-23T10:26")[2].page == "/c"


def test_counts_a_truncated_rollup_leaves_out_come_from_the_page_minute_items() -> None:
    # GIVEN shard-0's rollup of 10:29 listing only its busiest pages (not /a), shard-1's
    # listing all of its pages
    listed = {("2026-11-23T10:29", "shard-0"): frozenset({"/b", "/c"})}
    # AND /a's page-minute items: one on the truncated shard-minute, one on a listed one
    # (its rollup row already counts it), one on shard-0 at another minute (not truncated)
    items = [
        page_item("/a", "2026-11-23T10:29", "shard-0", 1, 2),
        page_item("/a", "2026-11-23T10:29", "shard-1", 4),
        page_item("/a", "2026-11-23T10:28", "shard-0", 6),
        page_item("/b", "2026-11-23T10:29", "shard-0", 9),
    ]
    # WHEN the rows the rollups leave out are taken from them
    hidden = hidden_rows(items, listed)
    # THEN only /a's count on the truncated shard-minute is added
    assert hidden == [
        {
            "page": "/a",
            "window": "2026-11-23T10:29",
            "shard_id": "shard-0",
            "views": 1,
            "clicks": 2,
            "sessions": 0,
            "bot_views": 0,
        }
    ]
    # AND with the rollups' rows, /a's totals count it once
    rollup_rows = [page_item("/a", "2026-11-23T10:29", "shard-1", 4)]
    row = live.top_pages(rollup_rows + hidden, recent_from="2026-11-23T10:26")[0]
    assert (row.page, row.views, row.clicks) == ("/a", 5, 2)


def test_young_minutes_are_read_every_refresh_settled_ones_in_turn() -> None:
    # GIVEN minutes read 10 s ago (one 1 minute old, three settled), one never read
    read_at = {
        "2026-11-23T10:29": NOW - timedelta(seconds=10),
        "2026-11-23T10:10": NOW - timedelta(seconds=10),
        "2026-11-23T10:11": NOW - timedelta(seconds=30),
        "2026-11-23T10:12": NOW - timedelta(seconds=20),
    }
    minutes = ["2026-11-23T10:05", *sorted(read_at)]
    cadence: dict[str, Any] = {
        "fresh_for": timedelta(seconds=5),
        "settled_after": timedelta(minutes=3),
        "settled_per_refresh": 2,
    }
    # WHEN the due minutes are chosen
    due = live.minutes_to_read(read_at, minutes, NOW, **cadence)
    # THEN the unread and the young ones are due, and the two settled ones read longest ago
    assert due == ["2026-11-23T10:05", "2026-11-23T10:11", "2026-11-23T10:12", "2026-11-23T10:29"]
    # AND nothing is due while every copy is fresh
    cadence["fresh_for"] = timedelta(minutes=1)
    assert live.minutes_to_read(read_at, minutes[1:], NOW, **cadence) == []


def test_a_shards_state_follows_its_checkpoint_and_the_read_after_it() -> None:
    assert live.shard_state(None, None, False) == "no lease yet"
    assert live.shard_state("SHARD_END", None, False) == "ended"
    assert live.shard_state("4960", None, False) == "unknown"
    assert live.shard_state("4960", 0, False) == "caught up"
    assert live.shard_state("4960", 1500, True) == "behind"
    assert live.shard_state("TRIM_HORIZON", 0, True) == "behind"
    assert live.shard_state("TRIM_HORIZON", 0, False) == "caught up"
