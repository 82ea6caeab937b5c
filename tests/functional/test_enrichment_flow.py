"""Segment's calls with an end user's address, a campaign and user agents, through the real
collector into the stream, then the real record processor over what the stream holds: the
stream has each event's country and no address anywhere, and the sessions their landing's
acquisition, device and country."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clickstream.kernel.events import decode_event
from clickstream.local.stack import LocalStackState
from clickstream.stores.sessions import SessionsTable
from consumer.testing import protocol_records
from tests.functional.test_processor import Harness, harness, new_shard  # noqa: F401
from tests.support.collector import (
    WRITE_KEYS,
    basic,
    new_stream,
    now_iso,
    running_collector,
    stream_contents,
)
from tests.support.privacy import addresses_found
from tests.support.protocol import ScriptedDaemon

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SITE = "https://shop.example.com"
ADDRESSES = ("217.160.0.1", "2001:4860:4860::8888", "203.0.113.9")
"""Germany's, the United States' (IPv6), and a documentation address no registry assigned."""


def message(kind: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": message_id, "timestamp": now_iso(), **fields}


@pytest.fixture
def segment_stream(local_stack: LocalStackState, tmp_path: Any) -> Iterator[tuple[str, str]]:
    stream = new_stream(local_stack)
    with running_collector(local_stack, stream, tmp_path / "logs") as running:
        yield stream, running.url
        running.stop()


def test_segment_calls_reach_the_sessions_with_country_and_acquisition_and_no_address(
    local_stack: LocalStackState,
    segment_stream: tuple[str, str],
    harness: Harness,  # noqa: F811
) -> None:
    stream, url = segment_stream
    # GIVEN a server-side source's batch: a newsletter visit from Germany on a phone (the
    # campaign Segment read from the landing's tags, the page's URL without them), a paid
    # visit from the US on a desktop, a visit whose address no registry assigned
    visits = {
        "seg-news": (ADDRESSES[0], IPHONE, {"source": "newsletter", "medium": "email",
                                            "name": "december"}, None),
        "seg-ads": (ADDRESSES[1], FIREFOX, None, "https://www.google.com/"),
        "seg-none": (ADDRESSES[2], FIREFOX, None, None),
    }  # fmt: skip
    batch = []
    for session, (address, agent, campaign, referrer) in visits.items():
        context: dict[str, Any] = {
            "ip": address,
            "userAgent": agent,
            "sessionId": session,
            "page": {"url": f"{SITE}/pricing", "referrer": referrer},
        }
        if campaign:
            context["campaign"] = campaign
        if session == "seg-ads":
            context["page"]["url"] = f"{SITE}/pricing?gclid=Cj0KCQ"
        batch.append(message("page", f"{session}-1", anonymousId=f"a-{session}", context=context))
        later = {**context, "page": {"url": f"{SITE}/docs", "referrer": f"{SITE}/pricing"}}
        batch.append(message("page", f"{session}-2", anonymousId=f"a-{session}", context=later))
    response = httpx.post(f"{url}/v1/batch", json={"batch": batch}, headers=basic(WRITE_KEYS[0]))
    assert response.status_code == 200, response.text
    # THEN the stream holds each event's country, and no address in any record
    records, _ = stream_contents(local_stack, stream)
    assert len(records) == 6
    events = {e.event_id: e for e in (decode_event(r.data, None) for r in records)}
    assert {e.session_id: e.country for e in events.values()} == {
        "seg-news": "DE",
        "seg-ads": "US",
        "seg-none": None,
    }
    texts = [(f"record {r.sequence_number}", r.data.decode()) for r in records]
    assert addresses_found(texts, ADDRESSES) == []
    # WHEN the real processor reads the stream's records
    shard = new_shard()
    payloads = protocol_records((r.data, r.partition_key) for r in records)
    daemon = ScriptedDaemon().initialize(shard).process(payloads)
    daemon.shutdown_requested()
    daemon.run(harness.processor())
    # THEN each session carries its landing's acquisition, its device and its country
    table = SessionsTable(harness.dynamodb, harness.tables.sessions)
    shown = {session: table.readable(session) for session in visits}
    wanted = {
        "seg-news": ("newsletter", "email", "december", "Email", "mobile", "DE"),
        "seg-ads": ("google", "cpc", None, "Paid Search", "desktop", "US"),
        "seg-none": ("(direct)", "(none)", None, "Direct", "desktop", None),
    }
    for session, expected in wanted.items():
        item = shown[session]
        assert item is not None, session
        found = tuple(
            item.get(name)
            for name in ("source", "medium", "campaign", "channel", "device_type", "country")
        )
        assert found == expected, session
        assert item["page_views"] == 2
    # AND no address in the session items either
    items = [(session, repr(item)) for session, item in shown.items()]
    assert addresses_found(items, ADDRESSES) == []
