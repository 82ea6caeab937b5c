"""A shard's live rollups while it writes: read from the store on a minute's first touch,
changed with its page-minutes, written on the live cadence. The rollup's shape, why it
exists and its reads are the page-stats store's (`clickstream.stores.page_stats`). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from clickstream.stores.page_stats import MinuteRollup, PageMinuteState
from clickstream.stores.positions import Position
from consumer.core.pending import DirtyStates


class LiveRollups:
    """One shard's rollups of recent minutes: read from the store on a minute's first touch
    (a restarted processor carries on the stored one), changed with its page-minutes,
    written on the live cadence (`dirty`), dropped once unused for a while."""

    def __init__(self, shard_id: str) -> None:
        self.shard_id = shard_id
        self.dirty: DirtyStates[str, MinuteRollup] = DirtyStates()
        self._rollups: dict[str, MinuteRollup] = {}
        self._used: dict[str, float] = {}

    def missing(self, pages: Iterable[PageMinuteState]) -> set[str]:
        return {page.minute for page in pages} - self._rollups.keys()

    def remember(self, loaded: Mapping[str, MinuteRollup | None]) -> None:
        for minute, rollup in loaded.items():
            self._rollups[minute] = rollup or MinuteRollup(minute, self.shard_id)

    def changed(
        self, pages: Iterable[PageMinuteState], last: Position, now: float, first: Position
    ) -> None:
        """Page-minutes changed by records from `first` to `last` (their minutes' rollups
        must be remembered first).

        A rollup takes them only when it does not already include `last`. A replaying
        owner's page states are behind the stored rollup until the replay passes it: taken,
        they would be written at the stored position (it never moves back), and the rollup
        would claim states it lacks; a later write refused as older would then drop the
        replay's own updates for good (readers of the rollup would see a page short)."""
        by_minute: dict[str, list[PageMinuteState]] = {}
        for page in pages:
            by_minute.setdefault(page.minute, []).append(page)
        for minute, changed in by_minute.items():
            self._used[minute] = now
            rollup = self._rollups[minute]
            if rollup.includes(last):
                continue
            for page in changed:
                rollup.update(page, last)
            self.dirty.mark(minute, rollup, now, first)

    def forget_idle(self, before: float) -> None:
        """Drop rollups unused since `before` that wait for no write."""
        for minute in [m for m, used in self._used.items() if used < before]:
            if minute not in self.dirty:
                del self._used[minute]
                self._rollups.pop(minute, None)

    def forget(self, minutes: Iterable[str]) -> None:
        """Drop these rollups (the store holds a newer one): read again on the next touch."""
        for minute in minutes:
            self.dirty.written([minute])
            self._rollups.pop(minute, None)
            self._used.pop(minute, None)

    def clear(self) -> None:
        self.dirty.clear()
        self._rollups.clear()
        self._used.clear()
