"""Every item the consumer writes is within DynamoDB's limits, whatever valid events it gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream.kernel.events import ClickEvent, EventType
from clickstream.stores import alerts as alerts_store
from clickstream.stores.alerts import ALERTS_KEYS, Alert, Rule
from clickstream.stores.limits import MAX_ITEM_BYTES, ItemLimits, KeySchema, item_size, violation
from clickstream.stores.page_stats import PAGE_STATS_KEYS, page_item
from clickstream.stores.positions import Position
from clickstream.stores.sessions import SESSIONS_KEYS, session_item
from consumer.core.aggregate import ShardAggregator
from consumer.core.anomaly import BotRules, assess_session, bot_alert
from consumer.core.limits import surely_fits
from consumer.core.positioned import PositionedEvent

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SHARD = "shardId-000000000042"
TEXT = st.characters(blacklist_categories=("Cc", "Cs"))
WIDE = "\U0001f600"  # four bytes of UTF-8: the worst case for byte limits


def items_of(events: list[ClickEvent]) -> list[tuple[dict[str, Any], KeySchema]]:
    """Every item (with its key schema) a processor writes for these events in one flush."""
    aggregator = ShardAggregator(SHARD)
    positioned = [PositionedEvent(Position(n), e) for n, e in enumerate(events, start=1)]
    sessions, pages = aggregator.missing(positioned)
    aggregator.remember(dict.fromkeys(sessions), dict.fromkeys(pages))
    changes = aggregator.apply(positioned, Position(len(events)))
    written: list[tuple[dict[str, Any], KeySchema]] = []
    for session in changes.sessions:
        written.append((session_item(session, 2_000_000_000), SESSIONS_KEYS))
        assessment = assess_session(session, BotRules(min_events=1))
        alert = bot_alert(session, assessment, BotRules(min_events=1, alert_score=0.01))
        if alert is not None:
            written.append((alert_item(alert), ALERTS_KEYS))
    for page in changes.pages:
        written.append((page_item(page, 2_000_000_000, START), PAGE_STATS_KEYS))
        spike = Alert(Rule.PAGE_SPIKE, page.page, page.minute, 1e9, 1.0, 4.0, {"z": 1e9})
        written.append((alert_item(spike), ALERTS_KEYS))
    return written


def alert_item(alert: Alert) -> dict[str, object]:
    return alerts_store.alert_item(
        alert, raised_by="w" * 128, raised_at=START, expires_at=2_000_000_000
    )


def event_strategy(sessions: list[str]) -> st.SearchStrategy[ClickEvent]:
    path = st.text(TEXT, max_size=2047).map(lambda rest: "/" + rest)
    url = st.builds(
        lambda host, rest: f"https://{host}/{rest}"[:2048],
        st.from_regex(r"[A-Za-z0-9.-]{1,60}", fullmatch=True),
        st.text(TEXT, max_size=1900),
    )
    return st.builds(
        lambda event_id, session, kind, page, seconds, agent: ClickEvent(
            event_id=event_id,
            type=kind,
            session_id=session,
            page=page,
            timestamp=START + timedelta(seconds=seconds),
            user_agent=agent,
        ),
        st.text(TEXT, min_size=1, max_size=128),
        st.sampled_from(sessions),
        st.sampled_from(list(EventType)),
        st.one_of(path, url, st.sampled_from(["/", "/a", "/b"])),
        st.floats(0, 3 * 86_400),
        st.one_of(st.none(), st.text(TEXT, max_size=1024)),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.data(),
    sessions=st.lists(st.text(TEXT, min_size=1, max_size=128), min_size=1, max_size=3),
)
def test_any_valid_events_give_items_within_dynamodb_limits(
    data: st.DataObject, sessions: list[str]
) -> None:
    events = data.draw(st.lists(event_strategy(sessions), min_size=1, max_size=400))
    for item, keys in items_of(events):
        assert violation(item, keys) is None


def test_the_worst_session_a_valid_stream_can_build_fits_with_room_to_spare() -> None:
    # GIVEN one session of 5,000 events, every one on a distinct 2,048-character page of
    # four-byte characters, in distinct minutes, with the longest ids and user agent
    events = [
        ClickEvent(
            event_id=f"{n:08d}" + WIDE * 120,
            type=EventType.PAGE_VIEW,
            session_id=WIDE * 128,
            page=f"/{n:08d}" + WIDE * 2039,
            timestamp=START + timedelta(minutes=n),
            user_agent=WIDE * 1024,
        )
        for n in range(5_000)
    ]
    # WHEN every item of the flush is rendered
    written = items_of(events)
    sizes = [item_size(item) for item, _ in written]
    # THEN each is within the limits, the session item far inside the 400 KB
    assert all(violation(item, keys) is None for item, keys in written)
    assert max(sizes) < MAX_ITEM_BYTES / 3


def test_the_check_names_the_limit_an_item_breaks() -> None:
    page = {"page": "/" + "a" * 1100, "bucket_shard": "m#s", "window_shard": "m#s"}
    assert violation(page, PAGE_STATS_KEYS) == "sort key page is 1101 bytes, over 1024"
    assert violation({"session_id": "x" * 3000}, SESSIONS_KEYS) == (
        "key session_id is 3000 bytes, over 2048"
    )
    big = {"session_id": "s", "blob": b"\0" * (MAX_ITEM_BYTES + 1)}
    assert violation(big, SESSIONS_KEYS) == f"item is {MAX_ITEM_BYTES + 16} bytes, over 409600"
    assert violation({"session_id": "s"}, SESSIONS_KEYS, ItemLimits(item_bytes=5)) is not None


def test_the_quick_size_judgement_never_passes_a_session_the_full_check_refuses() -> None:
    # GIVEN sessions of growing size (more events, pages and a long user agent)
    aggregator = ShardAggregator("shardId-1")
    at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    aggregator.remember({"s": None}, {})
    for n in range(300):
        event = ClickEvent(
            event_id=f"e-{n}",
            type=EventType.PAGE_VIEW,
            session_id="s",
            page=f"/p/{n}",
            timestamp=at + timedelta(seconds=n),
            user_agent="A" * 1024,
        )
        item = PositionedEvent(Position(n + 1), event)
        aggregator.remember({}, dict.fromkeys(aggregator.missing([item])[1]))
        changes = aggregator.apply([item], Position(n + 1))
        (session,) = changes.sessions
        size = item_size(session_item(session, 0))
        # THEN whenever the quick judgement says it fits, it does, with room to spare
        for limit in (2_000, 5_000, 10_000):
            if surely_fits(session, ItemLimits(item_bytes=limit)):
                assert size <= limit
        assert surely_fits(session, ItemLimits())
