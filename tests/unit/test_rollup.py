"""Live rollups: a shard's busiest pages of a minute in one item. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

from clickstream.stores.page_stats import (
    MAX_ROLLUP_PAGES,
    MinuteRollup,
    PageMinuteState,
    hidden_rows,
    is_rollup,
    listed_when_truncated,
    minute_rollups,
    page_minute_items,
    rollup_from_item,
    rollup_item,
    rollup_rows,
)
from clickstream.stores.positions import Position
from consumer.core.rollup import LiveRollups

MINUTE = "2026-11-24T09:00"
SHARD = "shardId-000000000001"
NOW = datetime(2026, 11, 24, 9, 0, 30, tzinfo=UTC)


def page(name: str, views: int, clicks: int = 0, sessions: int = 1) -> PageMinuteState:
    return PageMinuteState(name, MINUTE, SHARD, Position(1), views, clicks, sessions)


def test_a_rollup_keeps_the_busiest_pages_views_then_clicks() -> None:
    # GIVEN more pages than a rollup keeps, two tied on views
    rollup = MinuteRollup(MINUTE, SHARD)
    for n in range(MAX_ROLLUP_PAGES + 20):
        rollup.update(page(f"/p/{n}", views=n), Position(n + 1))
    tied = MAX_ROLLUP_PAGES + 10
    rollup.update(page("/tie", views=tied, clicks=9), Position(500))
    # WHEN its item is made THEN it lists the busiest, and the tie goes to more clicks
    top = rollup.top()
    assert len(top) == MAX_ROLLUP_PAGES
    assert top[0][0] == f"/p/{MAX_ROLLUP_PAGES + 19}"
    names = [entry[0] for entry in top]
    assert names.index("/tie") == names.index(f"/p/{tied}") - 1
    assert "/p/0" not in names


def test_a_rollup_position_never_moves_back_and_its_item_round_trips() -> None:
    # GIVEN a rollup at position 900 given an older page state at 300
    rollup = MinuteRollup(MINUTE, SHARD, Position(900), {"/a": (3, 1, 2, 0)})
    rollup.update(page("/b", views=1), Position(300))
    rollup.pages["/bots"] = (0, 0, 0, 7)  # a page only a crawler saw
    # THEN it still says 900, and its item reads back the same
    assert rollup.position == Position(900)
    item = rollup_item(rollup, expires_at=1, updated_at=NOW)
    assert is_rollup(item)
    assert "window_shard" not in item  # the by-window index never lists it
    assert rollup_from_item(item) == MinuteRollup(
        MINUTE, SHARD, Position(900), rollup.pages, stored_pages=3
    )
    assert {row["page"]: row["views"] for row in rollup_rows(item)} == {
        "/a": 3,
        "/b": 1,
        "/bots": 0,
    }
    # (bots' page views are counted apart, and only where there are some)
    assert {row["page"]: row["bot_views"] for row in rollup_rows(item)}["/bots"] == 7
    assert [len(entry) for entry in item["top"]] == [4, 4, 5]
    assert page_minute_items([item, {"page": "/a"}]) == [{"page": "/a"}]


def test_a_replay_behind_a_stored_rollup_leaves_it_alone_until_it_passes_it() -> None:
    # GIVEN a shard's rollup read back from the store at position 900 (the last owner's)
    rollups = LiveRollups(SHARD)
    stored = MinuteRollup(MINUTE, SHARD, Position(900), {"/a": (5, 2, 4, 0)})
    rollups.remember({MINUTE: stored})
    # WHEN a replay's delivery up to 300 changes /a (its state there is older: 2 views)
    rollups.changed([page("/a", views=2)], Position(300), now=10.0, first=Position(250))
    # THEN the rollup keeps the stored state, and has nothing to write
    assert stored.pages == {"/a": (5, 2, 4, 0)}
    assert stored.position == Position(900)
    assert MINUTE not in rollups.dirty
    # WHEN the replay passes it: a delivery up to 950 (its state there is newer: 6 views)
    rollups.changed([page("/a", views=6)], Position(950), now=11.0, first=Position(901))
    # THEN the rollup takes the state and the position, and waits to be written
    assert stored.pages == {"/a": (6, 0, 1, 0)}
    assert stored.position == Position(950)
    assert [minute for minute, _ in rollups.dirty.all()] == [MINUTE]


def test_live_rollups_wait_for_their_cadence_and_idle_ones_go_once_written() -> None:
    # GIVEN a minute's rollup changed at t=10
    rollups = LiveRollups(SHARD)
    changed = [page("/a", views=1)]
    rollups.remember(dict.fromkeys(rollups.missing(changed)))
    rollups.changed(changed, Position(7), now=10.0, first=Position(7))
    # THEN it is due two seconds later, and kept while it waits, however idle
    assert rollups.dirty.due(11.0, wait=2.0) == []
    assert [minute for minute, _ in rollups.dirty.due(12.0, wait=2.0)] == [MINUTE]
    rollups.forget_idle(before=1000.0)
    assert rollups.missing(changed) == set()
    # WHEN it is written THEN an idle rollup is dropped (read again on its next touch)
    rollups.dirty.written([MINUTE])
    rollups.forget_idle(before=1000.0)
    assert rollups.missing(changed) == {MINUTE}


def test_a_rollup_that_lists_only_the_busiest_pages_says_which_it_lists() -> None:
    # GIVEN a shard-minute with more pages than a rollup lists (a crawler's minute)
    crowded = MinuteRollup(MINUTE, SHARD)
    for n in range(MAX_ROLLUP_PAGES + 5):
        crowded.update(page(f"/crawl/{n}", views=1), Position(n + 1))
    crowded.update(page("/pricing", views=0, clicks=1), Position(500))
    # AND one that lists every page it has
    quiet = MinuteRollup(MINUTE, SHARD)
    quiet.update(page("/pricing", views=3), Position(1))
    # WHEN their items are read back
    listed = listed_when_truncated(rollup_item(crowded, expires_at=0, updated_at=NOW))
    # THEN the crowded one names the pages it lists, which leave out the click on /pricing
    assert listed is not None
    assert len(listed) == MAX_ROLLUP_PAGES
    assert "/pricing" not in listed
    # AND the quiet one lists all (None: nothing left out)
    assert listed_when_truncated(rollup_item(quiet, expires_at=0, updated_at=NOW)) is None


def page_minute_item(name: str, shard: str, views: int) -> dict[str, object]:
    """A page-minute item as the store gives it back (counters as DynamoDB numbers)."""
    return {"page": name, "window": MINUTE, "shard_id": shard, "views": views, "clicks": 0}


def test_a_minutes_rollups_and_the_page_minute_items_they_leave_out_count_each_page_once() -> None:
    # GIVEN a minute on two shards: one crowded by a crawler (its rollup lists only its
    # busiest pages, /pricing left out), one quiet
    other = "shardId-000000000002"
    crowded = MinuteRollup(MINUTE, SHARD)
    for n in range(MAX_ROLLUP_PAGES + 5):
        crowded.update(page(f"/crawl/{n}", views=2), Position(n + 1))
    crowded.update(page("/pricing", views=1), Position(500))
    quiet = MinuteRollup(MINUTE, other)
    quiet.update(PageMinuteState("/pricing", MINUTE, other, Position(1), 3, 0, 1), Position(1))
    items = [rollup_item(rollup, expires_at=0, updated_at=NOW) for rollup in (crowded, quiet)]
    # WHEN the minute's rollups are read
    read = minute_rollups(items)
    # THEN the rows are every listed page's, and only the crowded shard is truncated
    assert len(read.rows) == MAX_ROLLUP_PAGES + 1
    assert set(read.truncated) == {(MINUTE, SHARD)}
    # AND the crowded shard's page-minute items complete it with what it left out, once:
    # a page its rollup lists and the quiet shard's items are not counted again
    stored = [
        page_minute_item("/pricing", SHARD, 1),
        page_minute_item("/crawl/104", SHARD, 2),  # listed (ties go by name)
        page_minute_item("/crawl/99", SHARD, 2),  # not listed
        page_minute_item("/pricing", other, 3),
    ]
    rows = read.rows + hidden_rows(stored, read.truncated)
    pricing = [(row["shard_id"], row["views"]) for row in rows if row["page"] == "/pricing"]
    assert sorted(pricing) == [(SHARD, 1), (other, 3)]
    assert sum(row["page"] == "/crawl/104" for row in rows) == 1
    assert sum(row["page"] == "/crawl/99" for row in rows) == 1


def test_a_truncated_rollup_read_back_and_rewritten_still_says_it_lists_only_some() -> None:
    # GIVEN a stored rollup of a crawler's minute: one page more than it lists
    rollup = MinuteRollup(MINUTE, SHARD)
    for n in range(MAX_ROLLUP_PAGES + 1):
        rollup.update(page(f"/p/{n}", views=n + 1), Position(n + 1))
    stored = rollup_item(rollup, expires_at=1, updated_at=NOW)
    assert listed_when_truncated(stored) is not None
    # WHEN another owner of the shard reads it back (it knows the listed pages only) and
    # rewrites it after updating a listed page
    taken_over = rollup_from_item(stored)
    taken_over.update(page("/p/50", views=60), Position(500))
    rewritten = rollup_item(taken_over, expires_at=1, updated_at=NOW)
    # THEN the item still counts the page it never listed, so readers complete it from the
    # page-minute items instead of losing that page
    assert rewritten["pages"] == MAX_ROLLUP_PAGES + 1
    listed = listed_when_truncated(rewritten)
    assert listed is not None
    assert "/p/0" not in listed
    page_items = [{"page": "/p/0", "window": MINUTE, "shard_id": SHARD, "views": 1, "clicks": 0}]
    completed = minute_rollups([rewritten])
    assert [row["page"] for row in hidden_rows(page_items, completed.truncated)] == ["/p/0"]
