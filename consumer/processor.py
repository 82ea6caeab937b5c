"""The record processor: amazon_kclpy's v3 interface around the pure core and the sinks.

One instance per shard, in a process of its own started by the MultiLangDaemon; stdout is
the protocol channel, so this module never prints (logs go to stderr through structlog).

The commit cycle (DESIGN.md): buffer records; when the batch is due (size, bytes, age),
write the aggregate state to DynamoDB with the position guard, archive the batch to S3, and
only then checkpoint at the last record flushed. amazon_kclpy reports a `process_records` that
raised as done, which would let KCL move on past records never flushed, so every failure
here is handled on purpose: AWS errors are retried (`consumer.retry`); a flush that still
cannot complete, or any unexpected error, ends the process with a non-zero status, and the
daemon restarts the shard from its last checkpoint.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import amazon_kclpy.kcl
from amazon_kclpy.messages import (
    InitializeInput,
    LeaseLostInput,
    ProcessRecordsInput,
    ShardEndedInput,
    ShutdownRequestedInput,
)
from amazon_kclpy.v3.processor import RecordProcessorBase

from clickstream.events import DeadLetterReason, InvalidEvent, TimestampPolicy, decode_event
from clickstream.logging import get_logger
from consumer.core.aggregate import (
    Changes,
    PositionedEvent,
    SessionState,
    ShardAggregator,
)
from consumer.core.anomaly import Alert, BotRules, ShardProgress, assess_session, bot_alert
from consumer.core.batch import DeadLetter, FlushPolicy, PendingBatch, archive_objects
from consumer.core.limits import ItemLimits, Unstorable, unstorable_changes
from consumer.core.positions import Position
from consumer.core.storable import (
    Storable,
    keys_of,
    split_by_items,
    unstorable_letter,
    without_unstorable,
)
from consumer.metrics import Metrics, announce_alert
from consumer.retry import Backoff, GaveUp, call_with_retries
from consumer.sinks import AlertSink, Archive, LeaseOwnership, StateStore

EXIT_FLUSH_FAILED = 3
EXIT_UNEXPECTED = 4

RETRYABLE_CHECKPOINT_ERRORS = frozenset({"ThrottlingException"})
LEASE_GONE_CHECKPOINT_ERRORS = frozenset({"ShutdownException", "InvalidStateException"})


class ClickstreamProcessor(RecordProcessorBase):  # type: ignore[misc]  # untyped base
    version = 3

    def __init__(
        self,
        store: StateStore,
        archive: Archive,
        *,
        lease: LeaseOwnership | None = None,
        alerts: AlertSink | None = None,
        bot_rules: BotRules | None = None,
        metrics: Metrics | None = None,
        flush_policy: FlushPolicy,
        checkpoint_backoff: Backoff,
        max_cached_sessions: int = 50_000,
        max_cached_page_minutes: int = 50_000,
        keep_query_params: frozenset[str] = frozenset(),
        item_limits: ItemLimits | None = None,
        progress_interval_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._archive = archive
        self._lease = lease
        self._alerts = alerts
        self._bot_rules = bot_rules or BotRules()
        self._metrics = metrics
        self._progress_interval = progress_interval_seconds
        # What the shard's progress report says (see ShardProgress), and when it was sent.
        self._event_watermark: datetime | None = None
        self._caught_up = False
        self._reported: tuple[datetime | None, bool] | None = None
        self._reported_at = float("-inf")
        self._millis_behind: int | None = None
        self._policy = flush_policy
        self._checkpoint_backoff = checkpoint_backoff
        self._max_sessions = max_cached_sessions
        self._max_pages = max_cached_page_minutes
        self._keep_query_params = keep_query_params
        self._item_limits = item_limits or ItemLimits()
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._log: Any = get_logger(component="processor")
        self._shard_id = "unknown"
        self._aggregator = ShardAggregator("unknown")
        self._batch = PendingBatch()
        self._last_checkpoint: Position | None = None
        self._started_at = "unknown"
        """The checkpoint KCL started this shard's processing at."""
        self._lease_gone = False
        self.totals = {
            "events": 0,
            "duplicates": 0,
            "dead_letters": 0,
            "flushes": 0,
            "items_written": 0,
            "alerts": 0,
        }

    # -- amazon_kclpy v3 interface ---------------------------------------------------------

    def initialize(self, initialize_input: InitializeInput) -> None:
        self._shard_id = initialize_input.shard_id
        self._started_at = str(initialize_input.sequence_number)
        self._log = get_logger(component="processor", shard_id=self._shard_id)
        self._aggregator = ShardAggregator(
            self._shard_id,
            max_sessions=self._max_sessions,
            max_page_minutes=self._max_pages,
            keep_query_params=self._keep_query_params,
        )
        self._log.info(
            "initialized",
            checkpoint=initialize_input.sequence_number,
            sub_sequence=initialize_input.sub_sequence_number,
        )

    def process_records(self, process_records_input: ProcessRecordsInput) -> None:
        with self._stop_on_failure("process_records"):
            if self._lease_gone:
                return  # KCL is about to tell us the lease is lost; write nothing meanwhile
            now = self._clock()
            records = process_records_input.records
            self._millis_behind = process_records_input.millis_behind_latest
            for record in records:
                self._receive(record, now)
            if records:
                self._log.debug(
                    "records received",
                    count=len(records),
                    last_sequence=records[-1].sequence_number,
                )
            if self._policy.due(self._batch, self._clock()):
                self._flush_and_checkpoint(process_records_input.checkpointer)
            if self._lease_gone:
                return
            # KCL also calls with no records when the shard has nothing new: then everything
            # that arrived is here, and once the batch is flushed the shard is caught up.
            self._caught_up = self._batch.is_empty and (not records or self._millis_behind == 0)
            self._report_progress()

    def lease_lost(self, lease_lost_input: LeaseLostInput) -> None:
        # Another worker owns the shard now and replays from the last checkpoint: anything
        # not flushed is its to write, and our cached states may already be stale.
        self._log.info("lease lost: dropping unflushed records", records=self._batch.record_count)
        self._batch = PendingBatch()
        self._aggregator.forget_all()

    def shard_ended(self, shard_ended_input: ShardEndedInput) -> None:
        with self._stop_on_failure("shard_ended"):
            if not self._lease_gone:
                self._flush()
            if self._lease_gone:
                # A fenced flush wrote nothing: SHARD_END would tell KCL this shard is done
                # and its children may start, while its last records are counted nowhere.
                self._log.warning(
                    "shard ended while fenced: no SHARD_END checkpoint; the owner finishes it",
                    **self.totals,
                )
                return
            # At shard end KCL needs the checkpoint with no arguments (SHARD_END) before
            # it starts the children.
            self._checkpoint(shard_ended_input.checkpointer, None)
            if self._lease_gone:
                self._log.warning("shard ended: SHARD_END checkpoint refused", **self.totals)
                return
            self._report_progress(ended=True)
            self._log.info("shard ended: flushed, SHARD_END checkpointed", **self.totals)

    def shutdown_requested(self, shutdown_requested_input: ShutdownRequestedInput) -> None:
        # KCL sends this when the worker shuts down, and in KCL 3's graceful lease handoff,
        # where the lease already names the next owner and this worker stays the checkpoint
        # owner until it has flushed and checkpointed (see KclLeaseTable.still_owner).
        with self._stop_on_failure("shutdown_requested"):
            if self._lease_gone:
                self._log.info("shutdown requested: lease already gone, nothing written")
                return
            pending = self._batch.record_count
            checkpointed = self._flush_and_checkpoint(shutdown_requested_input.checkpointer)
            if checkpointed is not None:
                self._log.info(
                    "shutdown requested: flushed and checkpointed",
                    records=pending,
                    checkpoint=str(checkpointed),
                    **self.totals,
                )
            elif self._lease_gone:
                self._log.warning(
                    "shutdown requested: fenced, nothing written or checkpointed",
                    records=pending,
                    **self.totals,
                )
            else:
                last = self._last_checkpoint
                self._log.info(
                    "shutdown requested: nothing new since the last checkpoint",
                    checkpoint=str(last) if last is not None else self._started_at,
                    **self.totals,
                )

    # -- the commit cycle ------------------------------------------------------------------

    def _receive(self, record: Any, now: float) -> None:
        position = Position.of(record.sequence_number, record.sub_sequence_number)
        data = base64.b64decode(record.data)
        millis = record.timestamp_millis
        # Plausibility is judged against the record's arrival in the stream, not this clock:
        # every pass over the record (a replay included) then decides the same.
        arrival = datetime.fromtimestamp(millis / 1000, tz=UTC) if millis else self._wall_clock()
        try:
            event = decode_event(data, TimestampPolicy(now=arrival))
            if record.partition_key != event.session_id:
                raise InvalidEvent(
                    DeadLetterReason.PARTITION_KEY_MISMATCH,
                    "the partition key must be the session id, so a session stays on one shard",
                    "session_id",
                )
        except InvalidEvent as error:
            letter = DeadLetter(position, record.partition_key, arrival, data, error)
            self._batch.add_dead_letter(letter, now)
            return
        positioned = PositionedEvent(position, event, data, record.partition_key, arrival)
        self._batch.add_event(positioned, len(data), now)

    def _flush_and_checkpoint(self, checkpointer: Any) -> Position | None:
        """Flush, then checkpoint what was flushed; the position checkpointed, if any."""
        flushed = self._flush()
        if flushed is None or self._lease_gone:
            return None
        self._checkpoint(checkpointer, flushed)
        return None if self._lease_gone else flushed

    def _flush(self) -> Position | None:
        """Write state, then the archive; returns the last position flushed (None: nothing).

        State goes first because its write is the guarded one: a worker whose lease moved on
        (a zombie) is refused there, and then writes no archive object either, where it
        could otherwise replace the new owner's object of the same key with fewer records.
        """
        batch = self._batch
        if batch.is_empty or batch.last_position is None:
            return None
        started = self._clock()
        if self._lease is not None and not self._lease.still_owner(self._shard_id):
            self._fenced("another worker holds the lease now", batch.record_count)
            return None
        self._load(batch.events)
        changes = self._aggregator.apply(batch.events, batch.last_position)
        storable = self._without_unstorable(batch, changes)
        changes, events = storable.changes, storable.events
        letters = [*batch.dead_letters, *storable.letters]
        # Alerts go before the state that records them as raised: a crash in between replays
        # the flush and puts the same alert again, which its conditional put makes harmless.
        self._raise(self._bot_alerts(changes.sessions))
        outcome = self._store.save(changes, self._wall_clock())
        self._batch = PendingBatch()
        if outcome.fenced:
            # Stored state is ahead of ours: another worker holds this shard now, and ours
            # is stale. What we did write is overwritten by the owner's replay.
            self._fenced(
                "newer state already stored",
                batch.record_count,
                refused=outcome.refused[:5],
                refused_count=len(outcome.refused),
            )
            return None
        if outcome.unstorable:
            events, refused = self._refused_by_dynamodb(events, outcome.unstorable)
            letters += refused
        objects = archive_objects(self._shard_id, events, letters)
        self._archive.put(objects)
        self._aggregator.trim()
        self.totals["events"] += len(events)
        self.totals["duplicates"] += len(changes.duplicates)
        self.totals["dead_letters"] += len(letters)
        self.totals["flushes"] += 1
        self.totals["items_written"] += outcome.written
        newest = max(item.event.timestamp for item in events) if events else None
        if newest is not None and (self._event_watermark is None or newest > self._event_watermark):
            self._event_watermark = newest
        if self._metrics is not None:
            reasons = Counter(letter.error.reason.value for letter in letters)
            flush_ms = (self._clock() - started) * 1000
            self._metrics.flushed(
                len(events), len(changes.duplicates), reasons, flush_ms, self._millis_behind
            )
        for letter in letters:
            self._log.warning(
                "dead letter",
                reason=letter.error.reason.value,
                field=letter.error.field,
                sequence_number=letter.position.sequence_number,
            )
        self._log.debug(
            "flushed",
            events=len(events),
            duplicates=len(changes.duplicates),
            dead_letters=len(letters),
            objects=len(objects),
            items=outcome.written,
            last_position=str(batch.last_position),
            flush_ms=round((self._clock() - started) * 1000, 1),
        )
        return batch.last_position

    def _load(self, events: Sequence[PositionedEvent]) -> None:
        """Read the states these events touch that are not cached."""
        sessions, pages = self._aggregator.missing(events)
        if sessions or pages:
            self._aggregator.remember(*self._store.load(self._shard_id, sessions, pages))

    def _without_unstorable(self, batch: PendingBatch, changes: Changes) -> Storable:
        assert batch.last_position is not None
        now = self._wall_clock()
        storable = without_unstorable(
            self._aggregator,
            batch.events,
            changes,
            batch.last_position,
            check=lambda candidate: unstorable_changes(candidate, now, self._item_limits),
            load=self._load,
            now=now,
        )
        if storable.letters:
            self._log.warning(
                "unstorable items: their events are dead letters",
                limits=storable.limits_hit[:5],
                events=len(storable.letters),
            )
        return storable

    def _refused_by_dynamodb(
        self, events: list[PositionedEvent], refused: Sequence[Unstorable]
    ) -> tuple[list[PositionedEvent], list[DeadLetter]]:
        """The last guard: DynamoDB refused items the size check passed. Their events become
        dead letters and the shard goes on; the cached states they touched are dropped."""
        bad, kept = split_by_items(self._aggregator, events, refused)
        self._aggregator.forget(*keys_of(self._aggregator, (item for item, _ in bad)))
        self._log.error(
            "DynamoDB refused items the size check passed: their events are dead letters "
            "(other items of the same events may count them)",
            limits=[problem.limit for problem in refused[:5]],
            events=len(bad),
        )
        now = self._wall_clock()
        return kept, [unstorable_letter(item, limit, now) for item, limit in bad]

    def _bot_alerts(self, sessions: Sequence[SessionState]) -> list[Alert]:
        """Score the sessions a flush changed; the alerts of those crossing the line."""
        alerts = []
        for session in sessions:
            assessment = assess_session(session, self._bot_rules)
            session.bot_score = assessment.score
            if session.bot_alerted:
                continue
            alert = bot_alert(session, assessment, self._bot_rules)
            if alert is not None:
                session.bot_alerted = True
                alerts.append(alert)
        return alerts

    def _raise(self, alerts: Sequence[Alert]) -> None:
        if not alerts or self._alerts is None:
            return
        raised = self._alerts.raise_once(alerts, self._wall_clock())
        self.totals["alerts"] += len(raised)
        for alert in raised:
            announce_alert(self._log, self._metrics, alert)

    def _report_progress(self, *, ended: bool = False) -> None:
        """Tell the page-traffic rule how far this shard is: when it changed, at most every
        `progress_interval_seconds` (a busy shard flips between caught up and not all the
        time), and always at shard end."""
        if self._alerts is None:
            return
        state = (self._event_watermark, self._caught_up)
        now = self._clock()
        # Never reported: `_reported` is None (unequal) and `_reported_at` -inf (long ago).
        too_soon = now - self._reported_at < self._progress_interval
        if not ended and (state == self._reported or too_soon):
            return
        progress = ShardProgress(self._shard_id, self._event_watermark, self._caught_up, ended)
        self._alerts.report_progress(progress, self._wall_clock())
        self._reported, self._reported_at = state, now

    def _fenced(self, why: str, records: int, **details: Any) -> None:
        self._log.warning(
            "fenced: this worker no longer owns the shard; dropping its state",
            why=why,
            records=records,
            **details,
        )
        self._batch = PendingBatch()
        self._lease_gone = True
        self._aggregator.forget_all()

    def _checkpoint(self, checkpointer: Any, position: Position | None) -> None:
        def checkpoint() -> None:
            if position is None:
                checkpointer.checkpoint()
            else:
                checkpointer.checkpoint(position.sequence_number, position.sub_sequence)

        try:
            call_with_retries(
                checkpoint,
                what="checkpoint",
                backoff=self._checkpoint_backoff,
                log=self._log,
                retryable=_checkpoint_throttled,
                sleep=self._sleep,
            )
        except GaveUp as gave_up:
            if _checkpoint_code(gave_up.error) not in LEASE_GONE_CHECKPOINT_ERRORS:
                raise
            self._log.warning(
                "checkpoint refused: lease gone", error=_checkpoint_code(gave_up.error)
            )
            self._lease_gone = True
            self._aggregator.forget_all()
            return
        self._last_checkpoint = position

    # -- failure policy --------------------------------------------------------------------

    def _count_error(self) -> None:
        if self._metrics is not None:
            with contextlib.suppress(Exception):  # the exit that follows matters more
                self._metrics.emit({"WorkerErrors": (1, "Count")})

    @contextlib.contextmanager
    def _stop_on_failure(self, during: str) -> Iterator[None]:
        """Turn any failure into a deliberate exit, since amazon_kclpy would swallow it."""
        try:
            yield
        except GaveUp as error:
            self._count_error()
            self._log.error(
                "flush failed: stopping so the shard restarts from its last checkpoint",
                during=during,
                what=error.what,
                attempts=error.attempts,
                error=str(error.error),
            )
            raise SystemExit(EXIT_FLUSH_FAILED) from error
        except Exception as error:
            self._count_error()
            self._log.exception("unexpected failure: stopping", during=during)
            raise SystemExit(EXIT_UNEXPECTED) from error


def _checkpoint_code(error: BaseException) -> str | None:
    if isinstance(error, amazon_kclpy.kcl.CheckpointError):
        return str(error.value)
    return None


def _checkpoint_throttled(error: BaseException) -> bool:
    """KCL's checkpoint answers a throttled lease-table write with ThrottlingException."""
    return _checkpoint_code(error) in RETRYABLE_CHECKPOINT_ERRORS
