"""What a record processor holds between writes, and when each part is due. Pure.

Each kind of output has its own cadence (`Cadences`), because each costs and serves
differently: a minute's live page counters (one rollup item per minute and shard,
`consumer.core.rollup`) are read live by the dashboard, so they are written within seconds
of a change; session and page-minute items are read for reports and by the page-traffic
rule, so each is written once it has waited `item_seconds`, however many events changed it
meanwhile; archive
objects are billed per PUT and read best large, so the records of a whole commit window go
out together. The checkpoint closes a window: every state is written and every record
archived up to its last record, so a restart from there loses nothing, and the positions in
the items make whatever it replays harmless (`consumer.core.aggregate`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from clickstream.stores.alerts import ShardProgress
from clickstream.stores.positions import Position
from consumer.core.batch import DeadLetter
from consumer.core.positioned import PositionedEvent

K = TypeVar("K")
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Cadences:
    """How long each output may wait (seconds of the processor's clock), and how much."""

    live_seconds: float = 1.0
    """A changed page counter is in its minute's live rollup within this (plus one poll)."""
    item_seconds: float = 50.0
    """A changed session or page-minute item is written within this (plus one poll)."""
    commit_seconds: float = 60.0
    """Records are archived and checkpointed within this (plus one poll): archive objects
    hold this long of the shard's records, and a restart replays at most about this much."""
    max_records: int = 100_000
    """A commit comes sooner when this many records wait (memory)."""
    max_bytes: int = 64 * 1024 * 1024
    """... or this many bytes of them."""

    def __post_init__(self) -> None:
        if not 0 < self.live_seconds <= self.item_seconds <= self.commit_seconds:
            raise ValueError(
                "cadences must satisfy 0 < live_seconds <= item_seconds <= commit_seconds"
            )

    @classmethod
    def by_records(cls, max_records: int) -> Cadences:
        """Every output written at each commit, and a commit every `max_records` records
        (tests that place crashes between commits)."""
        hour = 3600.0
        return cls(hour, hour, hour, max_records=max_records)

    def commit_due(self, window: CommitWindow, now: float) -> bool:
        if window.started_at is None:
            return False
        return (
            window.record_count >= self.max_records
            or window.byte_count >= self.max_bytes
            or now - window.started_at >= self.commit_seconds
        )


@dataclass(slots=True)
class CommitWindow:
    """Every record received since the last checkpoint, as the archive will keep it."""

    events: list[PositionedEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    first_position: Position | None = None
    last_position: Position | None = None
    started_at: float | None = None
    record_count: int = 0
    byte_count: int = 0
    suppressed: int = 0
    """Events dropped as an erased person's (`clickstream.stores.suppression`)."""

    def received(
        self, first: Position, last: Position, records: int, size: int, now: float
    ) -> None:
        """Count a delivery's records (events, duplicates, dead letters: `records` of them,
        `size` bytes, from `first` to `last`) into the window."""
        if self.started_at is None:
            self.started_at = now
            self.first_position = first
        self.last_position = last
        self.record_count += records
        self.byte_count += size

    @property
    def is_empty(self) -> bool:
        return self.record_count == 0


@dataclass(slots=True)
class Dirty(Generic[S]):
    state: S
    since: float
    """When it first changed after its last write (the processor's clock)."""
    from_position: Position
    """No record before this position changed it since its last write."""


class DirtyStates(Generic[K, S]):
    """States changed since they were last written, oldest change first."""

    def __init__(self) -> None:
        self._entries: dict[K, Dirty[S]] = {}

    def mark(self, key: K, state: S, now: float, from_position: Position) -> None:
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = Dirty(state, now, from_position)
        else:
            entry.state = state  # a state read again after a guard keeps its first change

    def due(self, now: float, wait: float) -> list[tuple[K, S]]:
        """The states that have waited `wait` seconds or more (insertion order is age order)."""
        found = []
        for key, entry in self._entries.items():
            if now - entry.since < wait:
                break
            found.append((key, entry.state))
        return found

    def oldest_position(self) -> Position | None:
        """The first position of the oldest change not written (positions grow with age)."""
        for entry in self._entries.values():
            return entry.from_position
        return None

    def all(self) -> list[tuple[K, S]]:
        return [(key, entry.state) for key, entry in self._entries.items()]

    def written(self, keys: Iterable[K]) -> None:
        for key in keys:
            self._entries.pop(key, None)

    def entry(self, key: K) -> Dirty[S] | None:
        return self._entries.get(key)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


class Watermark:
    """The newest event time whose page-minutes are all written: what a shard tells the
    page-traffic rule (which judges a minute once every shard's watermark has passed it)."""

    def __init__(self) -> None:
        self.value: datetime | None = None
        self._newest: datetime | None = None
        self._pending: deque[tuple[Position, datetime]] = deque()
        """(a delivery's last position, the newest event time up to it), oldest first."""

    def applied(self, last: Position, newest: datetime | None) -> None:
        """A delivery ending at `last` was applied; `newest` is its newest event time."""
        if newest is not None and (self._newest is None or newest > self._newest):
            self._newest = newest
        if self._newest is not None:
            self._pending.append((last, self._newest))

    def written(self, oldest_unwritten: Position | None) -> None:
        """Page-minutes were written; `oldest_unwritten` is where the oldest change still
        waiting began (None: none waits)."""
        pending = self._pending
        while pending and (oldest_unwritten is None or pending[0][0] < oldest_unwritten):
            _, self.value = pending.popleft()

    def forget_pending(self) -> None:
        self._pending.clear()


@dataclass(slots=True)
class ProgressReports:
    """When a shard tells the page rule how far it is (`ShardProgress`): when what it would
    say changed, at most every `interval_seconds` (a busy shard flips between caught up and
    not all the time), and always at shard end. It keeps since when the shard has been caught
    up with nothing new arriving, which the rule waits on (`stream_watermark`'s settle): a
    shard that a slow producer keeps sending to stays caught up between its records, yet
    its next record may still belong to its newest minute. Clocks are the caller's."""

    interval_seconds: float
    caught_up: bool = False
    caught_up_since: datetime | None = None
    _reported: tuple[datetime | None, bool, datetime | None] | None = None
    _reported_at: float = float("-inf")

    def observe(self, caught_up: bool, wall: datetime, *, received: bool = False) -> None:
        """What a delivery left: whether the shard is caught up, and whether records came."""
        if caught_up and (received or not self.caught_up):
            self.caught_up_since = wall
        self.caught_up = caught_up

    def due(
        self, shard_id: str, watermark: datetime | None, now: float, *, ended: bool = False
    ) -> ShardProgress | None:
        """The report to send now (and taken as sent), or None."""
        state = (watermark, self.caught_up, self.caught_up_since)
        # Never reported: `_reported` is None (unequal) and `_reported_at` -inf (long ago).
        too_soon = now - self._reported_at < self.interval_seconds
        if not ended and (state == self._reported or too_soon):
            return None
        self._reported, self._reported_at = state, now
        since = self.caught_up_since if self.caught_up else None
        return ShardProgress(shard_id, watermark, self.caught_up, ended, since)
