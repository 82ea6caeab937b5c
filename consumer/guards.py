"""A shard pipeline's guards against items DynamoDB cannot store: a collaborator of
`consumer.pipeline.ShardPipeline`, working on the shard's state (`ShardState`) and calling
back into the pipeline for what only it does (reading states, dead-lettering, rollups).

Two guards: every state a delivery changes is checked against DynamoDB's limits before it is
cached for writing (`consumer.core.storable`); and an item DynamoDB refuses all the same, at
write time, turns the events that changed it since its last write into dead letters. Either
way the shard goes on and the dead letters name the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from clickstream.stores.limits import ItemLimits
from clickstream.stores.page_stats import PageMinuteKey, PageMinuteState
from clickstream.stores.positions import Position
from consumer.core.aggregate import Changes
from consumer.core.batch import DeadLetter
from consumer.core.limits import Unstorable, unstorable_changes
from consumer.core.positioned import PositionedEvent
from consumer.core.shard_state import ShardState
from consumer.core.storable import Storable, keys_of, unstorable_letter, without_unstorable


class UnstorableGuards:
    def __init__(
        self,
        state: ShardState,
        *,
        item_limits: ItemLimits,
        wall_clock: Callable[[], datetime],
        log: Any,
        load: Callable[[Sequence[PositionedEvent]], None],
        dead_letters: Callable[[Sequence[DeadLetter]], None],
        pages_changed: Callable[[Sequence[PageMinuteState], Position, float, Position], None],
    ) -> None:
        self._state = state
        self._item_limits = item_limits
        self._wall_clock = wall_clock
        self._log = log
        self._load = load
        self._dead_letters = dead_letters
        self._pages_changed = pages_changed

    def without_unstorable(
        self, events: list[PositionedEvent], changes: Changes, last: Position, now: float
    ) -> Storable:
        wall = self._wall_clock()
        storable = without_unstorable(
            self._state.aggregator,
            events,
            changes,
            last,
            check=lambda candidate: unstorable_changes(candidate, wall, self._item_limits),
            restore=lambda sessions, pages, kept: self._restore(sessions, pages, kept, now),
            now=wall,
        )
        if storable.letters:
            self._log.warning(
                "unstorable items: their events are dead letters",
                limits=storable.limits_hit[:5],
                events=len(storable.letters),
            )
        return storable

    def _window_events(self) -> list[PositionedEvent]:
        """The events of the commit window (a guard rebuilding states: a rare path)."""
        return list(self._state.window.events)

    def _restore(
        self,
        sessions: set[str],
        pages: set[PageMinuteKey],
        kept: Sequence[PositionedEvent],
        now: float,
    ) -> None:
        """Rebuild forgotten states as they were before the delivery being applied: the
        store's item, plus what earlier deliveries of this window changed and the store does
        not hold yet; then cache what `kept` touches."""
        self._state.dirty_sessions.written(sessions)
        self._state.dirty_pages.written(pages)
        earlier = [
            item
            for item in self._window_events()
            if item.event.session_id in sessions
            or self._state.aggregator.page_minute(item.event) in pages
        ]
        self._load([*earlier, *kept])
        if earlier and self._state.applied_end is not None:
            # States not forgotten include these records already and skip them.
            rebuilt = self._state.aggregator.apply(earlier, self._state.applied_end)
            for session in rebuilt.sessions:
                self._state.dirty_sessions.mark(
                    session.session_id, session, now, earlier[0].position
                )
            self._pages_changed(rebuilt.pages, self._state.applied_end, now, earlier[0].position)

    def refused_by_dynamodb(self, refused: Sequence[Unstorable]) -> None:
        """The last guard: DynamoDB refused items the size check passed. The events that
        changed them since they were last written become dead letters, their states are
        dropped, and the shard goes on."""
        first = self._state.window.first_position or Position(0)
        by_session: dict[str, tuple[Position, str]] = {}
        by_page: dict[PageMinuteKey, tuple[Position, str]] = {}
        for problem in refused:
            if problem.session_id is not None:
                entry = self._state.dirty_sessions.entry(problem.session_id)
                since = entry.from_position if entry is not None else first
                by_session[problem.session_id] = (since, problem.limit)
            elif problem.page is not None:
                page_entry = self._state.dirty_pages.entry(problem.page)
                since = page_entry.from_position if page_entry is not None else first
                by_page[problem.page] = (since, problem.limit)
        bad: list[tuple[PositionedEvent, str]] = []
        for item in self._window_events():
            hit = by_session.get(item.event.session_id) or by_page.get(
                self._state.aggregator.page_minute(item.event)
            )
            if hit is not None and item.position >= hit[0]:
                bad.append((item, hit[1]))
        sessions, pages = keys_of(self._state.aggregator, (item for item, _ in bad))
        sessions |= {p.session_id for p in refused if p.session_id is not None}
        pages |= {p.page for p in refused if p.page is not None}
        self._state.aggregator.forget(sessions, pages)
        self._state.dirty_sessions.written(sessions)
        self._state.dirty_pages.written(pages)
        gone = {item.position for item, _ in bad}
        self._state.window.events = [
            item for item in self._state.window.events if item.position not in gone
        ]
        self._state.totals["events"] -= len(gone)
        self._log.error(
            "DynamoDB refused items the size check passed: their events are dead letters "
            "(other items of the same events may count them)",
            limits=[problem.limit for problem in refused[:5]],
            events=len(bad),
        )
        now = self._wall_clock()
        self._dead_letters([unstorable_letter(item, limit, now) for item, limit in bad])
