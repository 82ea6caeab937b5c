"""A report computed directly from the events in Python, by docs/reports.md's definitions, to
hold `insights.report`'s SQL (over parts, raw or compacted) to: no SQL, no parts, no lake."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from clickstream.kernel.enrichment.acquisition import DIRECT, NONE
from clickstream.kernel.enrichment.channels import Channel
from clickstream.kernel.enrichment.columns import ENGAGED_SECONDS, agent_row, landing_row
from clickstream.kernel.events import ClickEvent, EventType, campaign_in


def path(page: str) -> str:
    if page.startswith("/"):
        return page.partition("?")[0].partition("#")[0]
    return urlsplit(page).path or "/"


@dataclass
class Visit:
    session_id: str
    events: list[ClickEvent]
    is_bot: bool
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def started(self) -> datetime:
        return self.events[0].timestamp

    person: str | None = None
    """Its person across devices, when the person map names one (`stitch`)."""

    @property
    def user(self) -> str | None:
        users = [e.user_id for e in self.events if e.user_id]
        return users[-1] if users else None

    @property
    def anonymous(self) -> str | None:
        anonymous = [e.anonymous_id for e in self.events if e.anonymous_id]
        return anonymous[0] if anonymous else None

    @property
    def visitor(self) -> str:
        return self.person or self.user or self.anonymous or self.session_id

    @property
    def views(self) -> list[ClickEvent]:
        return [e for e in self.events if e.type is EventType.PAGE_VIEW]

    @property
    def duration(self) -> float:
        return (self.events[-1].timestamp - self.events[0].timestamp).total_seconds()

    @property
    def bounced(self) -> bool:
        engaged = [e for e in self.events if e.type in (EventType.CLICK, EventType.CUSTOM)]
        return len(self.views) <= 1 and not engaged and self.duration < ENGAGED_SECONDS


def visits_of(events: Iterable[ClickEvent], judged: frozenset[str]) -> list[Visit]:
    by_session: dict[str, list[ClickEvent]] = defaultdict(list)
    for event in events:
        by_session[event.session_id].append(event)
    visits = []
    for session_id, mine in by_session.items():
        mine.sort(key=lambda e: (e.timestamp, e.event_id))
        agents = [agent_row(e.user_agent) for e in mine]
        visit = Visit(session_id, mine, any(a[4] for a in agents) or session_id in judged)
        views = visit.views
        if views:
            landing = views[0]
            source, medium, campaign, _, _, host, channel = landing_row(
                landing.page, landing.referrer, campaign_in(landing.properties)
            )
        else:
            source, medium, campaign, host, channel = DIRECT, NONE, None, None, Channel.DIRECT
        first = mine[0]
        browser, _, os, device_type, _ = agents[0]
        site = urlsplit(first.page).hostname if not first.page.startswith("/") else None
        countries = [e.country for e in mine if e.country]
        visit.values = {
            "entry_page": path(views[0].page) if views else None,
            "exit_page": path(views[-1].page) if views else None,
            "source": source,
            "medium": medium,
            "campaign": campaign,
            "channel": str(channel),
            "referrer_host": host,
            "device_type": device_type,
            "browser": browser,
            "os": os,
            "country": countries[0] if countries else None,
            "site": site.lower() if site else None,
        }
        visits.append(visit)
    stitch(visits)
    return visits


def stitch(visits: list[Visit]) -> None:
    """Each visit's person by the person map: an anonymous id belongs to the user id it was
    first seen with in one visit (the truth's visits: ids constant within a session's hour)."""
    linked: dict[str, tuple[datetime, str]] = {}
    for visit in visits:
        if visit.user and visit.anonymous:
            seen = linked.get(visit.anonymous)
            if seen is None or visit.started < seen[0]:
                linked[visit.anonymous] = (visit.started, visit.user)
    for visit in visits:
        if visit.user is None and visit.anonymous in linked:
            visit.person = linked[visit.anonymous][1]


def totals(visits: list[Visit]) -> dict[str, Any]:
    count = len(visits)
    return {
        "visitors": len({v.visitor for v in visits}),
        "visits": count,
        "page_views": sum(len(v.views) for v in visits),
        "bounce_rate": sum(v.bounced for v in visits) / count if count else None,
        "visit_duration_s": sum(v.duration for v in visits) / count if count else None,
    }


def in_range(visits: list[Visit], start: datetime, end: datetime, *, bots: bool) -> list[Visit]:
    return [v for v in visits if start <= v.started < end and v.is_bot == bots]


def _per_value(
    visits: list[Visit], values_of: Callable[[Visit], list[str]], counted: str
) -> dict[Any, dict[str, Any]]:
    """Per value a visit has (a page it viewed, an event it sent): the visitors and visits
    that have it, and how many times they have it (`counted`)."""
    seen: dict[str, list[tuple[Visit, int]]] = defaultdict(list)
    for visit in visits:
        for value, times in Counter(values_of(visit)).items():
            seen[value].append((visit, times))
    return {
        value: {
            "visitors": len({v.visitor for v, _ in having}),
            "visits": len(having),
            counted: sum(n for _, n in having),
        }
        for value, having in seen.items()
    }


def rows(visits: list[Visit], by: str) -> dict[Any, dict[str, Any]]:
    """value -> figures, for every value (no top N)."""
    if by == "page":
        return _per_value(visits, lambda v: [path(e.page) for e in v.views], "page_views")
    if by == "event":
        return _per_value(
            visits,
            lambda v: [
                str((e.properties or {}).get("name", "unnamed"))
                for e in v.events
                if e.type is EventType.CUSTOM
            ],
            "events",
        )
    grouped: dict[Any, list[Visit]] = defaultdict(list)
    for visit in visits:
        grouped[visit.values[by]].append(visit)
    return {value: totals(members) for value, members in grouped.items()}
