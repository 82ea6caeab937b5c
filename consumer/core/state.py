"""The states a worker keeps and stores: a session's (one per session, complete on its shard)
and a page's share of one minute on one shard. Pure values; `consumer.core.aggregate` folds
records into them and `consumer.core.items` maps them to and from DynamoDB items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from consumer.core.positions import Position
from consumer.core.sketch import DistinctCounter, RecentIds, Touches


class PageMinuteKey(NamedTuple):
    page: str
    minute: str


@dataclass(frozen=True, slots=True)
class ShardPosition:
    """Where a record sits: its shard and its position there."""

    shard_id: str
    position: Position


@dataclass(slots=True)
class SessionState:
    session_id: str
    written_by: ShardPosition | None = None
    """The shard and position of the last record this state includes (None: nothing yet)."""
    events: int = 0
    page_views: int = 0
    clicks: int = 0
    scrolls: int = 0
    custom: int = 0
    first_seen: datetime | None = None
    first_event_id: str = ""
    entry_page: str | None = None
    last_seen: datetime | None = None
    last_event_id: str = ""
    exit_page: str | None = None
    user_agent: str | None = None
    pages: DistinctCounter = field(default_factory=DistinctCounter)
    """Distinct page keys: exact up to a bound, estimated beyond (`consumer.core.sketch`)."""
    first_touches: Touches = field(default_factory=dict)
    """(minute, page) -> where the session first touched that page in that minute (hashed)."""
    touches_per_minute: dict[int, int] = field(default_factory=dict, compare=False, repr=False)
    """Minute -> how many of `first_touches` are in it: derived (from `first_touches` when
    the state is made, then kept by `apply_to_session`), never stored; the bot rule's busiest
    minute reads it instead of counting the touches at every delivery."""
    recent_ids: RecentIds = field(default_factory=dict)
    """The session's most recent event ids -> where each was first seen (hashed)."""
    previous_at: datetime | None = None
    """Time of the event applied last (arrival order): the start of the next gap."""
    gap_count: int = 0
    gap_mean: float = 0.0
    gap_m2: float = 0.0
    """Running mean and sum of squared differences (Welford) of the gaps between events."""
    bot_score: float = 0.0
    bot_alerted: bool = False
    """A bot alert was raised for this session (it is raised once)."""

    def __post_init__(self) -> None:
        if self.first_touches and not self.touches_per_minute:
            per_minute = self.touches_per_minute
            for minute, _ in self.first_touches:
                per_minute[minute] = per_minute.get(minute, 0) + 1

    @property
    def duration_seconds(self) -> float:
        if self.first_seen is None or self.last_seen is None:
            return 0.0
        return (self.last_seen - self.first_seen).total_seconds()

    @property
    def gap_variation(self) -> float:
        """Coefficient of variation of the gaps between events (0: a metronome)."""
        if self.gap_count < 2 or self.gap_mean <= 0:
            return 0.0 if self.gap_count >= 2 else float("inf")
        return math.sqrt(self.gap_m2 / (self.gap_count - 1)) / self.gap_mean

    def includes(self, shard_id: str, position: Position) -> bool:
        """Whether the record at this spot is already counted in this state."""
        return (
            self.written_by is not None
            and self.written_by.shard_id == shard_id
            and position <= self.written_by.position
        )


@dataclass(slots=True)
class PageMinuteState:
    """One shard's share of one page in one minute."""

    page: str
    minute: str
    shard_id: str
    position: Position | None = None
    views: int = 0
    clicks: int = 0
    sessions: int = 0

    @property
    def key(self) -> PageMinuteKey:
        return PageMinuteKey(self.page, self.minute)

    def includes(self, position: Position) -> bool:
        return self.position is not None and position <= self.position
