"""Per-shard aggregation: sessions and page-minutes, state in, state out. Pure: no I/O.

Every state object carries the position (in its shard) of the last record it includes, so a
record replayed after a crash or a lease move is applied to an item only when it is newer
than what that item already holds. The skip is per item, not per record: a flush that wrote
some items and then died leaves the others behind, and the replay catches exactly those up.

A session lives on one shard (partition key = session id), so its state is complete here.
A page-minute is spread over every shard; each shard keeps its own item and readers sum them.
"Distinct sessions" of a page-minute must still count each session once over all shards and
all replays, so the session remembers where it first touched each (minute, page): the record
at that spot is the one that counts the session for the page-minute, wherever it is replayed.
"""

from __future__ import annotations

import functools
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from clickstream.kernel.enrichment.columns import landing_row
from clickstream.kernel.enrichment.useragent import agent_of
from clickstream.kernel.events import EventType, minute_text
from clickstream.kernel.fast_decode import FoldedEvent
from clickstream.kernel.pagekey import page_key
from clickstream.stores.page_stats import MinuteRollup, PageMinuteKey, PageMinuteState
from clickstream.stores.positions import Position
from clickstream.stores.sessions import SessionState, ShardPosition, session_acquisition
from clickstream.stores.sketch import (
    MAX_RECENT_EVENT_IDS,
    MAX_TRACKED_PAGE_MINUTES,
    hash64,
)
from consumer.core.cache import LruCache
from consumer.core.positioned import PositionedEvent, where_hash

MAX_STORED_TEXT_BYTES: Final = 512
"""Every free-text field a session item keeps (the user agent) is cut to this many bytes."""


@dataclass(frozen=True, slots=True)
class Changes:
    """The states a flush must write: everything a batch of events touched."""

    sessions: list[SessionState]
    pages: list[PageMinuteState]
    duplicates: frozenset[Position] = frozenset()
    """Records that re-sent an event of their session: counted nowhere, archived nowhere."""
    rollups: list[MinuteRollup] = field(default_factory=list)
    """Minutes' live page counters to write (`consumer.core.rollup`)."""

    @property
    def item_count(self) -> int:
        return len(self.sessions) + len(self.pages) + len(self.rollups)


def minute_number(at: datetime) -> int:
    """Minutes since the epoch: the minute of `minute_key`, as a number."""
    return int(at.timestamp() // 60)


@functools.lru_cache(maxsize=65_536)
def _page_hash(page: str) -> int:
    # Pages repeat all the time (ids never do): hash each once.
    return hash64(page)


def first_sighting(state: SessionState, id_hash: int, here: int) -> bool:
    """Whether the record at `here` (`where_hash`) is the first of its session with the
    event id whose hash is `id_hash`.

    A re-sent event (a beacon retry, a producer retry after a timeout) carries the id of one
    seen before at another position: it is a duplicate, counted and archived nowhere. The
    answer depends only on the records, so a replay decides every record as before. Beyond
    the `MAX_RECENT_EVENT_IDS` most recent ids of the session an id is forgotten and its
    re-send counted again. The caller records the id (`remember_id`) when it applies a record
    the session did not include yet.
    """
    seen = state.recent_ids.get(id_hash)
    return seen is None or seen == here


def remember_id(state: SessionState, id_hash: int, here: int) -> None:
    if id_hash not in state.recent_ids:
        state.recent_ids[id_hash] = here
        if len(state.recent_ids) > MAX_RECENT_EVENT_IDS:
            del state.recent_ids[next(iter(state.recent_ids))]  # the oldest id goes


def apply_to_session(
    state: SessionState,
    event: FoldedEvent,
    page: str,
    page_hash: int,
    here: int,
    minute: int | None = None,
) -> None:
    """Fold one event, whose page key is `page` (hashed: `page_hash`) and whose record sits
    at `here` (`where_hash`), into a session (the caller has checked it is not included yet
    and not a duplicate). `minute` is the event's `minute_number`, when the caller has it."""
    state.events += 1
    at = event.timestamp
    # Ties on the timestamp break on the event id, so entry and exit pages do not depend on
    # the order records arrived in (a producer's retry can reorder a session's records).
    # (Compared field by field rather than as tuples: this runs for every event.)
    event_id, first, last = event.event_id, state.first_seen, state.last_seen
    if event.type is EventType.PAGE_VIEW:
        state.page_views += 1
        landing = state.landing_at
        if landing is None or at < landing or (at == landing and event_id < state.landing_event_id):
            # The landing so far: what it says of the visit's source is decided once per
            # landing seen, usually once per session (records mostly come in order).
            state.landing_at, state.landing_event_id = at, event_id
            state.acquisition = session_acquisition(
                landing_row(event.page, event.referrer, event.campaign)
            )
    elif event.type is EventType.CLICK:
        state.clicks += 1
    elif event.type is EventType.SCROLL:
        state.scrolls += 1
    else:
        state.custom += 1
    if state.country is None and event.country is not None:
        state.country = event.country
    if first is None or at < first or (at == first and event_id < state.first_event_id):
        state.first_seen, state.first_event_id, state.entry_page = at, event_id, page
    if last is None or at > last or (at == last and event_id > state.last_event_id):
        state.last_seen, state.last_event_id, state.exit_page = at, event_id, page
    if state.previous_at is not None:
        gap = abs((at - state.previous_at).total_seconds())
        state.gap_count += 1
        delta = gap - state.gap_mean
        state.gap_mean += delta / state.gap_count
        state.gap_m2 += delta * (gap - state.gap_mean)
    state.previous_at = at
    if state.user_agent is None and event.user_agent:
        state.user_agent = _cut(event.user_agent, MAX_STORED_TEXT_BYTES)
    state.pages.add(page_hash)
    # The first-touch key: (minute number, page key hash).
    if minute is None:
        minute = minute_number(at)
    touches = state.first_touches
    touch = (minute, page_hash)
    if touch not in touches:
        touches[touch] = here
        per_minute = state.touches_per_minute
        per_minute[minute] = per_minute.get(minute, 0) + 1
        if len(touches) > MAX_TRACKED_PAGE_MINUTES:
            # Oldest minute first. A late event for a forgotten minute of such a session
            # counts it in that minute's distinct sessions again: where exactness stops.
            oldest = min(touches)
            del touches[oldest]
            left = per_minute[oldest[0]] - 1
            if left:
                per_minute[oldest[0]] = left
            else:
                del per_minute[oldest[0]]


def _cut(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


def apply_to_page(
    state: PageMinuteState,
    event: FoldedEvent,
    first_touch: int | None,
    here: int,
    is_bot: bool = False,
) -> None:
    """Fold one event (its record at `here`, `where_hash`) into its page-minute; the session
    counts where it first touched it. A bot's event (`is_bot`, by its user agent) counts
    apart: its page views in `bot_views`, nothing in people's counters."""
    if is_bot:
        if event.type is EventType.PAGE_VIEW:
            state.bot_views += 1
        return
    if event.type is EventType.PAGE_VIEW:
        state.views += 1
    elif event.type is EventType.CLICK:
        state.clicks += 1
    if first_touch is None or first_touch == here:
        state.sessions += 1


class ShardAggregator:
    """The sessions and page-minutes one shard's processor knows, and how events change them.

    States come from the store the first time a key is touched (`missing` then `remember`),
    stay cached while used, and are forgotten least-recently-used first once the cache is
    full: a forgotten key is simply read again when it is touched again.
    """

    def __init__(
        self,
        shard_id: str,
        *,
        max_sessions: int = 50_000,
        max_page_minutes: int = 50_000,
        keep_query_params: frozenset[str] = frozenset(),
    ) -> None:
        self.shard_id = shard_id
        self._keep = keep_query_params
        self._sessions: LruCache[str, SessionState] = LruCache(max_sessions)
        self._pages: LruCache[PageMinuteKey, PageMinuteState] = LruCache(max_page_minutes)

    def page_minute(self, event: FoldedEvent) -> PageMinuteKey:
        """The page-minute an event counts in: its canonical page key and its minute."""
        return PageMinuteKey(
            page_key(event.page, self._keep), minute_text(int(event.seconds // 60))
        )

    def page_minutes(self, events: Iterable[PositionedEvent]) -> list[PageMinuteKey]:
        """Each event's page-minute, in order: computed once per delivery and passed to
        `missing` and `apply`."""
        page_minute = self.page_minute
        return [page_minute(item.event) for item in events]

    def missing(
        self,
        events: Sequence[PositionedEvent],
        page_minutes: Sequence[PageMinuteKey] | None = None,
    ) -> tuple[set[str], set[PageMinuteKey]]:
        """The keys these events touch that are not cached: read them before `apply`."""
        sessions = self._sessions.absent(item.event.session_id for item in events)
        keys = self.page_minutes(events) if page_minutes is None else page_minutes
        return sessions, self._pages.absent(keys)

    def remember(
        self,
        sessions: Mapping[str, SessionState | None],
        pages: Mapping[PageMinuteKey, PageMinuteState | None],
    ) -> None:
        """Cache states read from the store; None means the store has no item yet."""
        for session_id, session in sessions.items():
            self._sessions.put(session_id, session or SessionState(session_id))
        for key, page in pages.items():
            self._pages.put(
                key, page or PageMinuteState(key.page, key.minute, shard_id=self.shard_id)
            )

    def apply(
        self,
        events: Sequence[PositionedEvent],
        flush_end: Position,
        page_minutes: Sequence[PageMinuteKey] | None = None,
    ) -> Changes:
        """Fold a batch into the cached states (all its keys must be cached).

        Returns the states that changed, each marked as including everything up to
        `flush_end`, the position of the last record of the flush. `page_minutes` are the
        events' (`page_minutes`), when the caller has them already.
        """
        changed_sessions: dict[str, SessionState] = {}
        changed_pages: dict[PageMinuteKey, PageMinuteState] = {}
        duplicates: set[Position] = set()
        shard_id = self.shard_id
        keys = self.page_minutes(events) if page_minutes is None else page_minutes
        get_session, get_page = self._sessions.get, self._pages.get
        # The hot path of the processor: each hash and the minute once per record.
        for item, key in zip(events, keys, strict=True):
            event, position = item.event, item.position
            session = get_session(event.session_id)
            page = get_page(key)
            if session is None or page is None:
                raise KeyError(f"state for {event.session_id} / {key} was not read first")
            here = item.place
            if here is None:
                here = where_hash(shard_id, position)
            id_hash = hash64(event.event_id)
            if not first_sighting(session, id_hash, here):
                duplicates.add(position)
                continue
            page_hash = _page_hash(key.page)
            minute = int(event.seconds // 60)  # minute_number(event.timestamp)
            if not session.includes(shard_id, position):
                remember_id(session, id_hash, here)
                apply_to_session(session, event, key.page, page_hash, here, minute)
                changed_sessions[event.session_id] = session
            if not page.includes(position):
                first_touch = session.first_touches.get((minute, page_hash))
                agent = event.user_agent
                is_bot = agent is not None and agent_of(agent).is_bot
                apply_to_page(page, event, first_touch, here, is_bot)
                changed_pages[key] = page
        end = ShardPosition(shard_id, flush_end)
        for session in changed_sessions.values():
            session.written_by = end
        for page in changed_pages.values():
            page.position = flush_end
        return Changes(
            list(changed_sessions.values()), list(changed_pages.values()), frozenset(duplicates)
        )

    def forget(self, sessions: Iterable[str], pages: Iterable[PageMinuteKey]) -> None:
        """Drop these cached states: the next touch reads them from the store again."""
        for session_id in sessions:
            self._sessions.discard(session_id)
        for key in pages:
            self._pages.discard(key)

    def at(self, now: float) -> None:
        """The processor's clock for what is used next (idle states are forgotten by it)."""
        self._sessions.now = now
        self._pages.now = now

    def trim(
        self,
        *,
        pinned_sessions: Container[str] = (),
        pinned_pages: Container[PageMinuteKey] = (),
        sessions_idle_before: float | None = None,
        pages_idle_before: float | None = None,
    ) -> None:
        """Forget least recently used states beyond capacity and idle ones, never a pinned
        one (changed and not written yet): a forgotten state is read again when touched."""
        self._sessions.trim(pinned_sessions, sessions_idle_before)
        self._pages.trim(pinned_pages, pages_idle_before)

    def forget_all(self) -> None:
        """Drop every cached state (lease lost: another worker owns the shard now)."""
        self._sessions.clear()
        self._pages.clear()

    @property
    def cached(self) -> tuple[int, int]:
        return len(self._sessions), len(self._pages)
