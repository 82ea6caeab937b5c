"""The shard pipeline: one shard's commit cycle, KCL-free. `consumer.processor` is the thin
amazon_kclpy adapter that feeds it deliveries and hands it a checkpointer.

The commit cycle (DESIGN.md): buffer records; when the batch is due (size, bytes, age),
write the aggregate state to DynamoDB with the position guard, archive the batch to S3, and
only then checkpoint at the last record flushed. AWS errors are retried
(`clickstream.kernel.retry`); a flush that still cannot complete raises, and the adapter
ends the process so that the daemon restarts the shard from its last checkpoint.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from clickstream.kernel.logging import get_logger
from clickstream.kernel.retry import Backoff, call_with_retries
from clickstream.stores.alerts import Alert
from clickstream.stores.limits import ItemLimits
from clickstream.stores.page_stats import MinuteRollup, PageMinuteKey, PageMinuteState
from clickstream.stores.positions import Position
from clickstream.stores.sessions import SessionState
from clickstream.stores.suppression import Suppression, SuppressionError
from consumer.core.aggregate import Changes, ShardAggregator
from consumer.core.anomaly import BotRules, score_sessions
from consumer.core.batch import DeadLetter, archive_objects, verdict_objects
from consumer.core.pending import (
    Cadences,
    CommitWindow,
    ProgressReports,
    Watermark,
)
from consumer.core.positioned import PositionedEvent
from consumer.core.receive import decode_delivery, without_suppressed
from consumer.core.rollup import LiveRollups
from consumer.core.shard_state import ShardState
from consumer.guards import UnstorableGuards
from consumer.metrics import Metrics, announce_alert
from consumer.sinks import AlertSink, Archive, LeaseOwnership, StateStore

SESSION_IDLE_SECONDS = 300.0
"""A written session unused this long is dropped from the cache (read again if it returns)."""
PAGE_IDLE_SECONDS = 180.0
"""A written page-minute unused this long is dropped from the cache."""
LEASE_MOVED = "another worker holds the lease now"
"""Why a flush was fenced when the lease table names another owner (logged as `why`)."""
LEASE_LOST = "lease lost: dropping what was not written"
"""What a processor logs when KCL tells it another worker took its lease."""


class Checkpointer(Protocol):
    """Where a shard's progress is recorded (KCL's checkpointer, through the adapter)."""

    def checkpoint(self, position: Position | None) -> bool:
        """Record `position` (None: the shard's end) as done; False when the lease is gone
        (another worker holds the shard), any other refusal raised."""
        ...


class ShardPipeline:
    """One shard's commit cycle: deliveries in (`receive`), states folded and written on
    their cadences, the window archived, then a checkpoint through the `Checkpointer` it is
    handed. Its failures raise; the adapter decides what a failure means for the process."""

    def __init__(
        self,
        store: StateStore,
        archive: Archive,
        *,
        lease: LeaseOwnership | None = None,
        alerts: AlertSink | None = None,
        bot_rules: BotRules | None = None,
        metrics: Metrics | None = None,
        cadences: Cadences,
        checkpoint_backoff: Backoff,
        max_cached_sessions: int = 50_000,
        max_cached_page_minutes: int = 50_000,
        keep_query_params: frozenset[str] = frozenset(),
        item_limits: ItemLimits | None = None,
        progress_interval_seconds: float = 5.0,
        suppression: Callable[[], Suppression] | None = None,
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
        self._suppression = suppression
        # What the shard's progress report says (see ShardProgress), and when it was sent.
        self._progress = ProgressReports(progress_interval_seconds)
        self._millis_behind: int | None = None
        self._cadences = cadences
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
        self._state = ShardState(ShardAggregator("unknown"))
        self._guards = self._guards_of(self._state)
        self._rollups = LiveRollups("unknown")
        self._watermark = Watermark()
        self._last_checkpoint: Position | None = None
        self._started_at = "unknown"
        """The checkpoint KCL started this shard's processing at."""
        self._lease_gone = False

    def _guards_of(self, state: ShardState) -> UnstorableGuards:
        return UnstorableGuards(
            state,
            item_limits=self._item_limits,
            wall_clock=self._wall_clock,
            log=self._log,
            load=self._load,
            dead_letters=self._dead_letters,
            pages_changed=self._pages_changed,
        )

    @property
    def totals(self) -> dict[str, int]:
        """What this processor did since it started (events, flushes, ...)."""
        return self._state.totals

    @property
    def cached(self) -> tuple[int, int]:
        """(sessions, page-minutes) in the cache."""
        return self._state.aggregator.cached

    @property
    def pending_records(self) -> int:
        """Records received since the last checkpoint."""
        return self._state.window.record_count

    # -- what the adapter calls ----------------------------------------------------------

    def start(self, shard_id: str, checkpoint: str, sub_sequence: int | None = None) -> None:
        """The shard this pipeline processes, from KCL's checkpoint `checkpoint`."""
        self._shard_id = shard_id
        self._started_at = str(checkpoint)
        self._log = get_logger(component="processor", shard_id=self._shard_id)
        self._rollups = LiveRollups(self._shard_id)
        aggregator = ShardAggregator(
            self._shard_id,
            max_sessions=self._max_sessions,
            max_page_minutes=self._max_pages,
            keep_query_params=self._keep_query_params,
        )
        self._state = ShardState(aggregator, totals=self._state.totals)
        self._guards = self._guards_of(self._state)
        self._log.info("initialized", checkpoint=checkpoint, sub_sequence=sub_sequence)

    @property
    def log(self) -> Any:
        """This shard's logger (bound to its shard id once started)."""
        return self._log

    def receive(
        self, records: Sequence[Any], millis_behind: int | None, checkpointer: Checkpointer
    ) -> None:
        """A delivery of records (KCL also calls with none when the shard has nothing new)."""
        if self._lease_gone:
            return  # KCL is about to tell us the lease is lost; write nothing meanwhile
        now = self._clock()
        self._state.aggregator.at(now)
        self._millis_behind = millis_behind
        events = self._receive(records, now) if records else []
        if events:
            self._apply(events, now)
        if records:
            self._log.debug(
                "records received",
                count=len(records),
                last_sequence=records[-1].sequence_number,
            )
        if not self._lease_gone:
            self._write_due(self._clock())
        if not self._lease_gone and self._cadences.commit_due(self._state.window, self._clock()):
            self._commit_and_checkpoint(checkpointer)
        if self._lease_gone:
            return
        # KCL also calls with no records when the shard has nothing new: then everything
        # that arrived is here, and once its page-minutes are written the shard is
        # caught up as far as the page-traffic rule is concerned.
        caught_up = not self._state.dirty_pages and (not records or self._millis_behind == 0)
        self._progress.observe(caught_up, self._wall_clock(), received=bool(records))
        self._report_progress()

    def lease_lost(self) -> None:
        # Another worker owns the shard now and replays from the last checkpoint: anything
        # not written is its to write, and our cached states may already be stale.
        self._log.info(LEASE_LOST, records=self._state.window.record_count)
        self._drop_pending()

    def _drop_pending(self) -> None:
        self._state.drop_pending()
        self._rollups.clear()
        self._watermark.forget_pending()

    def shard_ended(self, checkpointer: Checkpointer) -> None:
        """The shard was closed by a reshard and every record of it delivered."""
        if not self._lease_gone:
            self._commit()
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
        self._checkpoint(checkpointer, None)
        if self._lease_gone:
            self._log.warning("shard ended: SHARD_END checkpoint refused", **self.totals)
            return
        self._report_progress(ended=True)
        self._log.info("shard ended: flushed, SHARD_END checkpointed", **self.totals)

    def shutdown_requested(self, checkpointer: Checkpointer) -> None:
        """Flush and checkpoint: the worker shuts down, or hands the lease over (KCL 3's
        graceful handoff, where the lease already names the next owner and this worker stays
        the checkpoint owner until it has flushed and checkpointed: `KclLeaseTable`)."""
        if self._lease_gone:
            self._log.info("shutdown requested: lease already gone, nothing written")
            return
        pending = self._state.window.record_count
        checkpointed = self._commit_and_checkpoint(checkpointer)
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

    def _receive(self, records: Sequence[Any], now: float) -> list[PositionedEvent]:
        """Decode a delivery into the commit window: its events (dead letters aside)."""
        delivery = decode_delivery(records, self._shard_id, self._wall_clock)
        self._state.window.received(delivery.first, delivery.last, len(records), delivery.size, now)
        if delivery.letters:
            self._dead_letters(delivery.letters)
        return self._without_suppressed(delivery.events)

    def _without_suppressed(self, events: list[PositionedEvent]) -> list[PositionedEvent]:
        """The events of people erased with `clickstream forget` are dropped and counted
        (`clickstream.stores.suppression`): stored nowhere, counted in no session or page."""
        if self._suppression is None or not events:
            return events
        listed = call_with_retries(
            self._suppression,
            what="read the suppression list",
            backoff=self._checkpoint_backoff,
            log=self._log,
            retryable=lambda exc: isinstance(exc, SuppressionError),
            sleep=self._sleep,
        )
        kept = without_suppressed(events, listed)
        self._state.window.suppressed += len(events) - len(kept)
        self._state.totals["suppressed"] += len(events) - len(kept)
        return kept

    def _apply(self, events: list[PositionedEvent], now: float) -> None:
        """Fold a delivery's events into the cached states, which wait for their cadence."""
        first, last = events[0].position, events[-1].position
        page_minutes = self._state.aggregator.page_minutes(events)
        self._load(events, page_minutes)
        changes = self._state.aggregator.apply(events, last, page_minutes)
        storable = self._guards.without_unstorable(events, changes, last, now)
        changes = storable.changes
        self._dead_letters(storable.letters)
        # Verdicts and alerts go before the state that records them as raised: a crash in
        # between replays the events and judges the session again, rewriting the same
        # verdict object and putting the same alert, which its conditional put ignores.
        alerts = score_sessions(changes.sessions, self._bot_rules)
        if alerts:
            self._archive.put(verdict_objects(alerts))
        self._raise(alerts)
        for session in changes.sessions:
            self._state.dirty_sessions.mark(session.session_id, session, now, first)
        self._pages_changed(changes.pages, last, now, first)
        self._state.window.events.extend(storable.events)
        self._state.applied_end = last
        self._state.totals["events"] += len(storable.events)
        self._state.totals["duplicates"] += len(changes.duplicates)
        newest = max((item.event.timestamp for item in storable.events), default=None)
        self._watermark.applied(last, newest)

    def _dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self._state.window.dead_letters.extend(letters)
        self._state.totals["dead_letters"] += len(letters)
        for letter in letters:
            self._log.warning(
                "dead letter",
                reason=letter.error.reason.value,
                field=letter.error.field,
                sequence_number=letter.position.sequence_number,
            )

    def _pages_changed(
        self, pages: Sequence[PageMinuteState], last: Position, now: float, first: Position
    ) -> None:
        """Page-minutes changed by records up to `last`: they wait for their cadence, and
        their minutes' live rollups for theirs (read from the store on first touch)."""
        minutes = self._rollups.missing(pages)
        if minutes:
            self._rollups.remember(self._store.load_rollups(self._shard_id, minutes))
        for page in pages:
            self._state.dirty_pages.mark(page.key, page, now, first)
        self._rollups.changed(pages, last, now, first)

    def _write_due(self, now: float) -> None:
        """Write the rollups, sessions and page-minutes that have waited their cadence.

        Page-minute items never go out ahead of their rollups: a replay skips the records an
        item already includes, so a rollup left behind its items (the worker stopped between
        the two writes) would never learn them. With any page-minute due, every changed
        rollup is written too, before it (`StateStore.save`)."""
        pages = self._state.dirty_pages.due(now, self._cadences.item_seconds)
        rollups = (
            self._rollups.dirty.all()
            if pages
            else self._rollups.dirty.due(now, self._cadences.live_seconds)
        )
        sessions = self._state.dirty_sessions.due(now, self._cadences.item_seconds)
        if rollups or pages or sessions:
            self._write(
                [state for _, state in sessions],
                [state for _, state in pages],
                [state for _, state in rollups],
            )

    def _write(
        self,
        sessions: list[SessionState],
        pages: list[PageMinuteState],
        rollups: list[MinuteRollup] | None = None,
    ) -> bool:
        """Write states (each with the position of the last record it includes); False when
        this worker turns out to be fenced."""
        if self._lease is not None and not self._lease.still_owner(self._shard_id):
            self._fenced(LEASE_MOVED, self._state.window.record_count)
            return False
        started = self._clock()
        changes = Changes(sessions, pages, rollups=rollups or [])
        outcome = self._store.save(changes, self._wall_clock())
        if outcome.fenced:
            # Stored state is ahead of ours: another worker holds this shard now, and ours
            # is stale. What we did write is overwritten by the owner's replay.
            self._fenced(
                "newer state already stored",
                self._state.window.record_count,
                refused=outcome.refused[:5],
                refused_count=len(outcome.refused),
            )
            return False
        if outcome.unstorable:
            self._guards.refused_by_dynamodb(outcome.unstorable)
        self._rollups.forget(outcome.refused_rollups)
        self._state.dirty_sessions.written(session.session_id for session in sessions)
        self._state.dirty_pages.written(page.key for page in pages)
        self._rollups.dirty.written(rollup.minute for rollup in rollups or [])
        self._state.totals["items_written"] += outcome.written
        self._watermark.written(self._state.dirty_pages.oldest_position())
        self._log.debug(
            "written",
            sessions=len(sessions),
            pages=len(pages),
            items=outcome.written,
            write_ms=round((self._clock() - started) * 1000, 1),
        )
        return True

    def _commit(self) -> Position | None:
        """Write every changed state, archive the window: the position a checkpoint may name
        now (None: nothing received since the last one, or fenced)."""
        window = self._state.window
        if window.is_empty or window.last_position is None:
            return None
        started = self._clock()
        sessions = [state for _, state in self._state.dirty_sessions.all()]
        pages = [state for _, state in self._state.dirty_pages.all()]
        rollups = [state for _, state in self._rollups.dirty.all()]
        if (sessions or pages or rollups) and not self._write(sessions, pages, rollups):
            return None
        if self._lease_gone:
            return None
        objects = archive_objects(self._shard_id, window.events, window.dead_letters)
        self._archive.put(objects)
        self._state.window = CommitWindow()
        self._state.totals["flushes"] += 1
        now = self._clock()
        self._state.aggregator.trim(
            sessions_idle_before=now - SESSION_IDLE_SECONDS,
            pages_idle_before=now - PAGE_IDLE_SECONDS,
        )
        self._rollups.forget_idle(now - PAGE_IDLE_SECONDS)
        if self._metrics is not None:
            reasons = Counter(letter.error.reason.value for letter in window.dead_letters)
            self._metrics.flushed(
                len(window.events),
                window.record_count
                - len(window.events)
                - len(window.dead_letters)
                - window.suppressed,
                reasons,
                (now - started) * 1000,
                self._millis_behind,
                suppressed=window.suppressed,
            )
        self._log.debug(
            "committed",
            records=window.record_count,
            objects=len(objects),
            last_position=str(window.last_position),
            commit_ms=round((now - started) * 1000, 1),
        )
        return window.last_position

    def _commit_and_checkpoint(self, checkpointer: Checkpointer) -> Position | None:
        """Commit, then checkpoint what was committed; the position checkpointed, if any."""
        committed = self._commit()
        if committed is None or self._lease_gone:
            return None
        self._checkpoint(checkpointer, committed)
        return None if self._lease_gone else committed

    def _load(
        self,
        events: Sequence[PositionedEvent],
        page_minutes: Sequence[PageMinuteKey] | None = None,
    ) -> None:
        """Read the states these events touch that are not cached."""
        sessions, pages = self._state.aggregator.missing(events, page_minutes)
        if sessions or pages:
            self._state.aggregator.remember(*self._store.load(self._shard_id, sessions, pages))

    def _raise(self, alerts: Sequence[Alert]) -> None:
        if not alerts or self._alerts is None:
            return
        raised = self._alerts.raise_once(alerts, self._wall_clock())
        self._state.totals["alerts"] += len(raised)
        for alert in raised:
            announce_alert(self._log, self._metrics, alert)

    def _report_progress(self, *, ended: bool = False) -> None:
        """Tell the page-traffic rule how far this shard is (`ProgressReports`)."""
        if self._alerts is None:
            return
        due = self._progress.due(self._shard_id, self._watermark.value, self._clock(), ended=ended)
        if due is not None:
            self._alerts.report_progress(due, self._wall_clock())

    def _fenced(self, why: str, records: int, **details: Any) -> None:
        self._log.warning(
            "fenced: this worker no longer owns the shard; dropping its state",
            why=why,
            records=records,
            **details,
        )
        self._drop_pending()
        self._lease_gone = True

    def _checkpoint(self, checkpointer: Checkpointer, position: Position | None) -> None:
        if checkpointer.checkpoint(position):
            self._last_checkpoint = position
            return
        self._lease_gone = True
        self._state.aggregator.forget_all()
