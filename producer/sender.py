"""PutRecords with partial-failure handling: only failed entries are sent again.

A PutRecords call can succeed for some entries and fail others (throttling, internal
errors); the response lists an ErrorCode per failed entry. Re-sending the whole batch
would duplicate the successful ones, so only the failed entries are retried, with capped
exponential backoff and full jitter, up to `max_attempts`; past that a `DeliveryError`
names how many records were not sent. The client, sleep and randomness are injected.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from clickstream.kernel.errors import ProducerError
from clickstream.kernel.logging import get_logger
from producer.batching import OutgoingRecord

log = get_logger(component="producer")

_RETRYABLE_CALL_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "LimitExceededException",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottlingException",
    }
)


class DeliveryError(ProducerError):
    """Some records could not be delivered after every retry."""

    def __init__(self, unsent: int, total: int, attempts: int, last_error: str) -> None:
        self.unsent = unsent
        super().__init__(
            f"{unsent} of {total} records were not sent after {attempts} attempts "
            f"(last error: {last_error})"
        )


@dataclass
class SendStats:
    calls: int = 0
    sent: int = 0
    retried_entries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last_sequence: dict[str, int] = field(default_factory=dict)
    """Per shard, the highest sequence number written: a consumer is caught up there."""


class PutRecordsSender:
    def __init__(
        self,
        client: Any,
        stream_name: str,
        *,
        max_attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._stream_name = stream_name
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = SendStats()

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many producers instead of synchronising them.
        return self._rng.uniform(0, min(self._max_delay, self._base_delay * 2**attempt))

    def send(self, batch: Sequence[OutgoingRecord]) -> None:
        """Deliver every record of `batch` (at most one PutRecords' worth) or raise."""
        pending = list(batch)
        last_error = "none"
        for attempt in range(self._max_attempts):
            if attempt:
                delay = self._backoff(attempt)
                log.info(
                    "put_records_retry",
                    attempt=attempt,
                    entries=len(pending),
                    delay_seconds=round(delay, 3),
                    last_error=last_error,
                )
                self._sleep(delay)
            try:
                self.stats.calls += 1
                response = self._client.put_records(
                    StreamName=self._stream_name, Records=[r.as_entry() for r in pending]
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "ClientError")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code not in _RETRYABLE_CALL_ERRORS and status < 500:
                    raise ProducerError(f"PutRecords failed: {code}: {exc}") from None
                last_error = code
                self.stats.errors[code] += len(pending)
                continue
            except BotoCoreError as exc:  # connection reset, timeout: the call may be retried
                last_error = type(exc).__name__
                self.stats.errors[last_error] += len(pending)
                continue
            results = response["Records"]
            failed = [
                record
                for record, result in zip(pending, results, strict=True)
                if "ErrorCode" in result
            ]
            for result in results:
                if "ErrorCode" in result:
                    self.stats.errors[result["ErrorCode"]] += 1
                    last_error = result["ErrorCode"]
                else:
                    shard, sequence = result["ShardId"], int(result["SequenceNumber"])
                    if sequence > self.stats.last_sequence.get(shard, -1):
                        self.stats.last_sequence[shard] = sequence
            self.stats.sent += len(pending) - len(failed)
            if not failed:
                return
            self.stats.retried_entries += len(failed)
            pending = failed
        raise DeliveryError(len(pending), len(batch), self._max_attempts, last_error)
