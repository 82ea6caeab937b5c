"""The page-stats table's shapes and reads: page-minute items (a page's counters in one minute
on one shard), the rollups (one item per minute and shard listing its busiest pages) and the
`by-window` index that finds a minute's items. The workers write them through
`PageStatsTable` (their live rollups kept by `consumer.core.rollup`); the dashboard,
`query pages`, the page watch and the tools read them here.

A page-minute item is billed a write unit each time it is written, and a live dashboard
wants every busy page's counter within seconds: so what is live is one rollup item per
minute and shard, written on the short cadence, listing the shard's `MAX_ROLLUP_PAGES`
busiest pages of that minute with their counters (exact, the same states the page-minute
items hold); the page-minute items themselves are written on the slower cadence of the
session items, for `query pages` and the page-traffic rule (`consumer.core.rollup`).

The rollup lives under the page key `ROLLUP_PAGE`, which no page key can be (page keys are
paths or host names followed by a path). It has no `window_shard`, so the `by-window` index
(sparse) never lists it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from clickstream.kernel.dynamo import get_items, query_items, scan_table
from clickstream.kernel.retry import Backoff
from clickstream.stores.attributes import stored_update_time
from clickstream.stores.guarded import put_guarded
from clickstream.stores.limits import KeySchema
from clickstream.stores.positions import Position

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
    page: str,
    window: str,
    shard_id: str,
    views: Any,
    clicks: Any,
    sessions: Any,
    bot_views: Any = 0,
) -> dict[str, Any]:
    """One page's counters in one minute on one shard, as every reader of them returns it
    (the counters as DynamoDB gives them: numbers, made ints here): people's, and the page
    views of bots apart."""
    return {
        "page": page,
        "window": window,
        "shard_id": shard_id,
        "views": int(views),
        "clicks": int(clicks),
        "sessions": int(sessions),
        "bot_views": int(bot_views),
    }


def rollup_rows(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A rollup item as the page-minute rows it summarises (page, window, shard, counters)."""
    window, shard_id = str(item["window"]), str(item["shard_id"])
    return [
        page_row(str(page), window, shard_id, views, clicks, sessions, bots[0] if bots else 0)
        for page, views, clicks, sessions, *bots in item.get("top", [])
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
            sessions, bots = item.get("sessions", 0), item.get("bot_views", 0)
            rows.append(page_row(page, window, shard_id, views, clicks, sessions, bots))
    return rows


def page_sort_key(minute: str, shard_id: str) -> str:
    return f"{minute}#{shard_id}"


def rollup_rows_for_minute(client: Any, table: str, minute: str) -> list[dict[str, Any]]:
    """A minute's live page counters: every shard's rollup of it (one Query), as page-minute
    rows (each shard's busiest pages)."""
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


class PageMinuteKey(NamedTuple):
    page: str
    minute: str


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
    """People's: a bot's events are counted in `bot_views` only (`consumer.core.aggregate`)."""
    bot_views: int = 0

    @property
    def key(self) -> PageMinuteKey:
        return PageMinuteKey(self.page, self.minute)

    def includes(self, position: Position) -> bool:
        return self.position is not None and position <= self.position


PAGE_STATS_KEYS: Final = KeySchema(("page", "window_shard"), ("bucket_shard", "page"))


PAGE_WRITE_CONDITION: Final = "attribute_not_exists(#position) OR #position <= :position"


PAGE_INDEX_PROJECTION: Final = "KEYS_ONLY"
"""The page-stats `by-window` index's projection in the template (a unit test compares)."""


def page_item(state: PageMinuteState, expires_at: int, updated_at: datetime) -> dict[str, Any]:
    if state.position is None:
        raise ValueError(f"page-minute {state.key} has no position to write")
    return {
        "page": state.page,
        "bucket_shard": page_sort_key(state.minute, state.shard_id),
        "window": state.minute,
        # The `by-window` index's key: one query per shard answers "top pages this minute".
        "window_shard": page_sort_key(state.minute, state.shard_id),
        "shard_id": state.shard_id,
        "position": state.position.encode(),
        "views": state.views,
        "clicks": state.clicks,
        "sessions": state.sessions,
        "updated_at": stored_update_time(updated_at),
        "expires_at": expires_at,
        # Left out when none (most page-minutes): an item's size is its write units.
        **({"bot_views": state.bot_views} if state.bot_views else {}),
    }


def page_from_item(item: Mapping[str, Any]) -> PageMinuteState:
    return PageMinuteState(
        page=str(item["page"]),
        minute=str(item["window"]),
        shard_id=str(item["shard_id"]),
        position=Position.decode(str(item["position"])),
        views=int(item.get("views", 0)),
        clicks=int(item.get("clicks", 0)),
        sessions=int(item.get("sessions", 0)),
        bot_views=int(item.get("bot_views", 0)),
    )


def page_key(key: PageMinuteKey, shard_id: str) -> dict[str, str]:
    return {"page": key.page, "bucket_shard": page_sort_key(key.minute, shard_id)}


MAX_ROLLUP_PAGES: Final = 100
"""At most this many pages per (minute, shard): 100 keys of at most 512 bytes keep the item
far inside DynamoDB's 400 KB; a site's top pages are inside it on every shard."""


@dataclass(slots=True)
class MinuteRollup:
    minute: str
    shard_id: str
    position: Position | None = None
    """The last record of the shard it includes."""
    pages: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """page key -> (views, clicks, distinct sessions, bot views) on this shard in this
    minute: people's counters, then bots' page views."""
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
        self.pages[page.page] = (page.views, page.clicks, page.sessions, page.bot_views)
        if self.position is None or position > self.position:
            self.position = position

    def includes(self, position: Position) -> bool:
        """Whether it already holds the states of records up to `position`: a rollup read
        back from a writer that got further along the shard (the last owner, before a
        lease moved) holds every page's state at its position, and a replay's states up to
        there are older, never newer."""
        return self.position is not None and position <= self.position

    def top(self) -> list[tuple[str | int, ...]]:
        """The busiest pages (people's views, then clicks, then bots' views), at most
        `MAX_ROLLUP_PAGES`, each (page, views, clicks, sessions[, bot views]): the bots'
        count only where there are some, so a rollup without bots is the size it was."""
        ranked = sorted(self.pages.items(), key=_busiest_first)
        return [
            (page, *counts) if counts[3] else (page, *counts[:3])
            for page, counts in ranked[:MAX_ROLLUP_PAGES]
        ]


def _busiest_first(entry: tuple[str, tuple[int, int, int, int]]) -> tuple[int, int, int, str]:
    page, (views, clicks, _, bot_views) = entry
    return -views, -clicks, -bot_views, page


def rollup_key(minute: str, shard_id: str) -> dict[str, str]:
    return {"page": ROLLUP_PAGE, "bucket_shard": page_sort_key(minute, shard_id)}


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
            str(page): (int(views), int(clicks), int(sessions), int(bots[0]) if bots else 0)
            for page, views, clicks, sessions, *bots in item.get("top", [])
        },
        stored_pages=int(item.get("pages", 0)),
    )


class PageStatsTable:
    """Reads and writes of the page-stats table; everything else goes through it."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def put_page(
        self, state: PageMinuteState, *, expires_at: int, now: datetime, backoff: Backoff, log: Any
    ) -> str:
        """Write a page-minute unless the stored one is newer (`put_guarded`'s answer)."""
        return self._put(page_item(state, expires_at, now), backoff=backoff, log=log)

    def put_rollup(
        self, rollup: MinuteRollup, *, expires_at: int, now: datetime, backoff: Backoff, log: Any
    ) -> str:
        """Write a minute's rollup unless the stored one is newer (`put_guarded`'s answer)."""
        return self._put(rollup_item(rollup, expires_at, now), backoff=backoff, log=log)

    def _put(self, item: dict[str, Any], *, backoff: Backoff, log: Any) -> str:
        values = {":position": item["position"]}
        return put_guarded(
            self.client, self.name, item, PAGE_WRITE_CONDITION, values, backoff=backoff, log=log
        )

    def rollups_for_minute(self, minute: str) -> list[dict[str, Any]]:
        return rollups_for_minute(self.client, self.name, minute)

    def page_items_for_minute(self, minute: str, shard_ids: Iterable[str]) -> list[dict[str, Any]]:
        return page_items_for_minute(self.client, self.name, minute, shard_ids)

    def page_items_between(
        self, page: str, first_minute: str, last_minute: str
    ) -> list[dict[str, Any]]:
        return page_items_between(self.client, self.name, page, first_minute, last_minute)

    def page_minute_items(self) -> list[dict[str, Any]]:
        """Every page-minute item of the table (a scan, its rollups left out)."""
        return page_minute_items(scan_table(self.client, self.name))

    def views_by_page(self, minute: str, shard_ids: Iterable[str]) -> dict[str, int]:
        """page -> views of one minute, every shard's page-minute items summed (the
        page-traffic rule's reading)."""
        return minute_views(self.page_items_for_minute(minute, shard_ids))

    def minute_rows(self, minute: str) -> list[dict[str, Any]]:
        """A minute's page counters on every shard, each page counted once: the shards'
        live rollups (one Query, current within seconds), and where a shard's rollup lists
        only its busiest pages, that shard's other pages from their page-minute items (one
        query of the `by-window` index, then the items)."""
        read = minute_rollups(self.rollups_for_minute(minute))
        if not read.truncated:
            return read.rows
        shards = [shard for _, shard in read.truncated]
        hidden = self.page_items_for_minute(minute, shards)
        return read.rows + hidden_rows(hidden, read.truncated)


def page_items_between(
    client: Any, table: str, page: str, first_minute: str, last_minute: str
) -> list[dict[str, Any]]:
    """One page's page-minute items (every shard's) from `first_minute` to `last_minute`:
    one Query of the table's own key (page, then minute#shard)."""
    return query_items(
        client,
        TableName=table,
        KeyConditionExpression="page = :page AND bucket_shard BETWEEN :first AND :last",
        ExpressionAttributeValues={
            ":page": {"S": page},
            ":first": {"S": first_minute + "#"},
            # "$" sorts right after "#": every shard of the last minute, nothing after it.
            ":last": {"S": last_minute + "$"},
        },
    )


def minute_views(items: Iterable[dict[str, Any]]) -> dict[str, int]:
    """page -> views of one minute, the shards' items summed."""
    views: Counter[str] = Counter()
    for item in items:
        views[str(item["page"])] += int(item.get("views", 0))
    return {page: count for page, count in views.items() if count}
