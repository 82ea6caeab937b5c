"""The suppression list as a value, the entries `forget` puts, and the collector's intake
dropping an erased person's events (`clickstream.stores.suppression`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from clickstream.kernel.events import decode_event
from clickstream.kernel.fast_decode import decode_consumed
from clickstream.stores.suppression import (
    Suppression,
    SuppressionSettings,
    entry_items,
    id_hash,
    live_hashes,
)
from collector import intake
from collector.intake import Edge
from insights.forget import settle_left

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SALT = "0123456789abcdef"


def listing(**ids: list[str]) -> Suppression:
    return Suppression.of(SALT, [id_hash(SALT, kind, v) for kind, vs in ids.items() for v in vs])


def test_an_event_is_held_by_any_of_its_ids_of_the_same_kind() -> None:
    # GIVEN a user id, an anonymous id and a session id on the list
    listed = listing(user_id=["u-1"], anonymous_id=["a-1"], session_id=["s-1"])
    # THEN an event showing any one of them is held, each in its own field only
    assert listed.holds("u-1", None, "s-9")
    assert listed.holds(None, "a-1", "s-9")
    assert listed.holds(None, None, "s-1")
    assert not listed.holds("u-2", "a-2", "s-2")
    assert not listed.holds("a-1", "s-1", "u-1")  # the same values under other kinds
    assert not listed.holds(None, None, "")


def test_an_empty_list_holds_nothing_and_is_false() -> None:
    assert not Suppression()
    assert not Suppression().holds("u-1", "a-1", "s-1")
    assert listing(user_id=["u-1"])


def test_another_salt_matches_nothing() -> None:
    other = Suppression.of("another-salt", [id_hash(SALT, "user_id", "u-1")])
    assert not other.holds("u-1", None, "s-1")


def test_entries_carry_no_id_in_clear_and_expire_after_the_days_given() -> None:
    # GIVEN a forget request's ids
    ids = {"user_id": ["alice@example.com"], "session_id": ["s-alice-1", "s-alice-2"]}
    # WHEN its entries are made, with and without a TTL
    items = entry_items(SALT, ids, "req-1", NOW, days=400)
    kept = entry_items(SALT, ids, "req-1", NOW, days=0)
    # THEN one entry an id, hashed, named by the request, expiring 400 days on (or never)
    assert len(items) == 3
    text = json.dumps(items)
    assert "alice" not in text
    assert {i["request"] for i in items} == {"req-1"}
    expiry = (NOW + timedelta(days=400)).timestamp()
    assert {float(i["expires_at"]) for i in items} == {expiry}
    assert all("expires_at" not in i for i in kept)
    # AND the list they make holds those ids
    assert Suppression.of(SALT, [i["id_hash"] for i in items]).holds(None, None, "s-alice-2")


def test_an_expired_entry_still_read_suppresses_nothing() -> None:
    # GIVEN DynamoDB still returning an entry past its TTL (it deletes within days)
    (old,) = entry_items(SALT, {"user_id": ["u-old"]}, "r", NOW - timedelta(days=500), 400)
    (new,) = entry_items(SALT, {"user_id": ["u-new"]}, "r", NOW, 400)
    (forever,) = entry_items(SALT, {"user_id": ["u-kept"]}, "r", NOW - timedelta(days=900), 0)
    # THEN only the live ones are listed
    assert live_hashes([old, new, forever], NOW) == {
        new["id_hash"],
        forever["id_hash"],
    }


def test_the_consumers_decoded_event_carries_the_ids_it_is_checked_by() -> None:
    data = json.dumps(
        {
            "event_id": "e-1",
            "type": "click",
            "session_id": "s-1",
            "page": "/",
            "timestamp": "2026-12-05T11:59:00Z",
            "user_id": "u-1",
            "anonymous_id": "a-1",
        }
    ).encode()
    event = decode_consumed(data, NOW.timestamp())
    assert (event.user_id, event.anonymous_id, event.session_id) == ("u-1", "a-1", "s-1")


def test_the_collector_takes_a_suppressed_event_and_drops_it_counted() -> None:
    # GIVEN a collector whose list holds one user
    edge = Edge(received_at=NOW, suppression=listing(user_id=["u-gone"]))
    event = {"type": "click", "page": "/", "timestamp": "2026-12-05T11:59:00Z", "x": 1, "y": 2}
    body = [
        {**event, "event_id": "e-1", "session_id": "s-1", "user_id": "u-gone"},
        {**event, "event_id": "e-2", "session_id": "s-2", "user_id": "u-here"},
    ]
    # WHEN a request carries one of theirs and another's
    taken = intake.own_events(body, edge)
    # THEN only the other's goes to the stream, theirs is counted, nothing is rejected
    assert [decode_event(r.data, None).event_id for r in taken.records] == ["e-2"]
    assert taken.suppressed == 1
    assert taken.rejected == []
    # AND a request of theirs alone is answered as taken, not refused (no client retries it)
    alone = intake.own_events(body[:1], edge)
    assert (alone.records, alone.suppressed, alone.refused_whole()) == ([], 1, None)


def test_forget_waits_from_the_suppression_until_every_process_has_it() -> None:
    put = NOW.isoformat()
    assert settle_left(put, 120, NOW) == 120
    assert settle_left(put, 120, NOW + timedelta(seconds=100)) == 20
    assert settle_left(put, 120, NOW + timedelta(minutes=5)) == 0
    # the default covers the list's refresh and the workers' commit window
    assert SuppressionSettings().resolved_settle_seconds() >= 30 + 60
