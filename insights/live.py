"""The live dashboard's figures, as pure functions of what was read (no I/O, time passed in).

The dashboard reads what the workers already write: page-minute items (top pages), the
alerts table (alerts, shard progress), KCL's lease table (checkpoints) and the archive
(events per minute of every type, active sessions, dead letters, clicks). Archive objects
never change once written (a replay rewrites the same bytes under the same key), so each is
read once and kept as a small tally: counts per minute and type, each session's last event
time, dead letters per reason. Nothing here holds raw events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clickstream.kernel.events import minute_key
from clickstream.kernel.timestamps import from_iso
from insights.query import PageTotals, merge_pages

EVENT_TYPES: Final = ("page_view", "click", "scroll", "custom")
"""The chart's series, in stacking order; any other type is counted under `other`."""
OTHER: Final = "other"
TOP_PAGES: Final = 10
"""Rows of the dashboard's top pages."""


@dataclass(slots=True)
class RawTally:
    """One raw archive object, summed up: events per (minute, type), each session's last
    event time in it."""

    per_minute: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_seen: dict[str, datetime] = field(default_factory=dict)


def tally_raw(lines: Iterable[bytes]) -> RawTally:
    """A raw object's lines (the contract's JSON, as archived) summed up. The consumer
    archived only valid events, so a line that is not one is skipped, not fatal."""
    tally = RawTally()
    for line in lines:
        try:
            event = json.loads(line)
            at = from_iso(str(event["timestamp"]))
            session = str(event["session_id"])
        except (ValueError, KeyError, TypeError):
            continue
        kind = str(event.get("type"))
        tally.per_minute[(minute_key(at), kind if kind in EVENT_TYPES else OTHER)] += 1
        if at > tally.last_seen.get(session, at - timedelta(seconds=1)):
            tally.last_seen[session] = at
    return tally


def tally_dead_letters(lines: Iterable[bytes]) -> Counter[tuple[str, str]]:
    """A dead-letter object's records per (arrival minute, reason)."""
    reasons: Counter[tuple[str, str]] = Counter()
    for line in lines:
        try:
            letter = json.loads(line)
            reasons[(minute_key(from_iso(str(letter["arrival_time"]))), str(letter["reason"]))] += 1
        except (ValueError, KeyError, TypeError):
            continue  # the consumer wrote it; nothing to count a line it did not
    return reasons


def window_minutes(now: datetime, minutes: int) -> list[str]:
    """The last `minutes` minute keys up to and including now's, oldest first."""
    start = now.replace(second=0, microsecond=0)
    return [minute_key(start - timedelta(minutes=back)) for back in range(minutes - 1, -1, -1)]


def hours_covering(start: datetime, end: datetime) -> list[datetime]:
    """The whole UTC hours that overlap [start, end]: the archive partitions to list."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    found = []
    while hour <= end:
        found.append(hour)
        hour += timedelta(hours=1)
    return found


def events_per_minute(tallies: Iterable[RawTally], minutes: list[str]) -> list[dict[str, Any]]:
    """One row per minute of `minutes`: counts per event type and the total."""
    wanted = set(minutes)
    counts: Counter[tuple[str, str]] = Counter()
    for tally in tallies:
        for (minute, kind), count in tally.per_minute.items():
            if minute in wanted:
                counts[(minute, kind)] += count
    rows = []
    for minute in minutes:
        row: dict[str, Any] = {"minute": minute}
        for kind in (*EVENT_TYPES, OTHER):
            row[kind] = counts[(minute, kind)]
        row["total"] = sum(row[kind] for kind in (*EVENT_TYPES, OTHER))
        rows.append(row)
    return rows


def active_sessions(tallies: Iterable[RawTally], since: datetime) -> int:
    """Sessions whose last event is at `since` or later (their events may span objects)."""
    last: dict[str, datetime] = {}
    for tally in tallies:
        for session, at in tally.last_seen.items():
            if at >= since and (session not in last or at > last[session]):
                last[session] = at
    return len(last)


@dataclass(frozen=True, slots=True)
class PageRow(PageTotals):
    recent_views: int
    """Views in the last few minutes: "now"."""


def top_pages(
    items: Iterable[Mapping[str, Any]], *, recent_from: str, top: int = TOP_PAGES
) -> list[PageRow]:
    """Page-minute items (one per page, minute and shard) summed per page over the window,
    busiest first (`merge_pages`); `recent_views` counts the minutes from `recent_from` on."""
    items = list(items)
    recent: Counter[str] = Counter()
    for item in items:
        if str(item["window"]) >= recent_from:
            recent[str(item["page"])] += int(item.get("views", 0))
    return [
        PageRow(
            row.page,
            row.views,
            row.clicks,
            row.sessions,
            row.bot_views,
            row.minutes,
            recent[row.page],
        )
        for row in merge_pages(items)[:top]
    ]


def minutes_to_read(
    read_at: Mapping[str, datetime],
    minutes: Iterable[str],
    now: datetime,
    *,
    fresh_for: timedelta,
    settled_after: timedelta,
    settled_per_refresh: int,
) -> list[str]:
    """Which page-stats minutes to query again: those never read; those younger than
    `settled_after` (still counted at every flush) once their copy is `fresh_for` old; and,
    of the settled ones (changed only by late events), the `settled_per_refresh` read
    longest ago, so that they are all read again in turn without a burst of queries."""
    due, settled = [], []
    for minute in minutes:
        last = read_at.get(minute)
        if last is None:
            due.append(minute)
        elif now - from_iso(minute) < settled_after:
            if now - last >= fresh_for:
                due.append(minute)
        elif now - last >= fresh_for:
            settled.append(minute)
    settled.sort(key=lambda minute: read_at[minute])
    return sorted(due + settled[:settled_per_refresh])


@dataclass(frozen=True, slots=True)
class ShardLag:
    shard_id: str
    owner: str | None
    checkpoint: str | None
    millis_behind: int | None
    """The stream's answer to a read from the checkpoint: how far its newest record is."""
    state: str
    """caught up, behind, no lease yet, ended (closed by a reshard and finished), unknown."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shard_state(checkpoint: str | None, millis_behind: int | None, has_records: bool) -> str:
    """A shard's state from its checkpoint and a read of the stream just after it."""
    if checkpoint is None:
        return "no lease yet"
    if checkpoint == "SHARD_END":
        return "ended"
    if millis_behind is None:
        return "unknown"
    return "behind" if has_records else "caught up"
