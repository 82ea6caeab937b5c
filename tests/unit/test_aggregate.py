"""The per-shard aggregation: exact counts, per-item replay skipping, distinct sessions."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clickstream.kernel.events import ClickEvent, EventType, minute_key
from clickstream.stores.page_stats import PageMinuteKey
from clickstream.stores.positions import Position
from clickstream.stores.sessions import ShardPosition
from consumer.core.aggregate import ShardAggregator
from consumer.core.cache import LruCache
from consumer.core.positioned import PositionedEvent, place_hash, where_hash
from producer.generator import TrafficProfile, generate
from producer.manifest import build_manifest

T = TypeVar("T")

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def event(n: int, session: str, page: str, kind: EventType, second: float) -> ClickEvent:
    return ClickEvent(
        event_id=f"e-{n:04d}",
        type=kind,
        session_id=session,
        page=page,
        timestamp=START + timedelta(seconds=second),
    )


def positioned(events: Sequence[ClickEvent], first: int = 1) -> list[PositionedEvent]:
    return [PositionedEvent(Position(first + i), e) for i, e in enumerate(events)]


def run(aggregator: ShardAggregator, batch: list[PositionedEvent]) -> None:
    sessions, pages = aggregator.missing(batch)
    aggregator.remember(dict.fromkeys(sessions), dict.fromkeys(pages))
    aggregator.apply(batch, batch[-1].position)


def test_session_totals_entry_exit_and_duration() -> None:
    agg = ShardAggregator("shard-1")
    batch = positioned(
        [
            event(1, "s1", "/", EventType.PAGE_VIEW, 0),
            event(2, "s1", "/", EventType.CLICK, 5),
            event(3, "s1", "/cart", EventType.PAGE_VIEW, 30),
            event(4, "s1", "/cart", EventType.SCROLL, 42.5),
        ]
    )
    run(agg, batch)
    state = agg._sessions.get("s1")
    assert state is not None
    assert (state.events, state.page_views, state.clicks, state.scrolls) == (4, 2, 1, 1)
    assert (state.entry_page, state.exit_page) == ("/", "/cart")
    assert state.duration_seconds == 42.5
    assert state.pages.count() == 2
    assert state.written_by == ShardPosition("shard-1", Position(4))


def test_entry_and_exit_do_not_depend_on_arrival_order() -> None:
    # GIVEN a session whose records arrive out of event-time order (a producer retry)
    events = [
        event(1, "s1", "/a", EventType.PAGE_VIEW, 0),
        event(2, "s1", "/b", EventType.PAGE_VIEW, 10),
        event(3, "s1", "/c", EventType.PAGE_VIEW, 20),
    ]
    in_order, shuffled = ShardAggregator("x"), ShardAggregator("x")
    run(in_order, positioned(events))
    run(shuffled, positioned([events[2], events[0], events[1]]))
    a, b = in_order._sessions.get("s1"), shuffled._sessions.get("s1")
    assert a is not None
    assert b is not None
    assert (a.entry_page, a.exit_page) == (b.entry_page, b.exit_page) == ("/a", "/c")


def test_a_record_at_or_below_an_items_position_is_not_applied_again() -> None:
    # GIVEN a batch applied once
    agg = ShardAggregator("shard-1")
    batch = positioned([event(i, "s1", "/", EventType.CLICK, i) for i in range(10)])
    run(agg, batch)
    # WHEN the same records are applied again (a replay)
    changes = agg.apply(batch, batch[-1].position)
    # THEN nothing changes and nothing needs writing
    assert changes.item_count == 0
    state = agg._sessions.get("s1")
    assert state is not None
    assert state.clicks == 10


def test_distinct_sessions_count_each_session_once_per_page_minute() -> None:
    agg = ShardAggregator("shard-1")
    batch = positioned(
        [
            event(1, "s1", "/", EventType.PAGE_VIEW, 1),
            event(2, "s1", "/", EventType.CLICK, 2),
            event(3, "s2", "/", EventType.PAGE_VIEW, 3),
            event(4, "s1", "/", EventType.CLICK, 61),  # next minute
        ]
    )
    run(agg, batch)
    first = agg._pages.get(PageMinuteKey("/", minute_key(START)))
    second = agg._pages.get(PageMinuteKey("/", minute_key(START + timedelta(minutes=1))))
    assert first is not None
    assert second is not None
    assert (first.views, first.clicks, first.sessions) == (2, 1, 2)
    assert (second.views, second.clicks, second.sessions) == (0, 1, 1)


def test_a_session_that_moved_shards_is_not_counted_again_for_a_page_minute() -> None:
    # GIVEN a session that touched "/" this minute on its parent shard (after a reshard)
    parent = ShardAggregator("parent")
    run(parent, positioned([event(1, "s1", "/", EventType.PAGE_VIEW, 1)]))
    moved = parent._sessions.get("s1")
    assert moved is not None
    # WHEN its next event of the same minute arrives on the child shard
    child = ShardAggregator("child")
    child.remember({"s1": moved}, {PageMinuteKey("/", minute_key(START)): None})
    child.apply(positioned([event(2, "s1", "/", EventType.CLICK, 2)]), Position(1))
    # THEN the child counts the click and the session event, not a second distinct session
    page = child._pages.get(PageMinuteKey("/", minute_key(START)))
    assert page is not None
    assert (page.clicks, page.sessions) == (1, 0)
    assert moved.events == 2


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.integers(1, 399), max_size=6),
    crash_after=st.integers(0, 6),
)
def test_any_batching_and_any_partial_replay_give_the_manifest(
    seed: int, cuts: list[int], crash_after: int
) -> None:
    """Flush boundaries anywhere; a crash replays one flush into a fresh cache: still exact."""
    records, anomalies = generate(seed, START, 400, TrafficProfile(bot_sessions=1))
    truth = build_manifest(records, anomalies, seed=seed, source="t")
    events = positioned([r for r in records if isinstance(r, ClickEvent)])
    bounds = [0, *sorted(set(cuts)), len(events)]
    flushes = [events[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    store: dict[object, Any] = {}  # what "DynamoDB" holds: key -> state copy

    def flush(agg: ShardAggregator, batch: list[PositionedEvent]) -> None:
        sessions, pages = agg.missing(batch)
        agg.remember(
            {s: _copy(store.get(("s", s))) for s in sessions},
            {p: _copy(store.get(("p", p))) for p in pages},
        )
        changes = agg.apply(batch, batch[-1].position)
        for session in changes.sessions:
            store[("s", session.session_id)] = _copy(session)
        for page in changes.pages:
            store[("p", page.key)] = _copy(page)

    agg = ShardAggregator("shard-1")
    for index, batch in enumerate(flushes):
        flush(agg, batch)
        if index == crash_after and index + 1 < len(flushes):
            # crash after this flush but before its checkpoint: a new processor replays it
            agg = ShardAggregator("shard-1")
            flush(agg, batch)

    for session_id, expected in truth.sessions.items():
        state = store[("s", session_id)]
        got = (state.events, state.page_views, state.clicks, state.pages.count())
        assert got == (
            expected.events,
            expected.page_views,
            expected.clicks,
            expected.distinct_pages,
        )
    for page, minutes in truth.pages.items():
        for minute, expected_counts in minutes.items():
            state = store[("p", PageMinuteKey(page, minute))]
            got_counts = (state.views, state.clicks, state.sessions)
            assert got_counts == (
                expected_counts.views,
                expected_counts.clicks,
                expected_counts.sessions,
            )


def _copy(state: T) -> T:
    return copy.deepcopy(state)


def test_apply_refuses_keys_that_were_not_read_first() -> None:
    agg = ShardAggregator("x")
    with pytest.raises(KeyError):
        agg.apply(positioned([event(1, "s1", "/", EventType.CLICK, 0)]), Position(1))


def test_lru_cache_forgets_the_least_recently_used_beyond_capacity() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.trim() == 1
    assert "b" not in cache
    assert "a" in cache
    assert "c" in cache


def test_positions_order_and_encode_as_their_integers_do() -> None:
    small, big = Position(9), Position(10**38, 3)
    assert small < big
    assert small.encode() < big.encode()
    assert Position(5, 1) > Position(5, 0)
    assert Position.decode(big.encode()) == big
    assert Position.of("42", None) == Position(42, 0)


@given(
    digits=st.text(alphabet="0123456789", min_size=1, max_size=70),
    sub_sequence=st.integers(min_value=0, max_value=2**40),
    shard=st.sampled_from(["shardId-000000000000", "shardId-000000000017", "local-3"]),
)
def test_the_place_hashed_from_the_sequence_text_is_where_hash_of_its_position(
    digits: str, sub_sequence: int, shard: str
) -> None:
    # GIVEN a sequence number as KCL hands it over (text), padded, long or short
    # WHEN the decoder hashes the record's place from that text
    place = place_hash(f"{shard}/", digits, sub_sequence)
    # THEN it is the fold's own hash of the position, or None where the text would not
    # print back as it is (zeros beyond the encoding's width), never another value
    expected = where_hash(shard, Position(int(digits), sub_sequence))
    if len(digits) > 40 and digits[0] == "0":
        assert place is None
    else:
        assert place == expected


def test_a_sequence_number_that_is_not_plain_digits_gets_no_place_from_its_text() -> None:
    for text in ("", "12a", "٣٤", "+12", " 12"):
        assert place_hash("shardId-000000000000/", text, 0) is None


GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def visit(n: int, session: str, page: str, second: float, **fields: Any) -> ClickEvent:
    return event(n, session, page, EventType.PAGE_VIEW, second).model_copy(update=fields)


def test_the_landing_decides_the_acquisition_whatever_order_and_referrers_come_in() -> None:
    # GIVEN a session whose second page (same-site referrer) arrives before its landing, a
    # newsletter link, which is retried; its country comes with the landing
    site = "https://shop.example.com"
    landing = visit(1, "s1", f"{site}/blog?utm_source=news&utm_medium=email", 0, country="FR")
    later = visit(2, "s1", f"{site}/docs", 60, referrer=f"{site}/blog")
    agg = ShardAggregator("shard-1")
    run(agg, positioned([later]))
    first_seen = agg.apply(positioned([later], first=1), Position(1)).sessions
    assert first_seen == []  # (already included: nothing changes)
    run(agg, positioned([landing], first=2))
    session = agg._sessions.get("s1")
    assert session is not None
    # THEN the acquisition is the landing's, the same-site referrer no new source
    assert session.acquisition is not None
    assert session.acquisition[:2] == ("news", "email")
    assert session.acquisition[-1] == "Email"
    assert (session.landing_event_id, session.country) == (landing.event_id, "FR")
    # AND a later page from another site's link within the visit keeps it too
    run(agg, positioned([visit(3, "s1", f"{site}/x", 90, referrer="https://t.co/")], first=3))
    assert session.acquisition[:2] == ("news", "email")


def test_a_bots_events_are_counted_apart_from_peoples_page_counters() -> None:
    # GIVEN a person and a crawler on the same page in the same minute
    agg = ShardAggregator("shard-1")
    batch = positioned(
        [
            visit(1, "person", "/", 0, user_agent=FIREFOX),
            event(2, "person", "/", EventType.CLICK, 2).model_copy(update={"user_agent": FIREFOX}),
            visit(3, "crawler", "/", 1, user_agent=GOOGLEBOT),
            event(4, "crawler", "/", EventType.CLICK, 3).model_copy(
                update={"user_agent": GOOGLEBOT}
            ),
        ]
    )
    sessions, pages = agg.missing(batch)
    agg.remember(dict.fromkeys(sessions), dict.fromkeys(pages))
    changes = agg.apply(batch, batch[-1].position)
    [page] = changes.pages
    # THEN the page counts the person, and the crawler's page view apart
    assert (page.views, page.clicks, page.sessions, page.bot_views) == (1, 1, 1, 1)
    # AND the crawler's session is still a session of its own, with every event
    crawler = next(s for s in changes.sessions if s.session_id == "crawler")
    assert (crawler.events, crawler.page_views, crawler.clicks) == (2, 1, 1)
