"""The demo's traffic raises the page alerts it injects, whenever it runs: it starts on a
minute boundary, so its seeded minutes (and the page rule's verdicts) are the same on every
run. Started a few seconds into a minute, three runs in ten missed the /search drop."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from clickstream.cli.demo_run import demo_profile, demo_start
from clickstream.kernel.events import ClickEvent, EventType
from consumer.core.anomaly import PageRules, evaluate_minute
from producer.generator import generate


def page_alerts(start: datetime) -> set[tuple[str, str, int]]:
    """(rule, page, minute after the start's minute) of every page alert the demo's
    traffic raises, judged minute by minute as the page watch does."""
    records, _ = generate(42, start, 20_000, demo_profile(20_000))
    views: dict[str, Counter[str]] = {}
    for record in records:
        if isinstance(record, ClickEvent) and record.type is EventType.PAGE_VIEW:
            views.setdefault(record.timestamp.strftime("%H:%M"), Counter())[record.page] += 1
    first = start.replace(second=0)
    history: list[Counter[str]] = []
    found = set()
    for minute in sorted(views):
        for alert in evaluate_minute(minute, views[minute], history[-30:], PageRules()):
            at = datetime.strptime(minute, "%H:%M").replace(
                year=first.year, month=first.month, day=first.day, tzinfo=UTC
            )
            found.add((alert.rule.value, alert.subject, int((at - first).total_seconds() // 60)))
        history.append(views[minute])
    return found


@pytest.mark.parametrize("second", [0, 36, 54])
def test_the_demo_finds_its_spike_and_drop_whatever_the_second_it_starts(second: int) -> None:
    # GIVEN the demo started at any second of a minute
    now = datetime(2026, 12, 4, 17, 30, second, 417_000, tzinfo=UTC)
    start = demo_start(now)
    # THEN its traffic starts on the minute, half an hour back
    assert (start.second, start.microsecond) == (0, 0)
    assert start == datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    # AND the page rule raises the injected spike and drop in their minutes
    assert {("page_spike", "/pricing", 8), ("page_drop", "/search", 10)} <= page_alerts(start)
