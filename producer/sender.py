"""PutRecords with partial-failure handling: only failed entries are sent again.

A PutRecords call can succeed for some entries and fail others (throttling, internal
errors); the response lists an ErrorCode per failed entry. Re-sending the whole batch
would duplicate the successful ones, so only the failed entries are retried, by the
project's retry policy (`clickstream.kernel.retry`: capped exponential backoff with full
jitter), up to `max_attempts`; past that a `DeliveryError` names how many records were not
sent. The client, sleep and randomness are injected.
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
from clickstream.kernel.retry import Backoff, TryAgain, error_code, is_transient, retrying
from producer.batching import OutgoingRecord

log = get_logger(component="producer")


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
        self._backoff = Backoff(
            base_seconds=base_delay,
            cap_seconds=max_delay,
            deadline_seconds=None,
            max_attempts=max_attempts,
        )
        self._sleep = sleep
        self._pending = 0
        self._last_error = "none"
        self._rng = rng or random.Random()
        self.stats = SendStats()

    def _worth_retrying(self, error: BaseException) -> bool:
        # A connection reset or a timeout (any BotoCoreError): the call may be sent again.
        return isinstance(error, BotoCoreError) or is_transient(error)

    def _log_retry(self, attempt: int, error: BaseException, delay: float) -> None:
        log.info(
            "put_records_retry",
            attempt=attempt,
            entries=self._pending,
            delay_seconds=round(delay, 3),
            last_error=self._last_error,
        )

    def send(self, batch: Sequence[OutgoingRecord]) -> None:
        """Deliver every record of `batch` (at most one PutRecords' worth) or raise."""
        pending = list(batch)
        self._pending, self._last_error = len(pending), "none"
        policy = retrying(
            self._backoff,
            retry_on=self._worth_retrying,
            on_retry=self._log_retry,
            sleep=self._sleep,
            rng=self._rng,
        )
        try:
            for attempt in policy:
                with attempt:
                    self._put(pending)
        except ClientError as exc:
            if not is_transient(exc):
                raise ProducerError(f"PutRecords failed: {error_code(exc)}: {exc}") from None
            raise self._undelivered(pending, batch) from None
        except (TryAgain, BotoCoreError):
            raise self._undelivered(pending, batch) from None

    def _undelivered(
        self, pending: list[OutgoingRecord], batch: Sequence[OutgoingRecord]
    ) -> DeliveryError:
        attempts = self._backoff.max_attempts or 0
        return DeliveryError(len(pending), len(batch), attempts, self._last_error)

    def _put(self, pending: list[OutgoingRecord]) -> None:
        """One PutRecords of `pending`; the entries it refused are left in `pending` (the
        rest removed) and raise `TryAgain`, so the next attempt sends them alone."""
        self._pending = len(pending)
        try:
            self.stats.calls += 1
            response = self._client.put_records(
                StreamName=self._stream_name, Records=[r.as_entry() for r in pending]
            )
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and not is_transient(exc):
                raise
            self._last_error = error_code(exc) or "ClientError"
            self.stats.errors[self._last_error] += len(pending)
            raise
        results = response["Records"]
        failed = [
            record for record, result in zip(pending, results, strict=True) if "ErrorCode" in result
        ]
        for result in results:
            if "ErrorCode" in result:
                self.stats.errors[result["ErrorCode"]] += 1
                self._last_error = result["ErrorCode"]
            else:
                shard, sequence = result["ShardId"], int(result["SequenceNumber"])
                if sequence > self.stats.last_sequence.get(shard, -1):
                    self.stats.last_sequence[shard] = sequence
        self.stats.sent += len(pending) - len(failed)
        pending[:] = failed
        if failed:
            self.stats.retried_entries += len(failed)
            self._pending = len(failed)
            raise TryAgain(f"{len(failed)} entries refused")
