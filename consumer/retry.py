"""Retries with capped, fully jittered exponential backoff, bounded by a deadline.

The sinks wrap every AWS call in `call_with_retries`: a throttle or a 5xx waits and tries
again, logging each wait (so backoff is visible to an operator); an error that retrying
cannot fix, or a deadline passed, raises `GaveUp` and the processor stops on purpose rather
than checkpoint past records it could not write.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from clickstream.kernel.errors import ConsumerError

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
    }
)


class GaveUp(ConsumerError):
    """An AWS call kept failing (or failed in a way retrying cannot fix)."""

    def __init__(self, what: str, attempts: int, error: BaseException) -> None:
        super().__init__(f"{what} failed after {attempts} attempt(s): {error}")
        self.what = what
        self.attempts = attempts
        self.error = error


def error_code(error: BaseException) -> str:
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


@dataclass(frozen=True, slots=True)
class Backoff:
    base_seconds: float = 0.05
    cap_seconds: float = 5.0
    deadline_seconds: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))


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
    jitter = rng or random.Random()
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation()
        except Exception as exc:
            if not retryable(exc):
                raise GaveUp(what, attempt, exc) from exc
            delay = backoff.delay(attempt, jitter)
            if clock() - started + delay > backoff.deadline_seconds:
                raise GaveUp(what, attempt, exc) from exc
            log.warning(
                "retrying",
                what=what,
                attempt=attempt,
                error=error_code(exc),
                delay_s=round(delay, 3),
            )
            sleep(delay)
