"""The manifest: the ground truth of what a run sent, against which consumers are checked."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from clickstream.kernel.enrichment.useragent import agent_of
from clickstream.kernel.events import ClickEvent, EventType, minute_key
from clickstream.kernel.pagekey import page_key
from producer import journeys, world
from producer.generator import Anomaly, Record
from producer.malformed import MalformedRecord

HASH_KEY_SPACE = 2**128


class SessionTruth(BaseModel):
    events: int = 0
    page_views: int = 0
    clicks: int = 0
    scrolls: int = 0
    custom: int = 0
    distinct_pages: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    entry_page: str | None = None
    exit_page: str | None = None


class PageMinuteTruth(BaseModel):
    """People's counters; a bot's (by its user agent) page views apart, as the workers count."""

    views: int = 0
    clicks: int = 0
    sessions: int = 0
    bot_views: int = 0
    bot_clicks: int = 0
    """Not counted by the workers (a bot's click changes no counter): what the archive and
    the operator's events-per-minute chart hold beside people's clicks."""

    @property
    def all_views(self) -> int:
        """Every page view, people's and bots': what the archive holds."""
        return self.views + self.bot_views

    @property
    def all_clicks(self) -> int:
        return self.clicks + self.bot_clicks


class DimensionTruth(BaseModel):
    """Sessions and events per value of each enrichment dimension, as `producer.world`'s
    tables say (written by hand there, not computed by the enrichment they check)."""

    sessions: dict[str, dict[str, int]] = Field(default_factory=dict)
    """dimension (channel, source, device_type, browser, country, is_bot) -> value -> sessions"""
    events: dict[str, dict[str, int]] = Field(default_factory=dict)
    """dimension -> value -> events (an event's channel and source are its session's)"""
    people_by_channel: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)
    """channel -> dimension -> value -> people's sessions (bots left out, as reports do):
    what the site owner's view shows, and shows again filtered by a channel."""


class FunnelTruth(BaseModel):
    """The planted journeys' funnel (`producer.journeys`): per step, the visits and the people
    that reach it, as the journeys' kinds say by hand."""

    steps: list[str]
    within: str
    visits: list[int]
    people: list[int]
    people_across_devices: int
    """People who reach the last step only across two devices (a login links them)."""
    stitched: dict[str, list[str]] = Field(default_factory=dict)
    """Each logged-in planted person's user id and their sessions, every device's."""


DIMENSIONS = ("channel", "source", "device_type", "browser", "country", "is_bot")


class AnomalyTruth(BaseModel):
    kind: str
    subject: str
    window_start: datetime
    window_end: datetime
    detail: dict[str, float | int | str] = Field(default_factory=dict)


class MalformedTruth(BaseModel):
    sha256: str
    expected_reason: str


class Manifest(BaseModel):
    """Per-session counts, per-page-per-minute counts, injected anomalies, what was sent."""

    seed: int | None
    source: str
    stream: str | None = None
    events: int
    """Distinct events: a record re-sending an event id of its session counts once."""
    malformed: int
    duplicates: int = 0
    """Records that re-sent an event (same session, same event id): counted nowhere."""
    total_records: int
    sent: int = 0
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None
    event_types: dict[str, int]
    sessions: dict[str, SessionTruth]
    pages: dict[str, dict[str, PageMinuteTruth]]
    anomalies: list[AnomalyTruth]
    malformed_records: list[MalformedTruth]
    records_per_shard: dict[str, int] | None = None
    dimensions: DimensionTruth | None = None
    """The generator's traffic only (`build_manifest(..., world=True)`)."""
    funnel: FunnelTruth | None = None
    """The planted journeys' funnel, when the traffic has any."""
    last_sequence_per_shard: dict[str, str] | None = None
    """Filled after sending: where a consumer that has read everything has checkpointed."""


def shard_index(partition_key: str, shard_count: int) -> int:
    """Which of `shard_count` evenly split shards Kinesis routes a partition key to."""
    hash_key = int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")  # noqa: S324
    return hash_key * shard_count // HASH_KEY_SPACE


def partition_key_of(record: Record) -> str:
    return record.session_id if isinstance(record, ClickEvent) else record.partition_key


def _count_type(
    kind: EventType, truth: SessionTruth, bucket: PageMinuteTruth, *, is_bot: bool
) -> None:
    if kind is EventType.PAGE_VIEW:
        truth.page_views += 1
        if is_bot:
            bucket.bot_views += 1
        else:
            bucket.views += 1
    elif kind is EventType.CLICK:
        truth.clicks += 1
        if is_bot:
            bucket.bot_clicks += 1
        else:
            bucket.clicks += 1
    elif kind is EventType.SCROLL:
        truth.scrolls += 1
    else:
        truth.custom += 1


def build_manifest(
    records: Iterable[Record],
    anomalies: Iterable[Anomaly],
    *,
    seed: int | None,
    source: str,
    shards_hint: int | None = None,
    keep_query_params: Iterable[str] = (),
    world: bool = False,
) -> Manifest:
    """The ground truth of `records` as the consumer must count it: pages by their page key
    (`clickstream.kernel.pagekey`, with the consumer's allow-list of query parameters), and an event
    re-sent with the same id in the same session counted once. With `world` (the
    generator's traffic of `seed`, its countries delivered), the truth per enrichment
    dimension too (`dimension_truth`)."""
    keep = frozenset(keep_query_params)
    distinct: list[ClickEvent] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    sessions: dict[str, SessionTruth] = defaultdict(SessionTruth)
    session_pages: dict[str, set[str]] = defaultdict(set)
    pages: dict[str, dict[str, PageMinuteTruth]] = defaultdict(lambda: defaultdict(PageMinuteTruth))
    page_minute_sessions: dict[tuple[str, str], set[str]] = defaultdict(set)
    types: Counter[str] = Counter()
    malformed: list[MalformedTruth] = []
    per_shard: Counter[str] = Counter()
    events = 0
    first: datetime | None = None
    last: datetime | None = None

    for record in records:
        if shards_hint:
            index = shard_index(partition_key_of(record), shards_hint)
            per_shard[f"shardId-{index:012d}"] += 1
        if isinstance(record, MalformedRecord):
            malformed.append(
                MalformedTruth(sha256=record.sha256, expected_reason=record.expected_reason.value)
            )
            continue
        if (record.session_id, record.event_id) in seen:
            duplicates += 1
            continue
        seen.add((record.session_id, record.event_id))
        distinct.append(record)
        page = page_key(record.page, keep)
        events += 1
        at = record.timestamp
        first = at if first is None or at < first else first
        last = at if last is None or at > last else last
        types[record.type.value] += 1
        truth = sessions[record.session_id]
        truth.events += 1
        session_pages[record.session_id].add(page)
        if truth.first_seen is None or at < truth.first_seen:
            truth.first_seen, truth.entry_page = at, page
        if truth.last_seen is None or at >= truth.last_seen:
            truth.last_seen, truth.exit_page = at, page
        is_bot = record.user_agent is not None and agent_of(record.user_agent).is_bot
        _count_type(record.type, truth, pages[page][minute_key(at)], is_bot=is_bot)
        if not is_bot:
            page_minute_sessions[(page, minute_key(at))].add(record.session_id)

    for session_id, truth in sessions.items():
        truth.distinct_pages = len(session_pages[session_id])
    for (page, minute), members in page_minute_sessions.items():
        pages[page][minute].sessions = len(members)

    injected = [
        AnomalyTruth(
            kind=a.kind,
            subject=a.subject,
            window_start=a.window_start,
            window_end=a.window_end,
            detail=a.detail,
        )
        for a in anomalies
    ]
    judged = frozenset(a.subject for a in injected if a.kind == "bot_session")
    return Manifest(
        seed=seed,
        source=source,
        events=events,
        malformed=len(malformed),
        duplicates=duplicates,
        total_records=events + duplicates + len(malformed),
        first_event_at=first,
        last_event_at=last,
        event_types=dict(types),
        sessions=dict(sessions),
        pages={page: dict(minutes) for page, minutes in pages.items()},
        anomalies=injected,
        malformed_records=malformed,
        records_per_shard=dict(sorted(per_shard.items())) if shards_hint else None,
        dimensions=dimension_truth(distinct, seed, judged=judged)
        if world and seed is not None
        else None,
        funnel=funnel_truth(distinct),
    )


def funnel_truth(events: Iterable[ClickEvent]) -> FunnelTruth | None:
    """The planted journeys among `events` and what their kinds say they reach."""
    planted: set[int] = set()
    stitched: dict[str, set[str]] = defaultdict(set)
    for event in events:
        number = journeys.journey_of(event.session_id)
        if number is None:
            continue
        planted.add(number)
        user_id = journeys.user_id_of(number)
        if user_id is not None:
            stitched[user_id].add(event.session_id)
    if not planted:
        return None
    visits, people, across = journeys.reached(sorted(planted))
    return FunnelTruth(
        steps=list(journeys.PLANTED_FUNNEL),
        within=journeys.PLANTED_WITHIN,
        visits=visits,
        people=people,
        people_across_devices=across,
        stitched={user: sorted(sessions) for user, sessions in sorted(stitched.items())},
    )


def dimension_truth(
    events: Iterable[ClickEvent], seed: int, *, judged: frozenset[str] = frozenset()
) -> DimensionTruth:
    """Sessions and events per dimension value of the generator's traffic of `seed`: a
    session's landing is its first page view (by time, then id; none: direct), its agent and
    country the world's (`producer.world`); a bot when its agent is one's or it is one of
    the injected bot sessions (`judged`), which the workers' bot rule judges a bot."""
    by_session: dict[str, list[ClickEvent]] = defaultdict(list)
    for event in events:
        by_session[event.session_id].append(event)
    sessions: dict[str, Counter[str]] = {name: Counter() for name in DIMENSIONS}
    per_event: dict[str, Counter[str]] = {name: Counter() for name in DIMENSIONS}
    people: dict[str, dict[str, Counter[str]]] = defaultdict(dict)
    for session_id, mine in by_session.items():
        views = [e for e in mine if e.type is EventType.PAGE_VIEW]
        first_view = min(views, key=lambda e: (e.timestamp, e.event_id)) if views else None
        landing = (
            world.landing_of(first_view.page, first_view.referrer)
            if first_view is not None
            else world.DIRECT
        )
        first = min(mine, key=lambda e: (e.timestamp, e.event_id))
        agent = world.AGENTS[first.user_agent or ""]
        country = world.session_world(seed, session_id).country.code
        values = {
            "channel": landing.channel,
            "source": landing.source,
            "device_type": agent.device_type,
            "browser": agent.browser,
            "country": country,
            "is_bot": str(agent.is_bot or session_id in judged).lower(),
        }
        for name, value in values.items():
            sessions[name][value] += 1
        if values["is_bot"] == "false":
            mine_by_channel = people[values["channel"]]
            for name, value in values.items():
                mine_by_channel.setdefault(name, Counter())[value] += 1
        for event in mine:
            own = world.AGENTS[event.user_agent or ""]
            values |= {
                "device_type": own.device_type,
                "browser": own.browser,
                "is_bot": str(own.is_bot or session_id in judged).lower(),
            }
            for name, value in values.items():
                per_event[name][value] += 1
    return DimensionTruth(
        sessions={name: dict(counts) for name, counts in sessions.items()},
        events={name: dict(counts) for name, counts in per_event.items()},
        people_by_channel={
            channel: {name: dict(counts) for name, counts in by_dimension.items()}
            for channel, by_dimension in people.items()
        },
    )
