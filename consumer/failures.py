"""The record processor's failure policy: every failure is a deliberate exit.

amazon_kclpy reports a `process_records` that raised as done, which would let KCL move on
past records never written, so the processor turns any failure into an exit with a status
of its own (the daemon then restarts the shard from its last checkpoint), and reads KCL's
checkpoint errors by their code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import amazon_kclpy.kcl

from clickstream.kernel.retry import Backoff, GaveUp, call_with_retries
from clickstream.stores.positions import Position
from consumer.metrics import Metrics

EXIT_FLUSH_FAILED = 3
EXIT_UNEXPECTED = 4

RETRYABLE_CHECKPOINT_ERRORS = frozenset({"ThrottlingException"})
LEASE_GONE_CHECKPOINT_ERRORS = frozenset({"ShutdownException", "InvalidStateException"})


def _count_error(metrics: Metrics | None) -> None:
    if metrics is not None:
        with contextlib.suppress(Exception):  # the exit that follows matters more
            metrics.emit({"WorkerErrors": (1, "Count")})


@contextlib.contextmanager
def stop_on_failure(during: str, log: Any, metrics: Metrics | None) -> Iterator[None]:
    """Turn any failure into a deliberate exit, since amazon_kclpy would swallow it."""
    try:
        yield
    except GaveUp as error:
        _count_error(metrics)
        log.error(
            "flush failed: stopping so the shard restarts from its last checkpoint",
            during=during,
            what=error.what,
            attempts=error.attempts,
            error=str(error.error),
        )
        raise SystemExit(EXIT_FLUSH_FAILED) from error
    except Exception as error:
        _count_error(metrics)
        log.exception("unexpected failure: stopping", during=during)
        raise SystemExit(EXIT_UNEXPECTED) from error


def checkpoint_code(error: BaseException) -> str | None:
    if isinstance(error, amazon_kclpy.kcl.CheckpointError):
        return str(error.value)
    return None


def checkpoint_throttled(error: BaseException) -> bool:
    """KCL's checkpoint answers a throttled lease-table write with ThrottlingException."""
    return checkpoint_code(error) in RETRYABLE_CHECKPOINT_ERRORS


def checkpoint_at(
    checkpointer: Any,
    position: Position | None,
    *,
    backoff: Backoff,
    log: Any,
    sleep: Callable[[float], None],
) -> bool:
    """Checkpoint at `position` (None: SHARD_END), retrying KCL's throttles; False when KCL
    says the lease is gone (another worker holds it), any other refusal raised."""

    def checkpoint() -> None:
        if position is None:
            checkpointer.checkpoint()
        else:
            checkpointer.checkpoint(position.sequence_number, position.sub_sequence)

    try:
        call_with_retries(
            checkpoint,
            what="checkpoint",
            backoff=backoff,
            log=log,
            retryable=checkpoint_throttled,
            sleep=sleep,
        )
    except GaveUp as gave_up:
        if checkpoint_code(gave_up.error) not in LEASE_GONE_CHECKPOINT_ERRORS:
            raise
        log.warning("checkpoint refused: lease gone", error=checkpoint_code(gave_up.error))
        return False
    return True
