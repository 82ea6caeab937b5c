"""The anomaly rules (pure): bot signals, the page baseline, spikes and drops, the watermark."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clickstream.kernel.events import ClickEvent, EventType, minute_key
from clickstream.stores.alerts import Alert, Rule, ShardProgress
from clickstream.stores.positions import Position
from clickstream.stores.sessions import SessionState, ShardPosition, session_from_item, session_item
from clickstream.stores.sketch import MAX_TRACKED_PAGE_MINUTES, hash64
from consumer.core.aggregate import apply_to_session
from consumer.core.anomaly import (
    BotRules,
    PageRules,
    PageTrafficDetector,
    assess_session,
    baseline,
    bot_alert,
    busiest_minute_pages,
    evaluate_minute,
    judge_complete_minutes,
    score_sessions,
    stream_watermark,
)
from consumer.core.pending import ProgressReports
from consumer.core.positioned import where_hash

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LATENESS = timedelta(seconds=60)


def session_of(steps: list[tuple[float, EventType, str]], session_id: str = "s-1") -> SessionState:
    state = SessionState(session_id)
    for number, (second, kind, page) in enumerate(steps, start=1):
        event = ClickEvent(
            event_id=f"e-{number:05d}",
            type=kind,
            session_id=session_id,
            page=page,
            timestamp=START + timedelta(seconds=second),
        )
        here = where_hash("shardId-0", Position(number))
        apply_to_session(state, event, page, hash64(page), here)
    return state


def script_session(events: int = 40, interval: float = 0.25) -> SessionState:
    """A scraper: clicks on a new page every `interval` seconds, never a page view."""
    return session_of([(i * interval, EventType.CLICK, f"/p/{i}") for i in range(events)], "bot-1")


def reader_session() -> SessionState:
    """A person: a page view, a few clicks while reading, irregular pauses, 12 pages."""
    steps: list[tuple[float, EventType, str]] = []
    at = 0.0
    pauses = [8, 21, 5, 14, 40, 9, 17, 6, 30, 11, 25, 7]
    for index, pause in enumerate(pauses):
        page = f"/p/{index % 5}"
        steps.append((at, EventType.PAGE_VIEW, page))
        steps.append((at + pause * 0.3, EventType.CLICK, page))
        steps.append((at + pause * 0.8, EventType.SCROLL, page))
        at += pause
    return session_of(steps)


# -- bot-like sessions ---------------------------------------------------------------------


def test_a_script_fires_every_bot_signal_and_raises_one_explained_alert() -> None:
    # GIVEN a session of 40 clicks a quarter second apart on 40 pages, no page view
    state = script_session()
    rules = BotRules()
    # WHEN it is assessed
    assessment = assess_session(state, rules)
    alert = bot_alert(state, assessment, rules)
    # THEN all four signals fire and the alert names them with observed values and thresholds
    assert assessment.score == 1.0
    assert assessment.fired == [
        "events_per_second",
        "gap_variation",
        "pages_per_minute",
        "clicks_without_views",
    ]
    assert alert is not None
    assert alert.rule is Rule.BOT_SESSION
    assert alert.subject == "bot-1"
    assert alert.window == minute_key(START)
    assert alert.details["events_per_second"] == pytest.approx(40 / 9.75, rel=1e-3)
    assert alert.details["gap_variation"] == pytest.approx(0.0, abs=1e-6)
    assert alert.details["pages_per_minute"] == 40
    assert alert.details["clicks_without_views_threshold"] == rules.clicks_without_views


def test_a_person_reading_pages_scores_zero() -> None:
    state = reader_session()
    assessment = assess_session(state, BotRules())
    assert assessment.score == 0.0
    assert bot_alert(state, assessment, BotRules()) is None


def test_a_short_session_is_not_judged_on_rate_or_regularity() -> None:
    # GIVEN five fast, regular clicks (a double-click happy visitor, not enough to judge)
    state = script_session(events=5)
    assessment = assess_session(state, BotRules())
    fired = set(assessment.fired)
    assert "events_per_second" not in fired
    assert "gap_variation" not in fired
    assert bot_alert(state, assessment, BotRules()) is None


def test_a_slow_but_regular_scraper_is_caught_by_the_other_signals() -> None:
    # GIVEN a script that waits 2 s between clicks: not fast, but a metronome over many pages
    state = script_session(events=60, interval=2.0)
    assessment = assess_session(state, BotRules())
    assert "events_per_second" not in assessment.fired
    assert set(assessment.fired) == {"gap_variation", "pages_per_minute", "clicks_without_views"}
    assert bot_alert(state, assessment, BotRules()) is not None


@given(st.lists(st.floats(min_value=0.001, max_value=600), min_size=3, max_size=60))
def test_the_running_gap_statistics_equal_the_textbook_ones(gaps: list[float]) -> None:
    moments = [0.0]
    for gap in gaps:
        moments.append(moments[-1] + gap)
    state = session_of([(m, EventType.CLICK, "/") for m in moments])
    # Timestamps are kept to the microsecond: compare with the gaps as stored.
    stored = [round((m2 - m1) * 1e6) / 1e6 for m1, m2 in itertools.pairwise(moments)]
    expected = statistics.stdev(stored) / statistics.mean(stored)
    assert state.gap_count == len(gaps)
    assert state.gap_variation == pytest.approx(expected, rel=1e-3, abs=1e-3)


def per_minute_recount(state: SessionState) -> dict[int, int]:
    return dict(Counter(minute for minute, _ in state.first_touches))


def test_the_busiest_minute_is_kept_exact_through_eviction_and_a_round_trip() -> None:
    # GIVEN a crawler on a new page every 0.1 s for 2,500 pages: more (minute, page) touches
    # than a session tracks, so the oldest minutes' touches are forgotten as it goes
    state = session_of([(i * 0.1, EventType.CLICK, f"/p/{i}") for i in range(2_500)], "crawl")
    assert len(state.first_touches) == MAX_TRACKED_PAGE_MINUTES
    # THEN the per-minute counts the rule reads equal a recount of the touches kept
    assert state.touches_per_minute == per_minute_recount(state)
    assert busiest_minute_pages(state) == 600
    # AND a state read back from its item (where the counts are not stored) has them too
    state.written_by = ShardPosition("shardId-0", Position(2_500))
    again = session_from_item(session_item(state, expires_at=0))
    assert again.touches_per_minute == per_minute_recount(state)


@given(st.lists(st.tuples(st.integers(0, 600), st.integers(0, 6)), min_size=1, max_size=80))
def test_the_per_minute_touch_counts_follow_any_order_of_events(
    steps: list[tuple[int, int]],
) -> None:
    state = session_of([(s, EventType.PAGE_VIEW, f"/p/{page}") for s, page in steps])
    assert state.touches_per_minute == per_minute_recount(state)


def test_scoring_a_delivery_gives_each_session_its_assessed_score_and_alerts_once() -> None:
    # GIVEN a scraper and a reader changed by one delivery, then by another
    bot, person = script_session(), reader_session()
    rules = BotRules()
    first = score_sessions([bot, person], rules)
    again = score_sessions([bot, person], rules)
    # THEN each keeps the score its full assessment gives; the scraper alerts once
    assert bot.bot_score == assess_session(bot, rules).score == 1.0
    assert person.bot_score == assess_session(person, rules).score == 0.0
    assert [alert.subject for alert in first] == ["bot-1"]
    assert again == []


# -- the page baseline, spikes and drops -------------------------------------------------------


def test_the_baseline_weights_recent_minutes_more() -> None:
    flat = baseline([100] * 10, alpha=0.3)
    assert flat.mean == pytest.approx(100)
    assert flat.variance == pytest.approx(0)
    rising = baseline([100] * 9 + [200], alpha=0.3)
    assert rising.mean == pytest.approx(130)
    assert rising.variance > 0
    # Never a spread below Poisson noise: a flat history does not make one view a spike.
    assert flat.deviation == pytest.approx(10)


def steady(page: str, views: int, minutes: int = 10) -> list[dict[str, int]]:
    return [{page: views, "/other": 100} for _ in range(minutes)]


def test_a_spike_past_the_threshold_alerts_with_observed_baseline_and_threshold() -> None:
    rules = PageRules()
    alerts = evaluate_minute(
        "2026-11-23T09:10", {"/pricing": 300, "/other": 100}, steady("/pricing", 50), rules
    )
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.rule, alert.subject, alert.window) == (
        Rule.PAGE_SPIKE,
        "/pricing",
        "2026-11-23T09:10",
    )
    assert alert.observed == 300
    assert alert.baseline == pytest.approx(50)
    assert alert.threshold == rules.z_threshold
    assert alert.details["z"] == pytest.approx((300 - 50) / math.sqrt(50), abs=0.01)


def test_a_page_going_from_2_to_6_views_pages_nobody() -> None:
    # Three times its usual traffic and far past the z threshold, but below the volume floor.
    history = [{"/quiet": 2} for _ in range(10)]
    assert evaluate_minute("2026-11-23T09:10", {"/quiet": 6}, history, PageRules()) == []
    # The same ratio with enough volume does alert.
    loud = [{"/loud": 20} for _ in range(10)]
    assert [
        a.rule for a in evaluate_minute("2026-11-23T09:10", {"/loud": 60}, loud, PageRules())
    ] == [Rule.PAGE_SPIKE]


def test_a_busy_page_without_views_is_a_drop_and_a_quiet_one_is_not() -> None:
    history = steady("/", 300)
    for minute in history:
        minute["/rare"] = 3
    alerts = evaluate_minute("2026-11-23T09:10", {"/other": 100}, history, PageRules())
    assert [(a.rule, a.subject, a.observed) for a in alerts] == [(Rule.PAGE_DROP, "/", 0)]


def test_nothing_alerts_before_the_warm_up() -> None:
    rules = PageRules(warmup_minutes=5)
    history = steady("/pricing", 50, minutes=4)
    assert evaluate_minute("2026-11-23T09:04", {"/pricing": 500}, history, rules) == []


def test_ordinary_noise_raises_nothing() -> None:
    # Poisson-like wobble around 100 views: within a few standard deviations.
    history = [{"/": views} for views in (96, 104, 91, 110, 99, 102, 88, 107, 95, 101)]
    assert evaluate_minute("2026-11-23T09:10", {"/": 118}, history, PageRules()) == []


# -- the stream watermark --------------------------------------------------------------------


def progress(
    shard: str, second: float | None, caught_up: bool, ended: bool = False
) -> ShardProgress:
    mark = None if second is None else START + timedelta(seconds=second)
    return ShardProgress(shard, mark, caught_up, ended)


def test_the_slowest_working_shard_holds_the_watermark() -> None:
    reports = [progress("a", 600, False), progress("b", 300, False), progress("c", 900, True)]
    assert stream_watermark(reports, ["a", "b", "c"], LATENESS) == START + timedelta(seconds=240)


def test_when_every_shard_is_caught_up_the_newest_event_counts() -> None:
    reports = [progress("a", 600, True), progress("b", 300, True), progress("c", None, True)]
    assert stream_watermark(reports, ["a", "b", "c"], LATENESS) == START + timedelta(seconds=540)


def test_a_shard_caught_up_only_just_holds_the_watermark_at_its_own_newest_event() -> None:
    # GIVEN every shard caught up, one of them only 10 s ago: a producer running late (a
    # pause between its batches) may still send it events of its newest minute
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    settle = timedelta(seconds=30)
    reports = [
        replace(progress("a", 600, True), caught_up_since=now - timedelta(minutes=5)),
        replace(progress("b", 300, True), caught_up_since=now - timedelta(seconds=10)),
    ]
    # THEN it holds the watermark at its own newest event, not the stream's
    held = stream_watermark(reports, ["a", "b"], LATENESS, now=now, settle=settle)
    assert held == START + timedelta(seconds=240)
    # AND once it has been caught up for `settle`, the newest event anywhere counts again
    later = now + timedelta(seconds=25)
    assert stream_watermark(
        reports, ["a", "b"], LATENESS, now=later, settle=settle
    ) == START + timedelta(seconds=540)


def test_a_shard_a_slow_producer_keeps_sending_to_never_settles() -> None:
    """Before: a shard that stayed caught up between a slow producer's records kept the
    moment it first became caught up, so after 30 s it no longer held the watermark, and a
    minute was judged while its events were still coming (the demo's false drop on / and
    its missed spike, with the emulator slowed by other tests beside it)."""
    reports = ProgressReports(interval_seconds=5)
    first = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    reports.observe(True, first)
    # WHEN records keep arriving, each delivery leaving the shard caught up again
    for second in (20, 40, 60):
        reports.observe(True, first + timedelta(seconds=second), received=True)
    # THEN it has been quiet only since its last records, and says so in its next report
    assert reports.caught_up_since == first + timedelta(seconds=60)
    report = reports.due("shardId-1", START, now=100.0)
    assert report is not None
    assert report.caught_up_since == first + timedelta(seconds=60)
    # AND a delivery without records (nothing new) keeps that moment
    reports.observe(True, first + timedelta(seconds=80))
    assert reports.caught_up_since == first + timedelta(seconds=60)
    # AND a new moment is reported even when the watermark did not move, past the interval
    reports.observe(True, first + timedelta(seconds=90), received=True)
    assert reports.due("shardId-1", START, now=101.0) is None  # within the interval
    again = reports.due("shardId-1", START, now=106.0)
    assert again is not None
    assert again.caught_up_since == first + timedelta(seconds=90)


def test_an_open_shard_that_has_not_reported_holds_everything_back() -> None:
    reports = [progress("a", 600, True)]
    assert stream_watermark(reports, ["a", "b"], LATENESS) is None


def test_ended_parents_do_not_hold_back_their_children() -> None:
    reports = [
        progress("parent", 100, False, ended=True),
        progress("child-1", 600, False),
        progress("child-2", 700, True),
    ]
    assert stream_watermark(reports, ["child-1", "child-2"], LATENESS) == START + timedelta(
        seconds=540
    )


# -- the detector over a run of minutes -----------------------------------------------------


def minute(index: int) -> str:
    return minute_key(START + timedelta(minutes=index))


def test_the_detector_judges_each_complete_minute_once_in_order() -> None:
    # GIVEN 20 minutes of steady traffic with a spike in minute 12 and a drop in minute 16
    totals = {minute(i): {"/": 200, "/pricing": 50} for i in range(20)}
    totals[minute(12)]["/pricing"] = 400
    totals[minute(16)] = {"/pricing": 50}
    detector = PageTrafficDetector(PageRules(), next_minute=minute(0))
    raised: list[Alert] = []
    reads: list[str] = []

    def views_of(m: str) -> dict[str, int]:
        reads.append(m)
        return totals.get(m, {})

    # WHEN the watermark reaches minute 10, then the end
    def collect(_minute: str, alerts: list[Alert]) -> None:
        raised.extend(alerts)

    judge_complete_minutes(detector, START + timedelta(minutes=10), views_of, collect)
    judged_early = list(raised)
    judge_complete_minutes(detector, START + timedelta(minutes=20), views_of, collect)
    # THEN nothing alerts during the first ten, and the spike and the drop alert once each
    assert judged_early == []
    assert [(a.rule, a.window, a.subject) for a in raised] == [
        (Rule.PAGE_SPIKE, minute(12), "/pricing"),
        (Rule.PAGE_DROP, minute(16), "/"),
    ]
    assert detector.next_minute == minute(20)
    assert sorted(set(m for m in reads if m >= minute(0))) == [minute(i) for i in range(20)]


def test_a_minute_whose_alerts_could_not_be_raised_is_judged_again() -> None:
    totals = {minute(i): {"/": 200} for i in range(12)}
    totals[minute(10)] = {"/": 2000}
    detector = PageTrafficDetector(PageRules(), next_minute=minute(0))
    failures = [RuntimeError("throttled")]
    raised: list[Alert] = []

    def raise_alerts(_minute: str, alerts: list[Alert]) -> None:
        if alerts and failures:
            raise failures.pop()
        raised.extend(alerts)

    with pytest.raises(RuntimeError):
        judge_complete_minutes(
            detector, START + timedelta(minutes=12), lambda m: totals.get(m, {}), raise_alerts
        )
    assert detector.next_minute == minute(10)
    judge_complete_minutes(
        detector, START + timedelta(minutes=12), lambda m: totals.get(m, {}), raise_alerts
    )
    assert [(a.rule, a.window) for a in raised] == [(Rule.PAGE_SPIKE, minute(10))]


def test_a_fresh_detector_looks_back_only_its_history() -> None:
    detector = PageTrafficDetector(PageRules(history_minutes=30))
    due = detector.due(START + timedelta(hours=5), first_minute=minute(270))
    assert due[0] == minute(270)
    assert due[-1] == minute(299)


def test_the_streams_partial_first_minute_is_left_out_of_the_baseline() -> None:
    # GIVEN a page's views from the stream's start (which fell late in its first minute),
    # then a minute without any: the demo's /search drop
    series = [6, 47, 75, 89, 81, 94, 70, 70, 77, 109, 0]
    detector = PageTrafficDetector(PageRules(), next_minute=minute(0))
    raised: list[Alert] = []

    def collect(_minute: str, alerts: list[Alert]) -> None:
        raised.extend(alerts)

    judge_complete_minutes(
        detector,
        START + timedelta(minutes=len(series)),
        lambda m: {"/search": series[int(m[-2:])]} if int(m[-2:]) < len(series) else {},
        collect,
    )
    # THEN the drop alerts: with the 6 views of the partial minute in the baseline its
    # spread would be 23 views and z only -3.6
    assert [(a.rule, a.window, a.observed) for a in raised] == [(Rule.PAGE_DROP, minute(10), 0)]
    assert float(raised[0].details["z"]) < -4
