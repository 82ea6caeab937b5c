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

from clickstream.kernel.dynamo import from_dynamo, query_items
from clickstream.stores.page_stats import (
    hidden_rows,
    is_rollup,
    minute_rollups,
    page_items_for_minute,
    rollups_for_minute,
)


@dataclass(frozen=True, slots=True)
class PageTotals:
    page: str
    views: int
    clicks: int
    sessions: int
    """Distinct sessions per minute, summed over the minutes shown."""
    minutes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_pages(items: Iterable[Mapping[str, Any]]) -> list[PageTotals]:
    """Sum per-shard page-minute items into one row per page, busiest first (rollup items
    of a page-stats scan are left out: their pages' items are counted already)."""
    views: Counter[str] = Counter()
    clicks: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    minutes: dict[str, set[str]] = {}
    for item in items:
        if is_rollup(item):
            continue
        page = str(item["page"])
        views[page] += int(item.get("views", 0))
        clicks[page] += int(item.get("clicks", 0))
        sessions[page] += int(item.get("sessions", 0))
        minutes.setdefault(page, set()).add(str(item["window"]))
    rows = [
        PageTotals(page, views[page], clicks[page], sessions[page], len(minutes[page]))
        for page in minutes
    ]
    return sorted(rows, key=lambda row: (-row.views, -row.clicks, row.page))


def minute_page_rows(client: Any, table: str, minute: str) -> list[dict[str, Any]]:
    """A minute's page counters on every shard, each page counted once: the shards' live
    rollups (one Query, current within seconds), and where a shard's rollup lists only its
    busiest pages, that shard's other pages from their page-minute items (one query of the
    `by-window` index, then the items: as current as `query pages` without a minute)."""
    read = minute_rollups(rollups_for_minute(client, table, minute))
    if not read.truncated:
        return read.rows
    shards = [shard for _, shard in read.truncated]
    hidden = page_items_for_minute(client, table, minute, shards)
    return read.rows + hidden_rows(hidden, read.truncated)


def merge_page_minutes(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """page -> minute -> {views, clicks, sessions}, shards summed (the manifest's shape)."""
    merged: dict[str, dict[str, dict[str, int]]] = {}
    for item in items:
        bucket = merged.setdefault(str(item["page"]), {}).setdefault(
            str(item["window"]), {"views": 0, "clicks": 0, "sessions": 0}
        )
        for field in ("views", "clicks", "sessions"):
            bucket[field] += int(item.get(field, 0))
    return merged


def session(client: Any, table: str, session_id: str) -> dict[str, Any] | None:
    response = client.get_item(
        TableName=table, Key={"session_id": {"S": session_id}}, ConsistentRead=True
    )
    item = response.get("Item")
    return None if item is None else readable_session(from_dynamo(item))


def readable_session(item: Mapping[str, Any]) -> dict[str, Any]:
    """A session as its reader wants it: the binary attributes are the consumer's bookkeeping
    (page sketch, first touches, recent event ids), already summed up in the counters."""
    return {key: value for key, value in item.items() if not isinstance(value, bytes | bytearray)}


def alerts(
    client: Any, table: str, *, since: str | None = None, rules: Iterable[str]
) -> list[dict[str, Any]]:
    """Alerts of the given rules whose window is `since` (a minute) or later, oldest first.

    One query per rule: the sort key starts with the window, so `since` is a key condition.
    """
    found: list[dict[str, Any]] = []
    for rule in rules:
        condition = "#rule = :rule"
        values: dict[str, Any] = {":rule": {"S": rule}}
        if since:
            condition += " AND window_subject >= :since"
            values[":since"] = {"S": since}
        found += query_items(
            client,
            TableName=table,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#rule": "rule"},
            ExpressionAttributeValues=values,
        )
    return sorted(found, key=lambda item: (str(item["window"]), str(item["rule"])))
