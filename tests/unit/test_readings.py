"""The dashboard's readings for reports: one wide reading kept and answered from at once,
opened again in the background when due; ranges beyond it and the live view read their own;
a reading replaced is closed only after the report using it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from clickstream.kernel.errors import ClickstreamError
from insights.readings import Readings

NOW = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)
KEPT_START = datetime(2026, 10, 7, 12, tzinfo=UTC)
"""30 days and 30 before, from a day earlier, by the hour."""


class Connection:
    def __init__(self, since: datetime, number: int) -> None:
        self.since = since
        self.number = number
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Opener:
    """Opens numbered stand-in connections (or raises what the test gives), and holds the
    background work a reading starts until the test runs it."""

    def __init__(self) -> None:
        self.opened: list[Connection] = []
        self.failure: Exception | None = None
        self.started: list[Callable[[], None]] = []
        self.monotonic = 1000.0

    def open(self, since: datetime) -> Connection:
        if self.failure is not None:
            raise self.failure
        connection = Connection(since, len(self.opened) + 1)
        self.opened.append(connection)
        return connection

    def start(self, work: Callable[[], None]) -> None:
        self.started.append(work)

    def run_started(self) -> None:
        while self.started:
            self.started.pop(0)()


def readings(opener: Opener, kept_days: int = 30) -> Readings:
    return Readings(
        opener.open,
        lambda: NOW,
        kept_days=kept_days,
        fresh_seconds=30,
        refresh_seconds=120,
        monotonic=lambda: opener.monotonic,
        start=opener.start,
    )


def used(kept: Readings, since: datetime, *, live: bool = False) -> Connection:
    with kept.reading(since, live=live) as reading:
        connection: Connection = reading.connection
        assert not connection.closed
        return connection


def test_a_range_within_the_kept_reading_is_answered_from_it() -> None:
    # GIVEN the kept reading, opened (as the dashboard does when it starts)
    opener = Opener()
    kept = readings(opener)
    kept.open_kept()
    # WHEN a 30-day view compared and a 7-day one are reported
    thirty = used(kept, NOW - timedelta(days=61))
    seven = used(kept, NOW - timedelta(days=8))
    # THEN both read the kept reading, of the 61 days before now's hour, and nothing else
    assert thirty is seven is opener.opened[0]
    assert opener.opened[0].since == KEPT_START
    assert len(opener.opened) == 1
    assert not opener.started


def test_the_first_report_opens_the_kept_reading_when_none_is_yet() -> None:
    opener = Opener()
    kept = readings(opener)
    first = used(kept, NOW - timedelta(days=8))
    again = used(kept, NOW - timedelta(days=2))
    assert first is again
    assert first.since == KEPT_START
    assert len(opener.opened) == 1


def test_a_kept_reading_30_s_old_is_opened_again_in_the_background() -> None:
    # GIVEN the kept reading, 31 s old
    opener = Opener()
    kept = readings(opener)
    kept.open_kept()
    opener.monotonic += 31
    # WHEN a report uses it
    with kept.reading(NOW - timedelta(days=8), live=False) as reading:
        # THEN it answers from the old one, and a new opening is started, not awaited
        assert reading.connection is opener.opened[0]
        assert kept.renewing(reading)
        assert len(opener.started) == 1
        assert len(opener.opened) == 1
    # AND the next report after the opening reads the new one; the old one is closed
    opener.run_started()
    with kept.reading(NOW - timedelta(days=8), live=False) as reading:
        assert reading.connection is opener.opened[1]
        assert not kept.renewing(reading)
    assert opener.opened[0].closed
    assert not opener.opened[1].closed


def test_a_replaced_reading_is_closed_only_after_the_report_using_it() -> None:
    opener = Opener()
    kept = readings(opener)
    kept.open_kept()
    in_use = threading.Event()
    finish = threading.Event()
    seen: list[bool] = []

    def report() -> None:
        with kept.reading(NOW - timedelta(days=8), live=False) as reading:
            in_use.set()
            finish.wait(10)
            seen.append(reading.connection.closed)

    worker = threading.Thread(target=report)
    worker.start()
    assert in_use.wait(10)
    # WHEN the reading is replaced while the report runs (the close waits for it)
    replacing = threading.Thread(target=kept.open_kept)
    replacing.start()
    replacing.join(0.2)
    assert replacing.is_alive()
    assert not opener.opened[0].closed
    finish.set()
    worker.join(10)
    replacing.join(10)
    # THEN the report ran on an open connection, which was closed after it
    assert seen == [False]
    assert opener.opened[0].closed
    assert not opener.opened[1].closed


def test_a_range_beyond_the_kept_one_opens_its_own_kept_30_s() -> None:
    opener = Opener()
    kept = readings(opener)
    kept.open_kept()
    long_ago = NOW - timedelta(days=200)
    first = used(kept, long_ago)
    assert first.since == long_ago
    assert len(opener.opened) == 2
    assert used(kept, long_ago) is first  # the page's next request
    opener.monotonic += 30
    later = used(kept, long_ago)
    assert later is not first
    assert first.closed


def test_the_live_view_reads_its_own_each_time_and_closes_it() -> None:
    opener = Opener()
    kept = readings(opener)
    kept.open_kept()
    since = NOW - timedelta(days=1, minutes=30)
    first = used(kept, since, live=True)
    second = used(kept, since, live=True)
    assert first is not second
    assert first.closed
    assert second.closed
    assert first.since == since
    assert not opener.opened[0].closed


def test_no_kept_reading_when_none_is_asked_for() -> None:
    opener = Opener()
    kept = readings(opener, kept_days=0)
    kept.keep()
    since = NOW - timedelta(days=8)
    assert used(kept, since).since == since
    assert len(opener.opened) == 1


def test_a_failing_refresh_keeps_the_old_reading_until_two_refreshes_old() -> None:
    # GIVEN a kept reading, and S3 failing from now on
    opener = Opener()
    kept = readings(opener)
    kept.open_kept()
    opener.failure = ClickstreamError("S3 is down")
    # WHEN reports come 31 s and 239 s later: the background refresh fails
    opener.monotonic += 31
    assert used(kept, NOW - timedelta(days=8)) is opener.opened[0]
    opener.run_started()
    opener.monotonic += 208
    assert used(kept, NOW - timedelta(days=8)) is opener.opened[0]
    opener.run_started()
    # THEN at 240 s a report opens its own and says why it cannot
    opener.monotonic += 1
    with pytest.raises(ClickstreamError, match="S3 is down"):
        used(kept, NOW - timedelta(days=8))
    # AND once S3 answers, the next report reads a new reading
    opener.failure = None
    assert used(kept, NOW - timedelta(days=8)) is opener.opened[1]
