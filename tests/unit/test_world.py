"""The generator's world (`producer.world`): its hand-written answers hold against the
enrichment and the registries' data, and a run's manifest counts them per dimension."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from clickstream.kernel.enrichment.acquisition import acquisition_of
from clickstream.kernel.enrichment.country import country_of
from clickstream.kernel.enrichment.useragent import agent_of
from clickstream.kernel.events import ClickEvent, EventType
from clickstream.kernel.pagekey import page_key
from producer import world
from producer.generator import TrafficProfile, generate
from producer.manifest import build_manifest

START = datetime(2026, 12, 7, 9, tzinfo=UTC)


@pytest.mark.parametrize("agent", list(world.AGENTS.values()), ids=lambda a: a.browser)
def test_each_agent_is_what_the_parser_says(agent: world.Agent) -> None:
    parsed = agent_of(agent.user_agent)
    assert (str(parsed.device_type), parsed.browser, parsed.is_bot) == (
        agent.device_type,
        agent.browser,
        agent.is_bot,
    )


@pytest.mark.parametrize(
    "landing", world.LANDINGS, ids=lambda item: f"{item.channel}-{item.source}"
)
def test_each_landing_is_what_the_acquisition_rules_say(landing: world.Landing) -> None:
    page = "/pricing" + (f"?{landing.query}" if landing.query else "")
    found = acquisition_of(page, landing.referrer)
    assert (found.source, found.medium, str(found.channel)) == (
        landing.source,
        landing.medium,
        landing.channel,
    )
    # (the tags and click ids are no part of the page's key: its counters are the page's)
    assert page_key(page) == "/pricing"


@pytest.mark.parametrize("country", world.COUNTRIES, ids=lambda item: item.address)
def test_each_address_is_in_its_country_by_the_registries_data(country: world.Country) -> None:
    assert country_of(country.address) == country.code


def test_a_runs_manifest_counts_sessions_and_events_per_dimension() -> None:
    records, anomalies = generate(5, START, 6000, TrafficProfile(bot_sessions=3))
    manifest = build_manifest(records, anomalies, seed=5, source="t", world=True)
    truth = manifest.dimensions
    assert truth is not None
    events = [r for r in records if isinstance(r, ClickEvent)]
    sessions = {e.session_id for e in events}
    for name in ("channel", "device_type", "browser", "country", "is_bot", "source"):
        assert sum(truth.sessions[name].values()) == len(sessions), name
        assert sum(truth.events[name].values()) == len(events), name
    # the traffic is the world's: every channel and device drawn, crawlers and scripts apart
    assert {"Direct", "Organic Search", "Paid Search", "Email", "Referral"} <= set(
        truth.sessions["channel"]
    )
    assert set(truth.sessions["device_type"]) == {"desktop", "mobile", "tablet", "bot"}
    agents = Counter(e.user_agent for e in events)
    bots = sum(n for ua, n in agents.items() if world.AGENTS[ua or ""].is_bot)
    # the third script passes for Chrome: a bot by the bot rule's verdict, not its agent
    (disguised,) = [a.subject for a in anomalies if a.kind == "bot_session"][2:]
    by_verdict = [e for e in events if e.session_id == disguised]
    assert not world.AGENTS[by_verdict[0].user_agent or ""].is_bot
    assert truth.events["is_bot"]["true"] == bots + len(by_verdict)
    assert bots > 0
    # AND a landing's tags reach the event's page, never its page key
    tagged = [e for e in events if e.type is EventType.PAGE_VIEW and "utm_source=" in e.page]
    assert tagged
    assert all("?" not in page_key(e.page) for e in tagged)
    # AND a seed is the same traffic every time
    again, _ = generate(5, START, 6000, TrafficProfile(bot_sessions=3))
    assert [(e.page, e.timestamp) for e in events] == [
        (e.page, e.timestamp) for e in again if isinstance(e, ClickEvent)
    ]
