"""Reading the workers' tables back: page stats merged over shards, sessions, alerts.

Page stats are stored one item per (page, minute, shard); every reader here sums the shards'
items (exact, since a session is counted on one shard only). The pure merge functions are
separate from the reads so they are tested without AWS.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from clickstream.stores.page_stats import (
    is_rollup,
)


@dataclass(frozen=True, slots=True)
class PageTotals:
    page: str
    views: int
    clicks: int
    sessions: int
    """Distinct sessions per minute, summed over the minutes shown."""
    bot_views: int
    """Bots' page views, apart from people's `views` (docs/enrichment.md)."""
    minutes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_pages(items: Iterable[Mapping[str, Any]]) -> list[PageTotals]:
    """Sum per-shard page-minute items into one row per page, busiest first (rollup items
    of a page-stats scan are left out: their pages' items are counted already)."""
    views: Counter[str] = Counter()
    clicks: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    bots: Counter[str] = Counter()
    minutes: dict[str, set[str]] = {}
    for item in items:
        if is_rollup(item):
            continue
        page = str(item["page"])
        views[page] += int(item.get("views", 0))
        clicks[page] += int(item.get("clicks", 0))
        sessions[page] += int(item.get("sessions", 0))
        bots[page] += int(item.get("bot_views", 0))
        minutes.setdefault(page, set()).add(str(item["window"]))
    rows = [
        PageTotals(page, views[page], clicks[page], sessions[page], bots[page], len(minutes[page]))
        for page in minutes
    ]
    return sorted(rows, key=lambda row: (-row.views, -row.clicks, row.page))


def merge_page_minutes(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """page -> minute -> {views, clicks, sessions, bot_views}, shards summed (the manifest's
    shape: people's counters, and bots' page views apart)."""
    merged: dict[str, dict[str, dict[str, int]]] = {}
    for item in items:
        bucket = merged.setdefault(str(item["page"]), {}).setdefault(
            str(item["window"]), {"views": 0, "clicks": 0, "sessions": 0, "bot_views": 0}
        )
        for field in ("views", "clicks", "sessions", "bot_views"):
            bucket[field] += int(item.get(field, 0))
    return merged
