"""The sessions table: one item per session, read by its id. A session lives on one shard
(the stream's partition key is the session id), so the worker that holds the shard keeps
the session's whole state (`SessionState`) and writes it whole with the position guard
(`clickstream.stores.guarded`); a reshard moves it to a child shard, whose positions start
over (`SESSION_WRITE_CONDITION`). The binary attributes are the workers' bookkeeping (the
page sketch, first touches, recent event ids: `clickstream.stores.sketch`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from clickstream.kernel.dynamo import from_dynamo, scan_table, to_dynamo
from clickstream.kernel.enrichment.acquisition import DIRECT, NONE
from clickstream.kernel.enrichment.channels import channel_of
from clickstream.kernel.enrichment.columns import (
    ACQUISITION_COLUMNS,
    ENGAGED_SECONDS,
    AcquisitionRow,
)
from clickstream.kernel.enrichment.useragent import agent_of
from clickstream.kernel.retry import Backoff
from clickstream.kernel.timestamps import from_iso_or_none
from clickstream.stores.attributes import stored_bytes, stored_time
from clickstream.stores.guarded import put_guarded
from clickstream.stores.limits import KeySchema
from clickstream.stores.positions import Position
from clickstream.stores.sketch import (
    DistinctCounter,
    RecentIds,
    Touches,
    recent_from_bytes,
    recent_to_bytes,
    touches_from_bytes,
    touches_to_bytes,
)


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
    """Distinct page keys: exact up to a bound, estimated beyond (`clickstream.stores.sketch`)."""
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
    landing_at: datetime | None = None
    landing_event_id: str = ""
    """The landing: the session's first page view (by time, then event id) seen so far."""
    acquisition: AcquisitionRow | None = None
    """What the landing says of where the visit came from (`ACQUISITION_COLUMNS`)."""
    country: str | None = None
    """The first country an event of the session gave."""

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
    def bounced(self) -> bool:
        """One page view or none, no click, no custom event, and shorter than
        `ENGAGED_SECONDS` (as the `sessions` view says: docs/enrichment.md)."""
        return (
            self.page_views <= 1
            and self.clicks == 0
            and self.custom == 0
            and self.duration_seconds < ENGAGED_SECONDS
        )

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


SESSIONS_KEYS: Final = KeySchema(("session_id",))
ACQUISITION_NAMES: Final = tuple(name for name, _ in ACQUISITION_COLUMNS)
ZERO_WHEN_ABSENT: Final = ("clicks", "scrolls", "custom")
"""Counters a session item leaves out while they are zero."""
DEFAULTS_WHEN_ABSENT: Final = {"bot_score": 0, "bot_alerted": False}
"""The bot rule's attributes, left out while it has seen nothing."""
OPTIONAL_ACQUISITION: Final = ACQUISITION_NAMES[2:5]
"""campaign, utm_term, utm_content: stored when known."""


def session_acquisition(landing: AcquisitionRow) -> AcquisitionRow:
    """What a session item keeps of its landing's acquisition: all but the referrer's host,
    which the `sessions` view gives (its 15 bytes a write were more than the write units a
    session item may grow by: docs/consumer.md)."""
    source, medium, campaign, term, content, _, channel = landing
    return (source, medium, campaign, term, content, None, channel)


SESSION_WRITE_CONDITION: Final = (
    "attribute_not_exists(#position) OR #shard <> :shard OR #position <= :position"
)
"""A session moves to a child shard after a reshard; positions only compare within a shard."""


def session_item(state: SessionState, expires_at: int) -> dict[str, Any]:
    if state.written_by is None:
        raise ValueError(f"session {state.session_id} has no position to write")
    pages = state.pages
    item: dict[str, Any] = {
        "session_id": state.session_id,
        "shard_id": state.written_by.shard_id,
        "position": state.written_by.position.encode(),
        "events": state.events,
        "page_views": state.page_views,
        "first_event_id": state.first_event_id,
        "last_event_id": state.last_event_id,
        "duration_seconds": Decimal(str(state.duration_seconds)),
        "distinct_pages": pages.count(),
        "gap_count": state.gap_count,
        # Floats go through their shortest repr, so a state read back is the state written.
        "gap_mean": Decimal(repr(state.gap_mean)),
        "gap_m2": Decimal(repr(state.gap_m2)),
        # No `updated_at` (page items and rollups keep theirs): nothing read it, and its 39
        # bytes at every write paid for the acquisition's (docs/consumer.md).
        "expires_at": expires_at,
    }
    # What is unknown or implied is left out (added one by one: a session item is built
    # for every write of a session, and filtering a whole dict of Nones cost more). Counters
    # that are zero too: their bytes are billed at every write (readers read them as 0).
    if state.clicks:
        item["clicks"] = state.clicks
    if state.scrolls:
        item["scrolls"] = state.scrolls
    if state.custom:
        item["custom"] = state.custom
    if state.first_seen is not None:
        item["first_seen"] = stored_time(state.first_seen)
    if state.last_seen is not None:
        item["last_seen"] = stored_time(state.last_seen)
    if state.entry_page is not None:
        item["entry_page"] = state.entry_page
    if state.exit_page is not None:
        item["exit_page"] = state.exit_page
    if state.user_agent is not None:
        item["user_agent"] = state.user_agent
    # Left out while nothing (a person's session, mostly): readers take absent ones as such.
    if state.bot_score:
        item["bot_score"] = Decimal(repr(state.bot_score))
    if state.bot_alerted:
        item["bot_alerted"] = True
    # Left out while exact (the common case): readers take an absent flag as exact.
    if not pages.exact:
        item["distinct_pages_exact"] = False
    # Hashed, fixed-size records in binary attributes (clickstream.stores.sketch); empty ones
    # are left out.
    page_hashes = pages.to_bytes()
    if page_hashes:
        item["pages"] = page_hashes
    if state.first_touches:
        item["first_touches"] = touches_to_bytes(state.first_touches)
    if state.recent_ids:
        item["recent_event_ids"] = recent_to_bytes(state.recent_ids)
    # Left out when it is the last event's time (records in order, the common case).
    if state.previous_at is not None and state.previous_at != state.last_seen:
        item["previous_at"] = stored_time(state.previous_at)
    _put_enrichment(item, state)
    return item


def _put_enrichment(item: dict[str, Any], state: SessionState) -> None:
    """The session's acquisition and country, as few bytes as say them (a session item is
    written at every flush that touches it: its size is its write units). Left out: a direct
    visit's source and medium, the channel (of the source, medium and campaign), what is
    unknown, and the landing's time and id when it is the first event; the device and the
    bounce are read from the user agent and the counters (`readable_session`)."""
    if state.acquisition is not None:
        source, medium, *optional, _, _ = state.acquisition
        if (source, medium) != (DIRECT, NONE):
            item["source"], item["medium"] = source, medium
        for name, value in zip(OPTIONAL_ACQUISITION, optional, strict=True):
            if value is not None:
                item[name] = value
    landing = state.landing_at
    if landing is not None and (
        landing != state.first_seen or state.landing_event_id != state.first_event_id
    ):
        item["landing_at"] = stored_time(landing)
        item["landing_event_id"] = state.landing_event_id
    if state.country is not None:
        item["country"] = state.country


def session_from_item(item: Mapping[str, Any]) -> SessionState:
    first_seen = item.get("first_seen")
    last_seen = item.get("last_seen")
    return SessionState(
        session_id=str(item["session_id"]),
        written_by=ShardPosition(str(item["shard_id"]), Position.decode(str(item["position"]))),
        events=int(item.get("events", 0)),
        page_views=int(item.get("page_views", 0)),
        clicks=int(item.get("clicks", 0)),
        scrolls=int(item.get("scrolls", 0)),
        custom=int(item.get("custom", 0)),
        first_seen=from_iso_or_none(first_seen),
        first_event_id=str(item.get("first_event_id", "")),
        entry_page=item.get("entry_page"),
        last_seen=from_iso_or_none(last_seen),
        last_event_id=str(item.get("last_event_id", "")),
        exit_page=item.get("exit_page"),
        user_agent=item.get("user_agent"),
        pages=DistinctCounter.from_bytes(stored_bytes(item.get("pages"))),
        first_touches=touches_from_bytes(stored_bytes(item.get("first_touches"))),
        recent_ids=recent_from_bytes(stored_bytes(item.get("recent_event_ids"))),
        previous_at=from_iso_or_none(item.get("previous_at", last_seen)),
        gap_count=int(item.get("gap_count", 0)),
        gap_mean=float(item.get("gap_mean", 0)),
        gap_m2=float(item.get("gap_m2", 0)),
        bot_score=float(item.get("bot_score", 0)),
        bot_alerted=bool(item.get("bot_alerted", False)),
        **_landing_from_item(item),
    )


def _landing_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """What `_put_enrichment` wrote, whole again: a session with a page view has a landing."""
    if not int(item.get("page_views", 0)):
        return {}
    source, medium = item.get("source", DIRECT), item.get("medium", NONE)
    optional = [item.get(name) for name in OPTIONAL_ACQUISITION]
    return {
        "acquisition": (
            source,
            medium,
            *optional,
            None,
            str(channel_of(source, medium, optional[0])),
        ),
        "landing_at": from_iso_or_none(item.get("landing_at", item.get("first_seen"))),
        "landing_event_id": str(item.get("landing_event_id", item.get("first_event_id", ""))),
        "country": item.get("country"),
    }


def readable_session(item: Mapping[str, Any]) -> dict[str, Any]:
    """A session as its reader wants it: the binary attributes are the consumer's bookkeeping
    (page sketch, first touches, recent event ids), already summed up in the counters; what
    is left out of the item for its size is said again (the acquisition of a direct visit, the
    channel, the device and browser of its user agent, the bot flag and the bounce)."""
    readable: dict[str, Any] = {**dict.fromkeys(ZERO_WHEN_ABSENT, 0), **DEFAULTS_WHEN_ABSENT}
    readable.update(
        (key, value) for key, value in item.items() if not isinstance(value, bytes | bytearray)
    )
    # (an item as the workers write it; a bare one, in tests, has no state to read)
    state = session_from_item(item) if "shard_id" in item else None
    if state is not None and state.acquisition is not None:
        readable.update(zip(ACQUISITION_NAMES, state.acquisition, strict=True))
    agent = agent_of(str(item.get("user_agent", "")))
    readable.update(
        device_type=str(agent.device_type),
        browser=agent.browser,
        os=agent.os,
        is_bot=agent.is_bot or bool(item.get("bot_alerted", False)),
        bounced=state.bounced if state is not None else None,
    )
    return readable


def session_key(session_id: str) -> dict[str, str]:
    return {"session_id": session_id}


class SessionsTable:
    """Reads and writes of the sessions table; everything else goes through it."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def put(
        self, state: SessionState, *, expires_at: int, now: datetime, backoff: Backoff, log: Any
    ) -> str:
        """Write a session's state unless the stored one is newer (`put_guarded`'s answer)."""
        item = session_item(state, expires_at)
        values = {":position": item["position"], ":shard": item["shard_id"]}
        return put_guarded(
            self.client,
            self.name,
            item,
            SESSION_WRITE_CONDITION,
            values,
            backoff=backoff,
            log=log,
        )

    def readable(self, session_id: str) -> dict[str, Any] | None:
        """A session's item as its reader wants it (`readable_session`), strongly
        consistent; None when there is none."""
        response = self.client.get_item(
            TableName=self.name, Key={"session_id": {"S": session_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else readable_session(from_dynamo(item))

    def holds(self, session_id: str) -> bool:
        response = self.client.get_item(TableName=self.name, Key=to_dynamo(session_key(session_id)))
        return "Item" in response

    def delete(self, session_id: str) -> bool:
        """Delete a session's item: whether there was one."""
        answer = self.client.delete_item(
            TableName=self.name, Key=to_dynamo(session_key(session_id)), ReturnValues="ALL_OLD"
        )
        return bool(answer.get("Attributes"))

    def all_items(self) -> list[dict[str, Any]]:
        """Every session item, as stored (a scan: the exactness check's read)."""
        return scan_table(self.client, self.name)
