"""The page-stats table's shapes and reads: page-minute items (a page's counters in one minute
on one shard), the rollups (one item per minute and shard listing its busiest pages) and the
`by-window` index that finds a minute's items. The workers write them
(`consumer.core.items`, `consumer.core.rollup`); the dashboard, `query pages`, the page
watch and the tools read them here.

The rollup lives under the page key `ROLLUP_PAGE`, which no page key can be (page keys are
paths or host names followed by a path). It has no `window_shard`, so the `by-window` index
(sparse) never lists it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from clickstream.kernel.dynamo import get_items, query_items

ROLLUP_PAGE: Final = "#top"


def listed_when_truncated(item: Mapping[str, Any]) -> frozenset[str] | None:
    """The pages a rollup item lists, when its shard had more pages that minute than it
    lists (the others are in their page-minute items only); None when it lists them all."""
    top = item.get("top", [])
    if int(item.get("pages", 0)) <= len(top):
        return None
    return frozenset(str(entry[0]) for entry in top)


def is_rollup(item: Mapping[str, Any]) -> bool:
    """Whether a page-stats item is a rollup, not a page-minute (readers of the whole table
    skip it)."""
    return item.get("page") == ROLLUP_PAGE


def page_minute_items(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page-minute items of a page-stats scan (its rollups left out)."""
    return [item for item in items if not is_rollup(item)]


def page_row(
    page: str, window: str, shard_id: str, views: Any, clicks: Any, sessions: Any
) -> dict[str, Any]:
    """One page's counters in one minute on one shard, as every reader of them returns it
    (the counters as DynamoDB gives them: numbers, made ints here)."""
    return {
        "page": page,
        "window": window,
        "shard_id": shard_id,
        "views": int(views),
        "clicks": int(clicks),
        "sessions": int(sessions),
    }


def rollup_rows(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A rollup item as the page-minute rows it summarises (page, window, shard, counters)."""
    window, shard_id = str(item["window"]), str(item["shard_id"])
    return [
        page_row(str(page), window, shard_id, views, clicks, sessions)
        for page, views, clicks, sessions in item.get("top", [])
    ]


@dataclass(frozen=True)
class MinuteRollups:
    """A minute's rollup items (every shard's) as rows, and what they leave out."""

    rows: list[dict[str, Any]]
    """Every page each rollup lists, with its counters."""
    truncated: dict[tuple[str, str], frozenset[str]]
    """(minute, shard) -> the pages its rollup lists, for the rollups that list only the
    shard's busiest pages: what `hidden_rows` takes to find the others in their page-minute
    items."""


def minute_rollups(items: Iterable[Mapping[str, Any]]) -> MinuteRollups:
    """Read one minute's rollup items (`consumer.sinks.rollups_for_minute`): the dashboard's
    live page counters and `query pages --minute` both start from this."""
    rows: list[dict[str, Any]] = []
    truncated: dict[tuple[str, str], frozenset[str]] = {}
    for item in items:
        rows += rollup_rows(item)
        listed = listed_when_truncated(item)
        if listed is not None:
            truncated[(str(item["window"]), str(item["shard_id"]))] = listed
    return MinuteRollups(rows, truncated)


def hidden_rows(
    page_items: Iterable[Mapping[str, Any]],
    listed: Mapping[tuple[str, str], frozenset[str]],
) -> list[dict[str, Any]]:
    """What truncated rollups leave out, from page-minute items: the rows of those items whose
    (minute, shard) rollup lists only the shard's busiest pages (`listed`, as
    `MinuteRollups.truncated` gives it) and not their page. With the rollups' rows, a page's
    totals are exact (a crawler's minute can push a popular page out of a shard's busiest
    100). The dashboard and `query pages --minute` both complete the rollups with them."""
    rows = []
    for item in page_items:
        page, window, shard_id = str(item["page"]), str(item["window"]), str(item["shard_id"])
        pages = listed.get((window, shard_id))
        if pages is not None and page not in pages:
            views, clicks = item.get("views", 0), item.get("clicks", 0)
            rows.append(page_row(page, window, shard_id, views, clicks, item.get("sessions", 0)))
    return rows


def page_sort_key(minute: str, shard_id: str) -> str:
    return f"{minute}#{shard_id}"


def rollup_rows_for_minute(client: Any, table: str, minute: str) -> list[dict[str, Any]]:
    """A minute's live page counters: every shard's rollup of it (one Query), as page-minute
    rows (each shard's busiest pages; `consumer.core.rollup`)."""
    return [row for item in rollups_for_minute(client, table, minute) for row in rollup_rows(item)]


def rollups_for_minute(client: Any, table: str, minute: str) -> list[dict[str, Any]]:
    """Every shard's rollup item of a minute (one Query)."""
    return query_items(
        client,
        TableName=table,
        KeyConditionExpression="page = :rollup AND begins_with(bucket_shard, :minute)",
        ExpressionAttributeValues={":rollup": {"S": ROLLUP_PAGE}, ":minute": {"S": minute + "#"}},
    )


def page_items_for_minute(
    client: Any, table: str, minute: str, shard_ids: Iterable[str]
) -> list[dict[str, Any]]:
    """The page-stats items of a minute: one query of the `by-window` index per shard (shards
    include closed ones) for the keys, then the items themselves.

    The index projects keys only: its keys never change, so a counter's rewrites cost the
    index nothing (with every attribute projected, each rewrite was billed twice).
    """
    keys: list[dict[str, Any]] = []
    for shard_id in shard_ids:
        keys += query_items(
            client,
            TableName=table,
            IndexName="by-window",
            KeyConditionExpression="window_shard = :key",
            ExpressionAttributeValues={":key": {"S": page_sort_key(minute, shard_id)}},
        )
    wanted = [{"page": key["page"], "bucket_shard": key["bucket_shard"]} for key in keys]
    return get_items(client, table, wanted)
