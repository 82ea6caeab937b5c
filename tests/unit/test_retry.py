"""The one retry policy (`clickstream.kernel.retry`): waits, bounds, Retry-After, partial
progress, and its asyncio form. The AWS error classification is in test_consumer_pure."""

from __future__ import annotations

import asyncio
import random

import pytest

from clickstream.kernel.retry import (
    Backoff,
    GaveUp,
    TryAgain,
    async_retrying,
    call_with_retries,
    retry_after_seconds,
    retrying,
)


class _Log:
    def __init__(self) -> None:
        self.warnings: list[dict[str, object]] = []

    def warning(self, event: str, **values: object) -> None:
        self.warnings.append({"event": event, **values})


def test_waits_are_full_jitter_below_the_capped_doubling_step() -> None:
    # GIVEN a call that fails six times with work left
    left = [6]
    slept: list[float] = []

    def operation() -> str:
        if left[0]:
            left[0] -= 1
            raise TryAgain("not yet")
        return "done"

    backoff = Backoff(base_seconds=0.1, cap_seconds=1.0, deadline_seconds=None)
    # WHEN it is called by the policy
    result = call_with_retries(
        operation, what="op", backoff=backoff, log=_Log(), sleep=slept.append, rng=random.Random(3)
    )
    # THEN each wait lies in [0, min(cap, base * 2**attempt)]
    assert result == "done"
    assert len(slept) == 6
    assert all(0 <= wait <= min(1.0, 0.1 * 2 ** (n + 1)) for n, wait in enumerate(slept))


def test_a_retry_after_is_waited_as_asked_up_to_its_cap() -> None:
    asked = [TryAgain("busy", retry_after=2.5), TryAgain("busier", retry_after=600)]
    slept: list[float] = []

    def operation() -> None:
        if asked:
            raise asked.pop(0)

    backoff = Backoff(retry_after_cap_seconds=30, deadline_seconds=None)
    call_with_retries(operation, what="op", backoff=backoff, log=_Log(), sleep=slept.append)
    assert slept == [2.5, 30]


def test_the_attempt_bound_ends_the_retries_and_names_the_attempts() -> None:
    calls = [0]

    def operation() -> None:
        calls[0] += 1
        raise TryAgain("never")

    backoff = Backoff(deadline_seconds=None, max_attempts=4)
    with pytest.raises(GaveUp, match=r"^op failed after 4 attempt\(s\): never") as gave_up:
        call_with_retries(operation, what="op", backoff=backoff, log=_Log(), sleep=lambda _: None)
    assert calls[0] == 4
    assert gave_up.value.attempts == 4
    assert isinstance(gave_up.value.error, TryAgain)


def test_each_retry_is_logged_with_its_error_and_wait() -> None:
    log = _Log()
    failures = [TryAgain("a"), TryAgain("b")]

    def operation() -> None:
        if failures:
            raise failures.pop(0)

    call_with_retries(operation, what="op", backoff=Backoff(), log=log, sleep=lambda _: None)
    assert [(w["what"], w["attempt"], w["error"]) for w in log.warnings] == [
        ("op", 1, "TryAgain"),
        ("op", 2, "TryAgain"),
    ]


def test_the_loop_form_sends_only_what_is_left() -> None:
    # GIVEN a batch whose entries go through one a call
    pending = ["a", "b", "c"]
    sent: list[list[str]] = []
    # WHEN each attempt sends what is left and takes the first
    for attempt in retrying(Backoff(deadline_seconds=None), sleep=lambda _: None):
        with attempt:
            sent.append(list(pending))
            pending.pop(0)
            if pending:
                raise TryAgain(f"{len(pending)} left")
    # THEN every attempt carried only the entries not yet through
    assert sent == [["a", "b", "c"], ["b", "c"], ["c"]]


def test_an_error_not_worth_retrying_is_raised_at_once_by_the_loop() -> None:
    calls = [0]

    def loop() -> None:
        for attempt in retrying(Backoff(), sleep=lambda _: None):
            with attempt:
                calls[0] += 1
                raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        loop()
    assert calls[0] == 1


def test_the_asyncio_form_waits_with_its_own_sleep() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def run() -> int:
        tries = 0
        async for attempt in async_retrying(Backoff(deadline_seconds=None), sleep=sleep):
            with attempt:
                tries += 1
                if tries < 3:
                    raise TryAgain("503", retry_after=1.0)
        return tries

    assert asyncio.run(run()) == 3
    assert slept == [1.0, 1.0]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 0.5 ", 0.5),
        ("0", 0.0),
        ("", None),
        (None, None),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_retry_after_is_taken_in_seconds_only(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds
