"""The flush's guard against items DynamoDB cannot store. Pure: the store's reads are passed in.

Every item a flush would write is checked against DynamoDB's limits (`consumer.core.limits`)
before anything is written. The events that made an item unstorable become `unstorable` dead
letters, naming the limit, and every item they touched is computed again without them, from
the stored state: so no item counts an event the dead letters hold, and the shard goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from clickstream.kernel.events import DeadLetterReason, InvalidEvent
from clickstream.stores.page_stats import PageMinuteKey
from clickstream.stores.positions import Position
from consumer.core.aggregate import Changes, ShardAggregator
from consumer.core.batch import DeadLetter
from consumer.core.limits import Unstorable
from consumer.core.positioned import PositionedEvent


@dataclass(frozen=True, slots=True)
class Storable:
    changes: Changes
    """What the flush writes."""
    events: list[PositionedEvent]
    """What the flush archives: the batch's events less duplicates and dead letters."""
    letters: list[DeadLetter]
    """The `unstorable` dead letters this guard made."""
    limits_hit: list[str]


def without_unstorable(
    aggregator: ShardAggregator,
    events: Sequence[PositionedEvent],
    changes: Changes,
    flush_end: Position,
    *,
    check: Callable[[Changes], list[Unstorable]],
    restore: Callable[[set[str], set[PageMinuteKey], Sequence[PositionedEvent]], None],
    now: datetime,
) -> Storable:
    """`changes` (the aggregator's for `events`) made storable.

    `restore(sessions, pages, kept)` is called once the aggregator has forgotten the states
    the unstorable events touched: it rebuilds them as they were before `events` (the store's
    item and what the processor applied since) and caches every state `kept` touches."""
    kept = [e for e in events if e.position not in changes.duplicates]
    letters: list[DeadLetter] = []
    limits_hit: list[str] = []
    while problems := check(changes):
        bad, kept = split_by_items(aggregator, kept, problems)
        letters += [unstorable_letter(item, limit, now) for item, limit in bad]
        limits_hit += [problem.limit for problem in problems]
        sessions, pages = keys_of(aggregator, (item for item, _ in bad))
        aggregator.forget(sessions, pages)
        restore(sessions, pages, kept)
        again = aggregator.apply(kept, flush_end)
        changes = Changes(
            [s for s in changes.sessions if s.session_id not in sessions] + again.sessions,
            [p for p in changes.pages if p.key not in pages] + again.pages,
            changes.duplicates | again.duplicates,
        )
    return Storable(changes, kept, letters, limits_hit)


def split_by_items(
    aggregator: ShardAggregator, events: Sequence[PositionedEvent], problems: Sequence[Unstorable]
) -> tuple[list[tuple[PositionedEvent, str]], list[PositionedEvent]]:
    """(events that made an unstorable item, with the limit hit), (the others)."""
    by_session = {p.session_id: p.limit for p in problems if p.session_id is not None}
    by_page = {p.page: p.limit for p in problems if p.page is not None}
    bad: list[tuple[PositionedEvent, str]] = []
    kept: list[PositionedEvent] = []
    for item in events:
        limit = by_session.get(item.event.session_id) or by_page.get(
            aggregator.page_minute(item.event)
        )
        if limit is None:
            kept.append(item)
        else:
            bad.append((item, limit))
    return bad, kept


def keys_of(
    aggregator: ShardAggregator, events: Iterable[PositionedEvent]
) -> tuple[set[str], set[PageMinuteKey]]:
    """The sessions and page-minutes these events touch."""
    sessions: set[str] = set()
    pages: set[PageMinuteKey] = set()
    for item in events:
        sessions.add(item.event.session_id)
        pages.add(aggregator.page_minute(item.event))
    return sessions, pages


def unstorable_letter(item: PositionedEvent, limit: str, now: datetime) -> DeadLetter:
    error = InvalidEvent(DeadLetterReason.UNSTORABLE, limit)
    return DeadLetter(item.position, item.partition_key, item.arrival(now), item.raw, error)
