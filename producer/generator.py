"""Seeded, realistic click traffic. Pure: the same seed and start time give the same events.

Sessions arrive as a Poisson process. Each picks an entry page by Zipf popularity, then walks
the site as a Markov chain (mostly along a page's own links, sometimes anywhere by
popularity), with log-normal think times between page views, clicks at coordinates inside
its viewport and scrolls in between. Optional anomalies, each labelled in the manifest:
bot sessions (fast, regular clicks over many pages and no page views), a traffic spike on
one page in a given minute (a burst of visitors landing there), a traffic drop (the page
stops getting views for a minute), rage clicks (a visitor clicking one spot four times in
half a second) and malformed records of several kinds. Planted journeys
(`producer.journeys`) walk a known funnel, some across two devices, for its exact truth.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from clickstream.kernel.events import ClickEvent, EventType
from producer import journeys
from producer.malformed import MalformedRecord, malformed_records
from producer.world import DEVICES, SCRIPTS, SessionWorld, session_world

_SECTIONS = ("products", "blog", "docs", "help", "category")
_FIXED_PAGES = ("/", "/search", "/cart", "/checkout", "/account", "/pricing", "/about")

_DEVICES = tuple((width, height, agent.user_agent) for width, height, agent in DEVICES)
"""(viewport width, height, user agent), desktop first: most traffic in these profiles."""
RAGE_CLICKS = 4
"""Clicks in an injected rage burst: over the three that make one (PostHog's definition)."""
_BOT_USER_AGENTS = tuple(agent.user_agent for agent in SCRIPTS)
_REFERRERS = (
    None,
    None,
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://t.co/x",
    "https://www.bing.com/",
)
"""What a session's referrer was drawn from before `producer.world`'s landings: still drawn,
and its answer unused, so each seed's pages, clicks and times stay what they were (the
anomaly measurements and the tests' seeds are on them)."""


@dataclass(frozen=True)
class SpikeSpec:
    """Extra visitors landing on `page` during minute `minute` (counted from the start)."""

    page: str
    minute: int
    factor: float = 6.0


@dataclass(frozen=True)
class DropSpec:
    """`page` gets no views during minute `minute` (visitors leave instead)."""

    page: str
    minute: int


@dataclass(frozen=True)
class TrafficProfile:
    pages: int = 120
    zipf_exponent: float = 1.1
    sessions_per_minute: float = 300.0
    exit_probability: float = 0.18
    max_page_views: int = 40
    median_think_seconds: float = 12.0
    mean_clicks_per_view: float = 1.4
    scroll_probability: float = 0.6
    link_follow_probability: float = 0.7
    custom_event_probability: float = 0.05
    bot_sessions: int = 0
    bot_events: int = 120
    bot_interval_seconds: float = 0.25
    rage_sessions: int = 0
    """Visitors who click one spot four times within half a second (rage clicks)."""
    journeys: int = 0
    """People on planted journeys through a known funnel (`producer.journeys`)."""
    spikes: tuple[SpikeSpec, ...] = ()
    drops: tuple[DropSpec, ...] = ()
    malformed: int = 0


@dataclass(frozen=True)
class Anomaly:
    """An injected anomaly and its window, as the manifest records it."""

    kind: str
    subject: str
    window_start: datetime
    window_end: datetime
    detail: dict[str, float | int | str] = field(default_factory=dict)


Record = ClickEvent | MalformedRecord


def page_catalog(count: int) -> list[str]:
    """A site's pages, most popular first (the order Zipf ranks them in)."""
    pages = list(_FIXED_PAGES[: max(1, min(count, len(_FIXED_PAGES)))])
    for index in itertools.count(1):
        if len(pages) >= count:
            break
        section = _SECTIONS[index % len(_SECTIONS)]
        pages.append(f"/{section}/{section[:1]}-{index:04d}")
    return pages


class _Site:
    """Pages, their popularity and links: the Markov chain sessions walk."""

    def __init__(self, profile: TrafficProfile, rng: random.Random) -> None:
        self.pages = page_catalog(profile.pages)
        self.weights: list[float] = [
            1.0 / (rank**profile.zipf_exponent) for rank in range(1, len(self.pages) + 1)
        ]
        self.cumulative = list(itertools.accumulate(self.weights))
        self.links = {
            page: rng.choices(self.pages, cum_weights=self.cumulative, k=rng.randint(3, 7))
            for page in self.pages
        }
        self.link_follow_probability = profile.link_follow_probability

    def popular(self, rng: random.Random) -> str:
        return rng.choices(self.pages, cum_weights=self.cumulative)[0]

    def next_page(self, current: str, rng: random.Random) -> str:
        if rng.random() < self.link_follow_probability:
            return rng.choice(self.links[current])
        return self.popular(rng)

    def expected_views_per_session(
        self, page: str, exit_probability: float, max_views: int
    ) -> float:
        """How many views of `page` a session makes on average: entry by popularity, then
        the Markov walk, summed over the steps the session survives to. Sizes spikes."""
        total = self.cumulative[-1]
        popularity = {p: w / total for p, w in zip(self.pages, self.weights, strict=True)}
        here = dict(popularity)
        expected = 0.0
        survive = 1.0
        for _ in range(max_views):
            expected += survive * here[page]
            after = dict.fromkeys(self.pages, 0.0)
            for source, mass in here.items():
                links = self.links[source]
                for target in links:
                    after[target] += mass * self.link_follow_probability / len(links)
                for target, share in popularity.items():
                    after[target] += mass * (1 - self.link_follow_probability) * share
            here = after
            survive *= 1 - exit_probability
        return expected


class TrafficGenerator:
    """Yields events in timestamp order, merged across concurrent sessions."""

    def __init__(self, seed: int, start: datetime, profile: TrafficProfile | None = None) -> None:
        self.seed = seed
        self.start = start
        self.profile = profile or TrafficProfile()
        self._rng = random.Random(seed)
        self.site = _Site(self.profile, self._rng)
        pages_named = [s.page for s in self.profile.spikes] + [d.page for d in self.profile.drops]
        for page in pages_named:
            if page not in self.site.pages:
                raise ValueError(f"page {page!r} is not one of the site's pages")
        self.anomalies: list[Anomaly] = []
        # Rage sessions draw from their own generator and ids, so adding them leaves every
        # other session of the seed as it was.
        self._rage_rng = random.Random(f"rage:{seed}")
        self._rage_counter = itertools.count(1)
        # Planted journeys too: their own draws, ids and event ids.
        self._journey_rng = random.Random(f"journey:{seed}")
        self._journey_counter = itertools.count(0)
        self._bot_counter = itertools.count()
        self._session_counter = itertools.count(1)
        self._event_counter = itertools.count(1)

    # -- sessions -------------------------------------------------------------------------

    def _new_session_id(self, prefix: str = "s") -> str:
        digest = hashlib.sha256(f"{self.seed}:{next(self._session_counter)}".encode()).hexdigest()
        return f"{prefix}-{digest[:16]}"

    def _event(
        self,
        session: _SessionContext,
        kind: EventType,
        at: datetime,
        page: str,
        rng: random.Random,
        event_id: str | None = None,
        **extra: object,
    ) -> ClickEvent:
        if event_id is None:
            event_id = f"e-{self.seed}-{next(self._event_counter):08d}"
        return ClickEvent(
            event_id=event_id,
            type=kind,
            session_id=session.session_id,
            page=page,
            # Milliseconds, as browsers stamp events and as the record carries them.
            timestamp=at.replace(microsecond=at.microsecond // 1000 * 1000),
            anonymous_id=session.anonymous_id,
            user_id=session.user_id,
            user_agent=session.user_agent,
            referrer=session.referrer if kind is EventType.PAGE_VIEW else None,
            viewport_width=session.viewport[0],
            viewport_height=session.viewport[1],
            **extra,  # type: ignore[arg-type]
        )

    def _in_the_world(self, session: _SessionContext, *, person: bool = False) -> SessionWorld:
        """Give a session its draw from `producer.world`: maybe a tablet, an in-app browser
        or a crawler (not when `person`), and its landing's referrer. The country is the
        sender's to give (`country_address`)."""
        world = session_world(self.seed, session.session_id)
        if world.agent is not None and not (person and world.agent.is_bot):
            session.user_agent = world.agent.user_agent
            if world.viewport is not None:
                session.viewport = world.viewport
        session.referrer = world.landing.referrer
        return world

    def _in_drop(self, page: str, at: datetime) -> bool:
        for spec in self.profile.drops:
            if spec.page == page:
                begin, end = self._minute_window(spec.minute)
                if begin <= at < end:
                    return True
        return False

    def _minute_window(self, minute: int) -> tuple[datetime, datetime]:
        begin = self.start.replace(second=0, microsecond=0) + timedelta(minutes=minute)
        return begin, begin + timedelta(minutes=1)

    def _human_session(
        self,
        at: datetime,
        rng: random.Random,
        entry_page: str | None = None,
        *,
        bounce: bool = False,
    ) -> Iterator[ClickEvent]:
        """One visitor's walk; `bounce` visitors read the page they landed on and leave."""
        profile = self.profile
        width, height, agent = rng.choice(_DEVICES)
        session = _SessionContext(
            session_id=self._new_session_id(),
            anonymous_id=f"a-{rng.getrandbits(48):012x}",
            user_id=f"u-{rng.randint(1, 5000):05d}" if rng.random() < 0.3 else None,
            user_agent=agent,
            referrer=rng.choice(_REFERRERS),
            viewport=(width, height),
        )
        world = self._in_the_world(session)
        width, height = session.viewport  # a tablet's, when the world drew one
        crawler = world.agent is not None and world.agent.is_bot
        page = entry_page or self.site.popular(rng)
        landing_query = world.landing.query
        for _ in range(profile.max_page_views):
            if self._in_drop(page, at):
                return  # the page is down: the visitor leaves
            shown = f"{page}?{landing_query}" if landing_query else page
            landing_query = ""
            yield self._event(session, EventType.PAGE_VIEW, at, shown, rng)
            session.referrer = None
            think = rng.lognormvariate(math.log(profile.median_think_seconds), 0.8)
            think = min(think, 600.0)
            if crawler:
                # A crawler reads pages and follows links: no clicks, scrolls or events.
                if bounce or rng.random() < profile.exit_probability:
                    return
                at += timedelta(seconds=think)
                page = self.site.next_page(page, rng)
                continue
            # Clicks and scrolls happen while the visitor reads, before the next page view.
            clicks = _poisson(rng, profile.mean_clicks_per_view)
            moments = sorted(rng.uniform(0.2, think * 0.95) for _ in range(clicks + 1))
            for index, offset in enumerate(moments):
                when = at + timedelta(seconds=offset)
                if index == 0:
                    if rng.random() < profile.scroll_probability:
                        depth = rng.randint(height // 2, height * 4)
                        yield self._event(session, EventType.SCROLL, when, page, rng, x=0, y=depth)
                    continue
                yield self._event(
                    session,
                    EventType.CLICK,
                    when,
                    page,
                    rng,
                    x=rng.randint(0, width - 1),
                    y=rng.randint(0, height - 1),
                )
            if rng.random() < profile.custom_event_probability:
                yield self._event(
                    session,
                    EventType.CUSTOM,
                    at + timedelta(seconds=think * 0.97),
                    page,
                    rng,
                    properties={"name": "add_to_cart", "value": rng.randint(1, 500)},
                )
            if bounce or rng.random() < profile.exit_probability:
                return
            at += timedelta(seconds=think)
            page = self.site.next_page(page, rng)

    def _bot_session(self, at: datetime, rng: random.Random) -> Iterator[ClickEvent]:
        profile = self.profile
        session = _SessionContext(
            session_id=self._new_session_id("bot"),
            anonymous_id=f"a-{rng.getrandbits(48):012x}",
            user_id=None,
            user_agent=_BOT_USER_AGENTS[next(self._bot_counter) % len(_BOT_USER_AGENTS)],
            referrer=None,
            viewport=(1280, 720),
        )
        pages = self.site.pages
        last = at + timedelta(seconds=(profile.bot_events - 1) * profile.bot_interval_seconds)
        self.anomalies.append(
            Anomaly(
                kind="bot_session",
                subject=session.session_id,
                window_start=at,
                window_end=last,
                detail={
                    "events": profile.bot_events,
                    "interval_seconds": profile.bot_interval_seconds,
                },
            )
        )
        for index in range(profile.bot_events):
            # Regular to within a few milliseconds: the tell-tale of a script.
            when = at + timedelta(
                seconds=index * profile.bot_interval_seconds + rng.uniform(0, 0.004)
            )
            yield self._event(
                session,
                EventType.CLICK,
                when,
                pages[index % len(pages)],
                rng,
                x=rng.randint(0, 1279),
                y=rng.randint(0, 719),
            )

    def _rage_session(self, at: datetime, rng: random.Random) -> Iterator[ClickEvent]:
        """A visitor clicking a spot that does nothing: a page view, four clicks within 450 ms
        and 3 px of the spot, then on to another page."""
        width, height, agent = rng.choice(_DEVICES)
        digest = hashlib.sha256(f"rage:{self.seed}:{next(self._rage_counter)}".encode())
        session = _SessionContext(
            session_id=f"rage-{digest.hexdigest()[:16]}",
            anonymous_id=f"a-{rng.getrandbits(48):012x}",
            user_id=None,
            user_agent=agent,
            referrer=rng.choice(_REFERRERS),
            viewport=(width, height),
        )
        world = self._in_the_world(session, person=True)
        page = self.site.popular(rng)
        query = world.landing.query
        yield self._event(
            session, EventType.PAGE_VIEW, at, f"{page}?{query}" if query else page, rng
        )
        spot = (rng.randint(20, width - 21), rng.randint(20, height - 21))
        first = at + timedelta(seconds=rng.uniform(3, 8))
        step = timedelta(milliseconds=150)
        self.anomalies.append(
            Anomaly(
                kind="rage_clicks",
                subject=page,
                window_start=first,
                window_end=first + step * (RAGE_CLICKS - 1),
                detail={"session_id": session.session_id, "clicks": RAGE_CLICKS},
            )
        )
        for index in range(RAGE_CLICKS):
            x, y = spot[0] + rng.randint(-3, 3), spot[1] + rng.randint(-3, 3)
            yield self._event(session, EventType.CLICK, first + step * index, page, rng, x=x, y=y)
        later = first + timedelta(seconds=rng.uniform(2, 5))
        yield self._event(session, EventType.PAGE_VIEW, later, self.site.next_page(page, rng), rng)

    def _journey(self, at: datetime, rng: random.Random) -> list[Iterator[ClickEvent]]:
        """A planted journey's visits (`producer.journeys`), each its own session."""
        number = next(self._journey_counter)
        kind = journeys.kind_of(number)
        user_id = journeys.user_id_of(number)
        anonymous = {
            device: f"a-j{number:04d}-{device}" for device in {v.device for v in kind.visits}
        }
        return [
            self._planted_visit(
                number,
                index,
                visit,
                at + timedelta(minutes=visit.minutes_after),
                rng,
                anonymous[visit.device],
                user_id,
            )
            for index, visit in enumerate(kind.visits, start=1)
        ]

    def _planted_visit(
        self,
        journey: int,
        index: int,
        visit: journeys.Visit,
        at: datetime,
        rng: random.Random,
        anonymous_id: str,
        user_id: str | None,
    ) -> Iterator[ClickEvent]:
        phone = visit.device == "phone"
        width, height, agent = _DEVICES[3 if phone else 0]
        session = _SessionContext(
            session_id=journeys.session_id_of(journey, index),
            anonymous_id=anonymous_id,
            user_id=None,
            user_agent=agent,
            referrer=None,
            viewport=(width, height),
        )
        world = self._in_the_world(session, person=True)
        landing_query = world.landing.query
        page = "/"
        for number, step in enumerate(visit.steps, start=1):
            event_id = f"e-{self.seed}-{session.session_id}-{number}"
            if step == journeys.IDENTIFY:
                session.user_id = user_id
                yield self._event(
                    session,
                    EventType.CUSTOM,
                    at,
                    page,
                    rng,
                    event_id,
                    properties={"name": "identify", "call": "identify", "traits": {}},
                )
            elif step in journeys.EVENTS:
                name, plan = journeys.EVENTS[step]
                properties = {"name": name, "plan": plan}
                yield self._event(
                    session, EventType.CUSTOM, at, page, rng, event_id, properties=properties
                )
            else:
                page = step
                shown = f"{page}?{landing_query}" if landing_query else page
                landing_query = ""
                yield self._event(session, EventType.PAGE_VIEW, at, shown, rng, event_id)
                session.referrer = None
            at += timedelta(seconds=rng.uniform(8.0, 30.0))

    # -- the merged stream ----------------------------------------------------------------

    def events(self) -> Iterator[ClickEvent]:
        """Every session's events merged in timestamp order; endless, take what you need."""
        rng = self._rng
        heap: list[tuple[datetime, int, ClickEvent, Iterator[ClickEvent]]] = []
        tiebreak = itertools.count()

        def schedule(events: Iterator[ClickEvent]) -> None:
            first = next(events, None)
            if first is not None:
                heapq.heappush(heap, (first.timestamp, next(tiebreak), first, events))

        arrivals = self._arrivals(rng)
        next_arrival, arrival_kind, arrival_page = next(arrivals)
        while True:
            while not heap or next_arrival <= heap[0][0]:
                drawn_from = {"rage": self._rage_rng, "journey": self._journey_rng}.get(
                    arrival_kind, rng
                )
                session_rng = random.Random(drawn_from.getrandbits(64))
                if arrival_kind == "journey":
                    for visit in self._journey(next_arrival, session_rng):
                        schedule(visit)
                elif arrival_kind == "bot":
                    schedule(self._bot_session(next_arrival, session_rng))
                elif arrival_kind == "rage":
                    schedule(self._rage_session(next_arrival, session_rng))
                elif arrival_kind == "spike":
                    schedule(
                        self._human_session(next_arrival, session_rng, arrival_page, bounce=True)
                    )
                else:
                    schedule(self._human_session(next_arrival, session_rng, arrival_page))
                next_arrival, arrival_kind, arrival_page = next(arrivals)
            _, _, event, rest = heapq.heappop(heap)
            yield event
            schedule(rest)

    def _arrivals(self, rng: random.Random) -> Iterator[tuple[datetime, str, str | None]]:
        """Session start times: the steady Poisson stream, bots and spike visitors merged."""
        profile = self.profile
        streams: list[Iterator[tuple[datetime, str, str | None]]] = [
            _poisson_arrivals(rng, self.start, profile.sessions_per_minute / 60.0, "human", None)
        ]
        for index in range(profile.bot_sessions):
            # Bots start over the first few minutes, one every 40 s or so.
            offset = timedelta(seconds=20 + index * 40 + rng.uniform(0, 10))
            streams.append(iter([(self.start + offset, "bot", None)]))
        for index in range(profile.rage_sessions):
            # Rage clicks come later, one every two minutes or so.
            offset = timedelta(seconds=90 + index * 120 + self._rage_rng.uniform(0, 30))
            streams.append(iter([(self.start + offset, "rage", None)]))
        for index in range(profile.journeys):
            # Planted journeys start after the first minute, one every seven seconds.
            offset = timedelta(seconds=60 + index * 7 + self._journey_rng.uniform(0, 2))
            streams.append(iter([(self.start + offset, "journey", None)]))
        for spike in profile.spikes:
            begin, end = self._minute_window(spike.minute)
            # Each spike visitor lands on the page once and leaves (a burst from one link,
            # not a wave through the site, so the labelled anomaly is that one page): to
            # multiply its usual views by `factor`, add (factor - 1) times its usual views.
            usual_views_per_second = (
                profile.sessions_per_minute
                / 60.0
                * self.site.expected_views_per_session(
                    spike.page, profile.exit_probability, profile.max_page_views
                )
            )
            extra_per_second = (spike.factor - 1) * usual_views_per_second
            spike_rng = random.Random(rng.getrandbits(64))
            visitors = _poisson_arrivals(spike_rng, begin, extra_per_second, "spike", spike.page)
            streams.append(_until(visitors, end))
            self.anomalies.append(
                Anomaly(
                    kind="traffic_spike",
                    subject=spike.page,
                    window_start=begin,
                    window_end=end,
                    detail={"factor": spike.factor},
                )
            )
        for drop in profile.drops:
            begin, end = self._minute_window(drop.minute)
            self.anomalies.append(
                Anomaly(
                    kind="traffic_drop",
                    subject=drop.page,
                    window_start=begin,
                    window_end=end,
                )
            )
        return heapq.merge(*streams, key=lambda item: item[0])


@dataclass
class _SessionContext:
    session_id: str
    anonymous_id: str
    user_id: str | None
    user_agent: str
    referrer: str | None
    viewport: tuple[int, int]


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means of clicks per page view.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _poisson_arrivals(
    rng: random.Random, start: datetime, per_second: float, kind: str, page: str | None
) -> Iterator[tuple[datetime, str, str | None]]:
    if per_second <= 0:
        return
    at = start
    while True:
        at += timedelta(seconds=rng.expovariate(per_second))
        yield at, kind, page


def _until(
    arrivals: Iterator[tuple[datetime, str, str | None]], end: datetime
) -> Iterator[tuple[datetime, str, str | None]]:
    for arrival in arrivals:
        if arrival[0] >= end:
            return
        yield arrival


def generate(
    seed: int, start: datetime, count: int, profile: TrafficProfile | None = None
) -> tuple[list[Record], list[Anomaly]]:
    """`count` valid events plus the profile's malformed records interleaved at seeded places."""
    generator = TrafficGenerator(seed, start, profile)
    events: list[Record] = list(itertools.islice(generator.events(), count))
    _check_journeys_whole(events, generator.profile.journeys)
    last = events[-1].timestamp if events else start  # type: ignore[union-attr]
    anomalies = [a for a in generator.anomalies if a.window_start <= last]
    bad = malformed_records(generator.profile.malformed, seed, start)
    rng = random.Random(seed ^ 0xBAD)
    for record in bad:
        events.insert(rng.randint(0, len(events)), record)
    return events, anomalies


def _check_journeys_whole(events: list[Record], planted: int) -> None:
    """Every planted journey whole in `events`: a journey cut short by `count` would make the
    manifest's funnel truth (`producer.journeys`) wrong."""
    if not planted:
        return
    sent: Counter[int] = Counter()
    for event in events:
        if (
            isinstance(event, ClickEvent)
            and (found := journeys.journey_of(event.session_id)) is not None
        ):
            sent[found] += 1
    for number in range(planted):
        wanted = sum(len(visit.steps) for visit in journeys.kind_of(number).visits)
        if sent[number] != wanted:
            raise ValueError(
                f"{planted} planted journeys need more events than {len(events)}: journey "
                f"{number} has {sent[number]} of its {wanted}"
            )
