"""A shard's live page counters: one item per (minute, shard) holding its busiest pages. Pure.

A page-minute item is billed a write unit each time it is written, and a live dashboard
wants every busy page's counter within seconds: written every two seconds, the per-page
items were the largest part of what a small site paid per event. So what is live is one
item per minute and shard, written on the short cadence, listing the shard's
`MAX_ROLLUP_PAGES` busiest pages of that minute with their counters (exact, the same states
the page-minute items hold); the page-minute items themselves are written on the slower
cadence of the session items, for `query pages` and the page-traffic rule.

The rollup lives in the page-stats table under the page key `ROLLUP_PAGE`, which no page key
can be (page keys are paths or host names followed by a path). It has no `window_shard`, so
the `by-window` index (sparse) never lists it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from clickstream.stores.page_stats import ROLLUP_PAGE
from consumer.core.pending import DirtyStates
from consumer.core.positions import Position
from consumer.core.state import PageMinuteState

MAX_ROLLUP_PAGES: Final = 100
"""At most this many pages per (minute, shard): 100 keys of at most 512 bytes keep the item
far inside DynamoDB's 400 KB; a site's top pages are inside it on every shard."""


@dataclass(slots=True)
class MinuteRollup:
    minute: str
    shard_id: str
    position: Position | None = None
    """The last record of the shard it includes."""
    pages: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """page key -> (views, clicks, distinct sessions) on this shard in this minute."""
    stored_pages: int = 0
    """How many pages the stored item it was read from counted. An item lists only its
    `MAX_ROLLUP_PAGES` busiest, so a rollup read back (a new lease owner, a refused write)
    knows just those by name; its item must still count the others, or readers would take
    it for complete and miss the pages only their page-minute items hold."""

    @property
    def page_count(self) -> int:
        """The pages of this shard-minute, as far as it knows (at least the stored count)."""
        return max(len(self.pages), self.stored_pages)

    def update(self, page: PageMinuteState, position: Position) -> None:
        self.pages[page.page] = (page.views, page.clicks, page.sessions)
        if self.position is None or position > self.position:
            self.position = position

    def includes(self, position: Position) -> bool:
        """Whether it already holds the states of records up to `position`: a rollup read
        back from a writer that got further along the shard (the last owner, before a
        lease moved) holds every page's state at its position, and a replay's states up to
        there are older, never newer."""
        return self.position is not None and position <= self.position

    def top(self) -> list[tuple[str, int, int, int]]:
        """The busiest pages (views, then clicks), at most `MAX_ROLLUP_PAGES`."""
        ranked = sorted(self.pages.items(), key=_busiest_first)
        return [(page, *counts) for page, counts in ranked[:MAX_ROLLUP_PAGES]]


def _busiest_first(entry: tuple[str, tuple[int, int, int]]) -> tuple[int, int, str]:
    page, (views, clicks, _) = entry
    return -views, -clicks, page


def rollup_sort_key(minute: str, shard_id: str) -> str:
    return f"{minute}#{shard_id}"


def rollup_key(minute: str, shard_id: str) -> dict[str, str]:
    return {"page": ROLLUP_PAGE, "bucket_shard": rollup_sort_key(minute, shard_id)}


def rollup_item(rollup: MinuteRollup, expires_at: int, updated_at: datetime) -> dict[str, Any]:
    if rollup.position is None:
        raise ValueError(f"rollup {rollup.minute} has no position to write")
    return {
        **rollup_key(rollup.minute, rollup.shard_id),
        "window": rollup.minute,
        "shard_id": rollup.shard_id,
        "position": rollup.position.encode(),
        "pages": rollup.page_count,
        "top": [list(entry) for entry in rollup.top()],
        "updated_at": updated_at.isoformat(timespec="milliseconds"),
        "expires_at": expires_at,
    }


def rollup_from_item(item: Mapping[str, Any]) -> MinuteRollup:
    return MinuteRollup(
        minute=str(item["window"]),
        shard_id=str(item["shard_id"]),
        position=Position.decode(str(item["position"])),
        pages={
            str(page): (int(views), int(clicks), int(sessions))
            for page, views, clicks, sessions in item.get("top", [])
        },
        stored_pages=int(item.get("pages", 0)),
    )


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
