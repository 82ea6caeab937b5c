"""The record processor: amazon_kclpy's v3 interface, a thin adapter around the shard
pipeline (`consumer.pipeline`), like the KCL samples' record processor: it hands each call to
the pipeline, and holds the two policies that are KCL's business.

- **Failures**: amazon_kclpy reports a call that raised as done, which would let KCL move on
  past records never flushed, so any failure ends the process on purpose
  (`consumer.failures.stop_on_failure`) and the daemon restarts the shard from its last
  checkpoint.
- **Checkpoints**: KCL's throttles retried, its "lease gone" answers told to the pipeline
  as such (`KclCheckpointer`).

One instance per shard, in a process of its own started by the MultiLangDaemon; stdout is
the protocol channel, so this module never prints (logs go to stderr through structlog).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from amazon_kclpy.messages import (
    InitializeInput,
    LeaseLostInput,
    ProcessRecordsInput,
    ShardEndedInput,
    ShutdownRequestedInput,
)
from amazon_kclpy.v3.processor import RecordProcessorBase

from clickstream.kernel.retry import Backoff
from clickstream.stores.positions import Position
from consumer.failures import checkpoint_at, stop_on_failure
from consumer.metrics import Metrics
from consumer.pipeline import ShardPipeline


class KclCheckpointer:
    """KCL's checkpointer as the pipeline's `Checkpointer`: throttles retried with the
    pipeline's backoff; False when KCL says the lease is gone."""

    def __init__(
        self, checkpointer: Any, backoff: Backoff, log: Any, sleep: Callable[[float], None]
    ) -> None:
        self._checkpointer = checkpointer
        self._backoff = backoff
        self._log = log
        self._sleep = sleep

    def checkpoint(self, position: Position | None) -> bool:
        return checkpoint_at(
            self._checkpointer, position, backoff=self._backoff, log=self._log, sleep=self._sleep
        )


class ClickstreamProcessor(RecordProcessorBase):  # type: ignore[misc]
    """One shard's record processor; its arguments are the pipeline's (`ShardPipeline`)."""

    version = 3

    def __init__(
        self,
        *args: Any,
        checkpoint_backoff: Backoff,
        metrics: Metrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        self.pipeline = ShardPipeline(
            *args, checkpoint_backoff=checkpoint_backoff, metrics=metrics, sleep=sleep, **kwargs
        )
        self._backoff = checkpoint_backoff
        self._metrics = metrics
        self._sleep = sleep

    @property
    def totals(self) -> dict[str, int]:
        return self.pipeline.totals

    @property
    def cached(self) -> tuple[int, int]:
        """(sessions, page-minutes) in the pipeline's cache."""
        return self.pipeline.cached

    @property
    def pending_records(self) -> int:
        return self.pipeline.pending_records

    def _checkpointer(self, checkpointer: Any) -> KclCheckpointer:
        return KclCheckpointer(checkpointer, self._backoff, self.pipeline.log, self._sleep)

    def initialize(self, initialize_input: InitializeInput) -> None:
        self.pipeline.start(
            initialize_input.shard_id,
            str(initialize_input.sequence_number),
            initialize_input.sub_sequence_number,
        )

    def process_records(self, process_records_input: ProcessRecordsInput) -> None:
        with stop_on_failure("process_records", self.pipeline.log, self._metrics):
            self.pipeline.receive(
                process_records_input.records,
                process_records_input.millis_behind_latest,
                self._checkpointer(process_records_input.checkpointer),
            )

    def lease_lost(self, lease_lost_input: LeaseLostInput) -> None:
        self.pipeline.lease_lost()

    def shard_ended(self, shard_ended_input: ShardEndedInput) -> None:
        with stop_on_failure("shard_ended", self.pipeline.log, self._metrics):
            self.pipeline.shard_ended(self._checkpointer(shard_ended_input.checkpointer))

    def shutdown_requested(self, shutdown_requested_input: ShutdownRequestedInput) -> None:
        with stop_on_failure("shutdown_requested", self.pipeline.log, self._metrics):
            checkpointer = self._checkpointer(shutdown_requested_input.checkpointer)
            self.pipeline.shutdown_requested(checkpointer)
