"""What one shard's pipeline holds between deliveries: the aggregator's cache, the commit
window, the states waiting for their cadence and how far they go. Pure; the pipeline
(`consumer.pipeline`) owns it and its guards (`consumer.guards`) work on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clickstream.stores.page_stats import PageMinuteKey, PageMinuteState
from clickstream.stores.positions import Position
from clickstream.stores.sessions import SessionState
from consumer.core.aggregate import ShardAggregator
from consumer.core.pending import CommitWindow, DirtyStates


def _totals() -> dict[str, int]:
    return dict.fromkeys(
        (
            "events",
            "duplicates",
            "dead_letters",
            "suppressed",
            "flushes",
            "items_written",
            "alerts",
        ),
        0,
    )


@dataclass(slots=True)
class ShardState:
    aggregator: ShardAggregator
    window: CommitWindow = field(default_factory=CommitWindow)
    dirty_sessions: DirtyStates[str, SessionState] = field(default_factory=DirtyStates)
    dirty_pages: DirtyStates[PageMinuteKey, PageMinuteState] = field(default_factory=DirtyStates)
    applied_end: Position | None = None
    """The last record folded into the cached states."""
    totals: dict[str, int] = field(default_factory=_totals)
    """What this processor did since it started, for its logs and the tests."""

    def drop_pending(self) -> None:
        """Forget every record not written (a lost lease, a fence): the next owner replays."""
        self.window = CommitWindow()
        self.dirty_sessions.clear()
        self.dirty_pages.clear()
        self.aggregator.forget_all()
