"""One retry policy for every call the project tries again, on tenacity.

A wait is drawn with full jitter below a capped exponential step (`Backoff.delay`: uniform in
[0, min(cap, base * 2**attempt)]), so many clients retrying at once spread out instead of
synchronising; a wait the other side asks for (an HTTP 503's `Retry-After`, carried by
`TryAgain.retry_after`) is taken instead, up to `Backoff.retry_after_cap_seconds`. Retries end
at `max_attempts` or before a wait would pass `deadline_seconds`, whichever comes first.

What is worth another try: throttles, 5xx and broken connections of the AWS SDK
(`is_transient`, the default) or what the caller says, and always `TryAgain`, which a call
raises when it made progress but has work left (a PutRecords' refused entries, a
BatchGetItem's unprocessed keys, a 503 with its `Retry-After`): the next attempt sends only
what is left. Anything else ends the retries at once.

`retrying` gives the loop (`for attempt in retrying(...): with attempt: ...`), `async_retrying`
its asyncio form, `call_with_retries` a call that raises `GaveUp` when retries end.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from clickstream.kernel.errors import ClickstreamError

T = TypeVar("T")

TRANSIENT_ERROR_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "TooManyRequestsException",
        "SlowDown",
        "InternalError",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionInProgressException",
        "KMSThrottlingException",
        "LimitExceededException",
    }
)


def error_code(error: BaseException) -> str:
    """An AWS error's code (`ThrottlingException`), else the exception's class name."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return type(error).__name__


def is_transient(error: BaseException) -> bool:
    """Throttles, 5xx and broken connections are worth another try; nothing else is."""
    if isinstance(
        error,
        EndpointConnectionError | ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError,
    ):
        return True
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return error_code(error) in TRANSIENT_ERROR_CODES or status >= 500
    return False


class TryAgain(Exception):
    """A call made what progress it could and has work left; `retry_after` (seconds) when
    the other side said how long to wait."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class GaveUp(ClickstreamError):
    """A call kept failing (or failed in a way retrying cannot fix)."""

    def __init__(self, what: str, attempts: int, error: BaseException) -> None:
        super().__init__(f"{what} failed after {attempts} attempt(s): {error}")
        self.what = what
        self.attempts = attempts
        self.error = error


@dataclass(frozen=True, slots=True)
class Backoff:
    base_seconds: float = 0.05
    cap_seconds: float = 5.0
    deadline_seconds: float | None = 300.0
    """No wait may end past this many seconds after the first attempt (None: no deadline)."""
    max_attempts: int | None = None
    """At most this many attempts, the first included (None: the deadline alone bounds)."""
    retry_after_cap_seconds: float = 30.0
    """A `Retry-After` longer than this is waited this long, then tried again."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)], `attempt` from 1."""
        return rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))


class _Wait(wait_base):
    def __init__(self, backoff: Backoff, rng: random.Random) -> None:
        self._backoff = backoff
        self._rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        asked = error.retry_after if isinstance(error, TryAgain) else None
        if asked is not None:
            return max(0.0, min(asked, self._backoff.retry_after_cap_seconds))
        return self._backoff.delay(retry_state.attempt_number, self._rng)


class _Stop(stop_base):
    """At the attempt bound, or when the coming wait would end past the deadline (measured
    on `clock`, so a test can run the deadline on a clock of its own)."""

    def __init__(self, backoff: Backoff, clock: Callable[[], float]) -> None:
        self._backoff = backoff
        self._clock = clock
        self._started = clock()

    def __call__(self, retry_state: RetryCallState) -> bool:
        bound, deadline = self._backoff.max_attempts, self._backoff.deadline_seconds
        if bound is not None and retry_state.attempt_number >= bound:
            return True
        elapsed = self._clock() - self._started + retry_state.upcoming_sleep
        return deadline is not None and elapsed > deadline


def _retry_if(retry_on: Callable[[BaseException], bool]) -> retry_if_exception:
    """`retry_on`'s errors, and `TryAgain` always: a call raises it only to be tried again."""
    return retry_if_exception(lambda error: isinstance(error, TryAgain) or retry_on(error))


OnRetry = Callable[[int, BaseException, float], None]
"""Told of each retry before its wait: the attempt that failed (from 1), its error, the wait."""


def _before_sleep(on_retry: OnRetry | None) -> Callable[[RetryCallState], None] | None:
    if on_retry is None:
        return None

    def tell(retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if error is not None:
            on_retry(retry_state.attempt_number, error, retry_state.upcoming_sleep)

    return tell


def _policy(
    backoff: Backoff,
    retry_on: Callable[[BaseException], bool],
    on_retry: OnRetry | None,
    clock: Callable[[], float],
    rng: random.Random | None,
) -> dict[str, Any]:
    """tenacity's arguments for the policy, whichever loop runs it."""
    return {
        "wait": _Wait(backoff, rng or random.Random()),
        "stop": _Stop(backoff, clock),
        "retry": _retry_if(retry_on),
        "before_sleep": _before_sleep(on_retry),
        "reraise": True,
    }


def retrying(
    backoff: Backoff,
    *,
    retry_on: Callable[[BaseException], bool] = is_transient,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Retrying:
    """The policy as a tenacity loop; made per call (its deadline starts now). When retries
    end, the last error is raised as it was."""
    return Retrying(sleep=sleep, **_policy(backoff, retry_on, on_retry, clock, rng))


def async_retrying(
    backoff: Backoff,
    *,
    retry_on: Callable[[BaseException], bool] = is_transient,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> AsyncRetrying:
    """`retrying` for coroutines: the waits are asyncio sleeps."""
    return AsyncRetrying(sleep=sleep, **_policy(backoff, retry_on, on_retry, clock, rng))


def logged_retry(log: Any, what: str) -> OnRetry:
    """Each retry as a `retrying` warning on `log` (so backoff is visible to an operator)."""

    def tell(attempt: int, error: BaseException, delay: float) -> None:
        log.warning(
            "retrying", what=what, attempt=attempt, error=error_code(error), delay_s=round(delay, 3)
        )

    return tell


def call_with_retries(
    operation: Callable[[], T],
    *,
    what: str,
    backoff: Backoff,
    log: Any,
    retryable: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """`operation()`'s result, tried again by the policy; `GaveUp` (naming `what` and the
    attempts) when an error is not worth another try or the retries end."""
    policy = retrying(
        backoff,
        retry_on=retryable,
        on_retry=logged_retry(log, what),
        sleep=sleep,
        clock=clock,
        rng=rng,
    )
    try:
        return policy(operation)
    except Exception as exc:
        raise GaveUp(what, int(policy.statistics.get("attempt_number", 1)), exc) from exc


def retry_after_seconds(header: str | None) -> float | None:
    """An HTTP `Retry-After` given in seconds, else None (an HTTP date is not taken: our
    collector sends seconds, and a wrong clock would make a date wait for nothing)."""
    text = (header or "").strip()
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
