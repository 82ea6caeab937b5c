"""Planted journeys (`producer.journeys`): the generator plays every journey whole, each
visit as its kind writes it, and the manifest's funnel truth is the kinds' hand-written reach
added up (16 people, two of each kind, counted by hand below)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from clickstream.kernel.events import ClickEvent, EventType
from producer import journeys
from producer.generator import TrafficProfile, generate
from producer.manifest import build_manifest

START = datetime(2026, 12, 1, 9, tzinfo=UTC)


def planted(records: Sequence[object]) -> dict[str, list[ClickEvent]]:
    found: dict[str, list[ClickEvent]] = defaultdict(list)
    for record in records:
        if isinstance(record, ClickEvent) and journeys.journey_of(record.session_id) is not None:
            found[record.session_id].append(record)
    return found


def test_sixteen_journeys_reach_what_their_kinds_say() -> None:
    # GIVEN 16 planted people among 20,000 events of ordinary traffic
    records, anomalies = generate(
        7, START, 20_000, TrafficProfile(journeys=16, sessions_per_minute=100)
    )
    manifest = build_manifest(records, anomalies, seed=7, source="test", world=True)
    # THEN the truth, by hand: per cycle of the eight kinds, visits reaching the tour 8 (the
    # two-visit kinds' first visits), the signup 4, the pro signup 2; people 8, 6, 4
    assert manifest.funnel is not None
    assert manifest.funnel.steps == ["/tour", "/signup", "event:Signed Up[plan=pro]"]
    assert manifest.funnel.visits == [16, 8, 4]
    assert manifest.funnel.people == [16, 12, 8]
    assert manifest.funnel.people_across_devices == 2
    # AND the two people who log in on a phone and a laptop, each with both devices' visits
    assert manifest.funnel.stitched == {
        "u-j0006": ["j-0006-1", "j-0006-2"],
        "u-j0014": ["j-0014-1", "j-0014-2"],
    }


def test_each_visit_plays_its_steps_in_order_with_the_login_from_the_identify_on() -> None:
    records, _ = generate(7, START, 20_000, TrafficProfile(journeys=8, sessions_per_minute=100))
    sessions = planted(records)
    assert len(sessions) == 10  # eight people, two of them with two visits
    for session_id, events in sessions.items():
        number = journeys.journey_of(session_id)
        assert number is not None
        visit = journeys.kind_of(number).visits[int(session_id.rsplit("-", 1)[1]) - 1]
        assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
        played = []
        logged_in = False
        for event in events:
            if event.type is EventType.PAGE_VIEW:
                played.append(event.page.split("?")[0])
            else:
                assert event.properties is not None
                name = event.properties["name"]
                played.append(
                    journeys.IDENTIFY
                    if name == "identify"
                    else f"{name}:{event.properties['plan']}"
                )
                logged_in = logged_in or name == "identify"
            # the user id is on the identify and every event after it, never before
            assert (event.user_id is not None) == logged_in
        assert tuple(played) == visit.steps
    # AND the second-device person's visits have two anonymous ids, one user id
    two_devices = [sessions["j-0006-1"], sessions["j-0006-2"]]
    assert {e.anonymous_id for visit in two_devices for e in visit} == {
        "a-j0006-phone",
        "a-j0006-laptop",
    }
    # AND the one who comes back on the same device keeps its anonymous id, no user id
    again = sessions["j-0007-1"] + sessions["j-0007-2"]
    assert {(e.anonymous_id, e.user_id) for e in again} == {("a-j0007-laptop", None)}


def test_journeys_cut_short_by_too_few_events_are_refused() -> None:
    with pytest.raises(ValueError, match="planted journeys need more events"):
        generate(7, START, 2_000, TrafficProfile(journeys=16, sessions_per_minute=100))


def test_no_journeys_no_funnel_truth() -> None:
    records, anomalies = generate(7, START, 500)
    assert build_manifest(records, anomalies, seed=7, source="test").funnel is None
