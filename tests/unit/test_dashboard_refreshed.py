"""The dashboard's kept readings: read once up front, then again in the background when due,
the last value answered at once meanwhile, a failed read's error given with the last value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clickstream.kernel.errors import ClickstreamError
from insights.dashboard import INTERNAL_ERROR, READ_FAILED, Refreshed


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """A reading whose answers the test gives in turn, and background starts it holds until
    the test runs them."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.started: list[Callable[[], None]] = []

    def read(self) -> dict[str, Any]:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def start(self, work: Callable[[], None]) -> None:
        self.started.append(work)

    def run_started(self) -> None:
        while self.started:
            self.started.pop(0)()


def kept(reads: Reads, clock: Clock, every: float = 15.0) -> Refreshed:
    return Refreshed("shards", reads.read, every, monotonic=clock, start=reads.start)


def test_the_first_get_reads_at_once_and_the_next_ones_reuse_it_until_due() -> None:
    # GIVEN a reading kept for 15 s
    reads, clock = Reads({"n": 1}), Clock()
    reading = kept(reads, clock)
    # WHEN it is asked for at once and again 14 s later
    first = reading.get()
    clock.now += 14
    second = reading.get()
    # THEN it was read once, synchronously, and nothing was started in the background
    assert first == second == ({"n": 1}, None)
    assert (reads.calls, reads.started) == (1, [])


def test_a_due_reading_answers_the_last_value_at_once_and_reads_again_in_the_background() -> None:
    # GIVEN a reading read once, then 15 s passing
    reads, clock = Reads({"n": 1}, {"n": 2}), Clock()
    reading = kept(reads, clock)
    reading.get()
    clock.now += 15
    # WHEN it is asked for twice while its new read has not run yet
    during = [reading.get(), reading.get()]
    # THEN both get the old value at once, and one read only was started
    assert during == [({"n": 1}, None)] * 2
    assert (reads.calls, len(reads.started)) == (1, 1)
    # AND once that read has run, the new value is given, kept for another 15 s
    reads.run_started()
    clock.now += 14
    assert reading.get() == ({"n": 2}, None)
    assert (reads.calls, reads.started) == (2, [])


def test_a_failed_background_read_keeps_the_last_value_with_its_error_until_one_succeeds() -> None:
    # GIVEN a reading whose second read fails and third succeeds
    failure = ClickstreamError("lease table not found\nmore detail")
    reads, clock = Reads({"n": 1}, failure, {"n": 3}), Clock()
    reading = kept(reads, clock)
    reading.get()
    clock.now += 15
    reading.get()
    # WHEN the failing read has run
    reads.run_started()
    # THEN the last value is given with the error in fixed words, and not read again until due
    assert reading.get() == ({"n": 1}, READ_FAILED)
    assert reads.started == []
    # AND an interval later it is read again, and the error goes once that read succeeds
    clock.now += 15
    assert reading.get() == ({"n": 1}, READ_FAILED)
    reads.run_started()
    assert reading.get() == ({"n": 3}, None)


def test_a_bug_in_a_background_read_is_shown_as_an_internal_error_not_lost() -> None:
    # GIVEN a reading whose second read has a bug
    reads, clock = Reads({"n": 1}, KeyError("owner")), Clock()
    reading = kept(reads, clock)
    reading.get()
    clock.now += 15
    reading.get()
    # WHEN that read has run
    reads.run_started()
    # THEN the last value is kept and the error named as internal
    assert reading.get() == ({"n": 1}, INTERNAL_ERROR)


def test_a_failed_first_read_raises_and_the_next_get_reads_again() -> None:
    # GIVEN a reading whose first read fails
    reads, clock = Reads(ClickstreamError("no stream"), {"n": 2}), Clock()
    reading = kept(reads, clock)
    # WHEN it is asked for twice
    with pytest.raises(ClickstreamError, match="no stream"):
        reading.get()
    # THEN the second asks again, at once, with nothing kept from the failure
    assert reading.get() == ({"n": 2}, None)
    assert (reads.calls, reads.started) == (2, [])
