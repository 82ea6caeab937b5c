"""The traffic generator: seeded, realistic, with labelled anomalies and malformed records."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from statistics import pstdev

import pytest

from clickstream.kernel.events import (
    ClickEvent,
    EventType,
    InvalidEvent,
    TimestampPolicy,
    decode_event,
    minute_key,
)
from producer.generator import (
    DropSpec,
    SpikeSpec,
    TrafficProfile,
    generate,
    page_catalog,
)
from producer.malformed import MalformedRecord

START = datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC)


def events_only(records: list[ClickEvent | MalformedRecord]) -> list[ClickEvent]:
    return [r for r in records if isinstance(r, ClickEvent)]


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    first, _ = generate(5, START, 2000)
    again, _ = generate(5, START, 2000)
    other, _ = generate(6, START, 2000)
    assert first == again
    assert first != other


def test_exact_count_in_time_order_with_unique_ids() -> None:
    records, _ = generate(1, START, 5000)
    events = events_only(records)
    assert len(events) == len(records) == 5000
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    assert len({e.event_id for e in events}) == 5000


def test_traffic_looks_like_people_browsing() -> None:
    events = events_only(generate(2, START, 20_000)[0])
    kinds = Counter(e.type for e in events)
    assert kinds[EventType.PAGE_VIEW] > 0.25 * len(events)
    assert kinds[EventType.CLICK] > kinds[EventType.PAGE_VIEW]
    assert kinds[EventType.SCROLL] > 0
    # Zipf: the most popular page gets far more views than the median page.
    views = Counter(e.page for e in events if e.type is EventType.PAGE_VIEW)
    ranked = [count for _, count in views.most_common()]
    assert ranked[0] > 5 * ranked[len(ranked) // 2]
    # Clicks land inside the viewport; every session's events come from one device.
    for event in events:
        if event.type is EventType.CLICK:
            assert event.x is not None
            assert event.viewport_width is not None
            assert 0 <= event.x < event.viewport_width
            assert event.y is not None
            assert event.viewport_height is not None
            assert 0 <= event.y < event.viewport_height
    sessions = Counter(e.session_id for e in events)
    assert len(sessions) > 500
    assert max(sessions.values()) < 400


def test_every_generated_event_meets_the_contract() -> None:
    events = events_only(generate(3, START, 3000)[0])
    policy = TimestampPolicy(now=START + timedelta(minutes=5))
    for event in events:
        assert decode_event(event.to_record(), policy) == event


def test_bot_sessions_click_fast_and_regularly_and_are_labelled() -> None:
    records, anomalies = generate(4, START, 10_000, TrafficProfile(bot_sessions=2))
    bots = [a for a in anomalies if a.kind == "bot_session"]
    assert len(bots) == 2
    for bot in bots:
        mine = [e for e in events_only(records) if e.session_id == bot.subject]
        gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in itertools.pairwise(mine)]
        assert len(mine) == 120
        assert all(e.type is EventType.CLICK for e in mine)
        assert pstdev(gaps) < 0.01
        assert bot.window_start <= mine[0].timestamp
        assert mine[-1].timestamp <= bot.window_end + timedelta(milliseconds=5)


def test_rage_sessions_make_the_bursts_they_are_labelled_with_and_no_one_else_does() -> None:
    from insights.heatmap import Click, rage_clicks

    def bursts(records: list[ClickEvent | MalformedRecord]) -> set[tuple[str, str]]:
        clicks = [
            Click(e.session_id, e.timestamp, e.x, e.y, e.viewport_width, e.page)
            for e in events_only(records)
            if e.type is EventType.CLICK and e.x is not None and e.y is not None
        ]
        return {(rage.session_id, rage.page) for rage in rage_clicks(clicks)}

    # GIVEN two rage sessions in 6,000 events of ordinary traffic
    records, anomalies = generate(
        42, START, 6000, TrafficProfile(rage_sessions=2, sessions_per_minute=100)
    )
    labelled = {
        (str(a.detail["session_id"]), a.subject) for a in anomalies if a.kind == "rage_clicks"
    }
    # THEN the rage-click rule finds exactly the labelled bursts, of four clicks each
    assert len(labelled) == 2
    assert bursts(records) == labelled
    # AND the same traffic without them has none (people do not click like that by chance)
    ordinary, _ = generate(42, START, 6000, TrafficProfile(sessions_per_minute=100))
    assert bursts(ordinary) == set()


def test_spike_multiplies_the_page_views_in_its_minute() -> None:
    page = page_catalog(120)[10]
    baseline = events_only(generate(9, START, 30_000)[0])
    spiked_records, anomalies = generate(
        9, START, 30_000, TrafficProfile(spikes=(SpikeSpec(page, 2, factor=8),))
    )
    spike = next(a for a in anomalies if a.kind == "traffic_spike")
    minute = minute_key(spike.window_start)

    def views(events: list[ClickEvent]) -> int:
        return sum(
            1
            for e in events
            if e.page == page
            and e.type is EventType.PAGE_VIEW
            and minute_key(e.timestamp) == minute
        )

    assert spike.subject == page
    assert views(events_only(spiked_records)) >= 4 * max(1, views(baseline))


def test_drop_leaves_the_page_without_views_in_its_minute() -> None:
    page = page_catalog(120)[0]
    records, anomalies = generate(9, START, 30_000, TrafficProfile(drops=(DropSpec(page, 2),)))
    drop = next(a for a in anomalies if a.kind == "traffic_drop")
    in_window = [
        e
        for e in events_only(records)
        if e.page == page
        and drop.window_start <= e.timestamp < drop.window_end
        and e.type is EventType.PAGE_VIEW
    ]
    before = [
        e
        for e in events_only(records)
        if e.page == page and e.timestamp < drop.window_start and e.type is EventType.PAGE_VIEW
    ]
    assert in_window == []
    assert len(before) > 50


def test_malformed_records_fail_decoding_with_their_expected_reason() -> None:
    records, _ = generate(1, START, 1000, TrafficProfile(malformed=70))
    bad = [r for r in records if isinstance(r, MalformedRecord)]
    assert len(bad) == 70
    assert len({r.expected_reason for r in bad}) == 7
    policy = TimestampPolicy(now=START)
    for record in bad:
        with pytest.raises(InvalidEvent) as caught:
            decode_event(record.data, policy)
        assert caught.value.reason is record.expected_reason


def test_anomaly_on_an_unknown_page_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of the site's pages"):
        generate(1, START, 10, TrafficProfile(spikes=(SpikeSpec("/nope", 1),)))
