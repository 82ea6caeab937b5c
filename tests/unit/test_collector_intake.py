"""The collector's pure intake: bodies, write keys, Segment's calls onto the contract."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from clickstream.kernel.events import DeadLetterReason, carried_refusal, decode_event
from collector import intake, segment
from collector.intake import Edge, Refused
from collector.settings import CollectorSettings

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def edge(**changes: Any) -> Edge:
    values: dict[str, Any] = {"received_at": NOW, "user_agent": "Mozilla/5.0 (test)"}
    values.update(changes)
    return Edge(**values)


def stored(body: Any, call: str | None = "track", **edge_changes: Any) -> list[dict[str, Any]]:
    """What the collector would put into the stream for a Segment body, decoded again with
    the consumer's own gate (so the records are valid contract events)."""
    result = intake.segment_messages(body, call, edge(**edge_changes))
    for record in result.records:
        event = decode_event(record.data, None)
        assert record.partition_key == event.session_id
    return [json.loads(record.data) for record in result.records]


def message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "messageId": "m-1",
        "anonymousId": "anon-1",
        "timestamp": NOW.isoformat(),
        "context": {"page": {"path": "/pricing", "referrer": "https://news.example/"}},
    }
    base.update(fields)
    return base


def test_a_page_call_is_a_page_view_of_its_page() -> None:
    [event] = stored(message(properties={"path": "/docs/start", "title": "Start"}), "page")
    assert event["type"] == "page_view"
    assert event["page"] == "/docs/start"
    assert event["event_id"] == "m-1"
    assert event["referrer"] == "https://news.example/"
    assert event["properties"]["title"] == "Start"


def test_a_track_call_is_a_custom_event_with_its_name_and_properties() -> None:
    [event] = stored(message(event="Signed Up", properties={"plan": "pro"}))
    assert event["type"] == "custom"
    assert event["page"] == "/pricing"
    assert event["properties"]["event"] == "Signed Up"
    assert event["properties"]["properties"] == {"plan": "pro"}


@pytest.mark.parametrize("name", ["click", "Clicked", "Element Clicked"])
def test_a_track_named_like_a_click_with_coordinates_is_a_click(name: str) -> None:
    [event] = stored(message(event=name, properties={"x": 120, "y": 48.0, "id": "buy"}))
    assert (event["type"], event["x"], event["y"]) == ("click", 120, 48)
    assert event["properties"]["id"] == "buy"


def test_a_click_named_track_without_whole_pixel_coordinates_stays_custom() -> None:
    [event] = stored(message(event="click", properties={"x": "12px", "y": 3}))
    assert event["type"] == "custom"


def test_screen_identify_group_and_alias() -> None:
    [screen] = stored(message(name="Home Feed", context={}), "screen")
    assert (screen["type"], screen["page"]) == ("page_view", "/screens/Home%20Feed")
    [identify] = stored(message(userId="u-7", traits={"plan": "pro"}), "identify")
    assert identify["type"] == "custom"
    assert identify["properties"]["call"] == "identify"
    assert identify["properties"]["traits"] == {"plan": "pro"}
    assert identify["user_id"] == "u-7"
    [group] = stored(message(groupId="g-1", context={}), "group")
    assert group["properties"]["groupId"] == "g-1"
    assert group["page"] == segment.NO_PAGE
    [alias] = stored(message(previousId="old", userId="new"), "alias")
    assert alias["properties"]["previousId"] == "old"


def test_the_batch_endpoint_takes_each_messages_own_type_and_the_batch_sent_at() -> None:
    sent = NOW - timedelta(hours=2)  # the device's clock is two hours behind
    body = {
        "batch": [
            message(
                type="page", messageId="p", timestamp=(sent - timedelta(seconds=5)).isoformat()
            ),
            message(type="track", messageId="t", event="x", timestamp=sent.isoformat()),
        ],
        "sentAt": sent.isoformat(),
    }
    page, track = stored(body, None)
    assert page["type"] == "page_view"
    assert track["type"] == "custom"
    # Segment's correction: timestamp + (receivedAt - sentAt)
    assert datetime.fromisoformat(page["timestamp"]) == NOW - timedelta(seconds=5)
    assert datetime.fromisoformat(track["timestamp"]) == NOW


def test_a_message_of_unknown_type_in_a_batch_is_rejected_with_its_index() -> None:
    body = [message(type="page"), message(type="hover", messageId="h")]
    result = intake.segment_messages(body, None, edge())
    assert len(result.records) == 1
    assert [(r.index, r.reason) for r in result.rejected] == [(1, "invalid_value")]


@pytest.mark.parametrize(
    ("fields", "session", "source"),
    [
        ({"context": {"sessionId": "ctx-9"}}, "ctx-9", "context"),
        (
            {"integrations": {"Actions Amplitude": {"session_id": 1732363200000}}},
            "anon-1:1732363200000",
            "amplitude",
        ),
        ({"properties": {"session_id": "prop-3"}}, "prop-3", "properties"),
        ({}, "anon-1", "visitor"),
    ],
)
def test_the_session_comes_from_the_first_usual_place(
    fields: dict[str, Any], session: str, source: str
) -> None:
    [event] = stored(message(**fields))
    assert event["session_id"] == session
    assert event["properties"]["session_source"] == source


def test_a_message_without_message_id_gets_the_same_id_each_time_it_is_sent() -> None:
    bare = message()
    del bare["messageId"]
    first, again = stored(bare)[0]["event_id"], stored(dict(bare))[0]["event_id"]
    assert first == again
    assert first.startswith("sha-")


def test_edge_enrichment_received_at_user_agent_and_no_raw_ip() -> None:
    [event] = stored(message(), client_ip="203.0.113.77")
    assert event["received_at"].startswith("2026-11-23T12:00:00")
    assert event["user_agent"] == "Mozilla/5.0 (test)"
    assert "client_ip" not in event


def test_the_address_policy_is_drop_and_nothing_else() -> None:
    assert CollectorSettings(stream_name="s", write_keys=["key-12345678"]).client_ip == "drop"
    with pytest.raises(ValidationError, match="truncate was removed"):
        CollectorSettings(stream_name="s", write_keys=["key-12345678"], client_ip="truncate")


def test_own_events_with_sent_at_are_corrected_for_the_clients_clock() -> None:
    skewed = NOW + timedelta(days=3)  # a client clock three days ahead
    body = {
        "sent_at": skewed.isoformat(),
        "events": [
            {
                "event_id": "e1",
                "type": "click",
                "session_id": "s1",
                "page": "/",
                "timestamp": (skewed - timedelta(seconds=2)).isoformat(),
                "x": 1,
                "y": 2,
            }
        ],
    }
    [record] = intake.own_events(body, edge()).records
    assert decode_event(record.data, None).timestamp == NOW - timedelta(seconds=2)


def test_own_events_that_all_break_the_contract_are_refused_with_the_reason() -> None:
    # GIVEN a batch whose only event breaks the contract
    taken = intake.own_events([{"event_id": "e1", "type": "hover"}], edge())
    # THEN nothing is taken, the whole request is refused 400 with a code and the reason
    refused = taken.refused_whole()
    assert refused is not None
    assert (refused.status, refused.code) == (400, "invalid_events")
    assert "event 0" in refused.reason
    assert taken.records == []
    # AND the event goes on as a refusal the workers keep as a dead letter with that reason
    (envelope,) = taken.refusals
    carried = carried_refusal(envelope.data)
    assert carried is not None
    assert carried.reason is DeadLetterReason.INVALID_VALUE
    assert json.loads(envelope.data)["excerpt"] == '{"event_id":"e1","type":"hover"}'


def test_an_event_past_the_size_limit_alone_is_refused_413() -> None:
    body = [message(type="track", properties={"blob": "x" * 40_000})]
    taken = intake.segment_messages(body, None, edge())
    refused = taken.refused_whole()
    assert refused is not None
    assert (refused.status, refused.code) == (413, "payload_too_large")


def test_an_event_past_the_size_limit_is_refused_alone_and_its_batch_taken() -> None:
    # GIVEN a batch of four good messages and one over the size limit
    good = [message(type="page", messageId=f"m-{n}") for n in range(4)]
    big = message(type="track", event="Big", messageId="m-big", properties={"blob": "x" * 40_000})
    body = [*good[:2], big, *good[2:]]
    # WHEN it is read
    taken = intake.segment_messages(body, None, edge())
    # THEN the four are taken, the big one is rejected alone by index and reason
    assert len(taken.records) == 4
    assert taken.refused_whole() is None
    assert [(r.index, r.reason) for r in taken.rejected] == [(2, "too_large")]
    # AND its refusal keeps an excerpt, its size and hash, not the whole event
    (envelope,) = taken.refusals
    kept = json.loads(envelope.data)
    assert kept["truncated"] is True
    assert kept["clickstream_refused"]["bytes"] > 40_000
    assert len(envelope.data) < 10_000
    carried = carried_refusal(envelope.data)
    assert carried is not None
    assert carried.reason is DeadLetterReason.TOO_LARGE


def test_error_codes_are_named_for_every_status_the_collector_answers() -> None:
    assert {Refused(status, "x").code for status in (400, 401, 413, 415, 503)} == {
        "invalid_request",
        "invalid_write_key",
        "payload_too_large",
        "unsupported_media_type",
        "service_unavailable",
    }


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{not json", {}, 400, "invalid JSON"),
        (b"\xff\xfe", {}, 400, "invalid JSON"),
        (b"[]", {"content_type": "application/xml"}, 415, "content type"),
        (b"[]", {"content_encoding": "br"}, 415, "content encoding"),
        (b"x" * 600, {}, 413, "exceeds"),
        (b"not gzip", {"content_encoding": "gzip"}, 400, "gzip"),
        (
            gzip.compress(b"[" + b"0," * 5000 + b"0]", mtime=0),
            {"content_encoding": "gzip"},
            413,
            "inflates",
        ),
    ],
)
def test_bodies_refused_with_a_reason(
    body: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    options: dict[str, Any] = {"content_type": "text/plain", "content_encoding": None}
    options.update(headers)
    with pytest.raises(Refused) as refused:
        intake.decode_body(body, max_bytes=512, **options)
    assert refused.value.status == status
    assert words in refused.value.reason


def test_text_plain_and_gzip_bodies_are_json() -> None:
    value = {"events": [1, 2]}
    raw = json.dumps(value).encode()
    assert (
        intake.decode_body(
            raw, content_type="text/plain;charset=UTF-8", content_encoding=None, max_bytes=1024
        )
        == value
    )
    assert (
        intake.decode_body(
            gzip.compress(raw),
            content_type="application/json",
            content_encoding="gzip",
            max_bytes=1024,
        )
        == value
    )


def test_write_key_from_basic_auth_or_from_the_body() -> None:
    basic = "Basic " + base64.b64encode(b"key-12345:").decode()
    assert intake.write_key_from(basic, None) == "key-12345"
    assert intake.write_key_from(None, {"writeKey": "body-key-1"}) == "body-key-1"
    assert intake.write_key_from(None, {"batch": [{"writeKey": "in-batch-1"}]}) == "in-batch-1"
    assert intake.write_key_from(None, [{"writeKey": "in-array-1"}]) == "in-array-1"
    assert intake.write_key_from("Basic !!!", None) is None
    assert intake.write_key_from(None, {"events": []}) is None


def test_any_of_several_write_keys_is_accepted_and_nothing_else() -> None:
    keys = ["old-key-123", "new-key-456"]
    assert intake.key_is_known("old-key-123", keys)
    assert intake.key_is_known("new-key-456", keys)
    assert not intake.key_is_known("new-key-45", keys)
    assert not intake.key_is_known(None, keys)
    assert not intake.key_is_known("", keys)


def test_the_tracker_stays_small() -> None:
    from collector.app import tracker_script

    script = tracker_script()
    assert b"sendBeacon" in script
    assert len(gzip.compress(script, 9)) <= 4096  # README states its gzipped size


def test_the_collector_refuses_to_start_without_a_stream_or_write_keys() -> None:
    from clickstream.kernel.errors import ConfigurationError
    from collector.server import check
    from collector.settings import CollectorSettings

    with pytest.raises(ConfigurationError, match="no write keys"):
        check(CollectorSettings(stream_name="s", write_keys=[]))
    with pytest.raises(ConfigurationError, match="no stream"):
        check(CollectorSettings(stream_name=None, write_keys=["key-12345"]))
    with pytest.raises(ValueError, match="at least 8"):
        CollectorSettings(write_keys="short")
    assert CollectorSettings(write_keys="key-one-1, key-two-2").write_keys[
        1
    ].get_secret_value() == ("key-two-2")


def test_the_in_flight_budget_is_a_quarter_of_the_memory_limit_unless_given() -> None:
    from clickstream.kernel.memory import memory_limit_bytes
    from collector.settings import MIB, CollectorSettings

    derived = CollectorSettings().resolved_in_flight_bytes()
    assert derived == max(16 * MIB, min(1024 * MIB, memory_limit_bytes() // 4))
    assert CollectorSettings(in_flight_bytes=64 * MIB).resolved_in_flight_bytes() == 64 * MIB


def test_an_event_nested_past_the_limit_is_rejected_alone_and_its_refusal_kept() -> None:
    # GIVEN a batch of a valid event and one nested 200 levels deep (no SDK nests past a few)
    deep: Any = 1
    for _ in range(200):
        deep = {"a": deep}
    event = {"type": "click", "session_id": "s-1", "page": "/p", "timestamp": NOW.isoformat()}
    body = [{**event, "event_id": "flat"}, {**event, "event_id": "deep", "properties": deep}]
    # WHEN it is taken
    taken = intake.own_events(body, edge())
    # THEN the flat one is in, the deep one rejected as too deep, its envelope serialisable
    assert len(taken.records) == 1
    assert [r.reason for r in taken.rejected] == [DeadLetterReason.TOO_DEEP.value]
    refusal = carried_refusal(taken.refusals[0].data)
    assert refusal is not None
    assert refusal.reason is DeadLetterReason.TOO_DEEP


# -- country, and never the address (issue 40) -------------------------------------------------


def own(event: dict[str, Any], **edge_changes: Any) -> list[bytes]:
    """The records the collector makes of one of our own events."""
    return [record.data for record in intake.own_events([event], edge(**edge_changes)).records]


OWN = {
    "event_id": "e-1",
    "type": "page_view",
    "session_id": "s-1",
    "page": "/",
    "timestamp": NOW.isoformat(),
}


def test_the_client_address_becomes_its_country_and_is_kept_nowhere() -> None:
    # GIVEN a browser at a British address posting an event
    [record] = own(OWN, client_ip="81.2.69.142")
    # THEN the record carries the country, and no byte of the address
    assert json.loads(record)["country"] == "GB"
    assert b"81.2.69" not in record
    assert b"client_ip" not in record


def test_a_private_or_documentation_address_has_no_country() -> None:
    for address in ("10.1.2.3", "203.0.113.77", "127.0.0.1", None):
        [record] = own(OWN, client_ip=address)
        assert "country" not in json.loads(record)


def test_a_server_side_sdks_context_ip_is_the_users_country_not_the_servers() -> None:
    # GIVEN analytics-node on a server in the US reporting a Brazilian visitor's address
    body = message(context={"ip": "200.160.2.3", "page": {"path": "/pricing"}})
    [event] = stored(body, client_ip="8.8.8.8")
    # THEN the country is the visitor's, and neither address is kept
    assert event["country"] == "BR"
    assert "200.160.2.3" not in json.dumps(event)
    assert "8.8.8.8" not in json.dumps(event)


def test_a_producers_own_country_is_kept_and_a_bad_one_refused() -> None:
    [record] = own({**OWN, "country": "NZ"}, client_ip="81.2.69.142")
    assert json.loads(record)["country"] == "NZ"
    refused = intake.own_events([{**OWN, "country": "gb"}], edge())
    assert refused.records == []
    assert refused.rejected_by_reason() == {"invalid_value": 1}
