"""The collector against the local stack: a real server process, real Kinesis calls (kinesis-mock
over loopback, or a fault proxy in front of it), records read back from the stream."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clickstream.kernel.events import ClickEvent, decode_event
from clickstream.kernel.paths import PROJECT_ROOT
from clickstream.local.stack import LocalStackState
from tests.support.collector import (
    WRITE_KEYS,
    basic,
    new_stream,
    now_iso,
    own_event,
    running_collector,
    stream_contents,
)
from tests.support.kinesis_fault_proxy import KinesisFaultProxy

OLD_KEY, NEW_KEY = WRITE_KEYS


def stream_events(state: LocalStackState, stream: str) -> list[tuple[str, ClickEvent]]:
    """(partition key, event) of every event in the stream, through the consumer's gate; the
    refusals the collector passes on (`stream_refusals`) are no events and left out."""
    events, _ = stream_contents(state, stream)
    return [(r.partition_key, decode_event(r.data, None)) for r in events]


def stream_refusals(state: LocalStackState, stream: str) -> list[dict[str, Any]]:
    """The envelopes of the events the collector refused, as the workers will read them."""
    _, refusals = stream_contents(state, stream)
    return [json.loads(r.data) for r in refusals]


@pytest.fixture(scope="module")
def collector_stream(local_stack: LocalStackState) -> str:
    return new_stream(local_stack)


@pytest.fixture(scope="module")
def collector(
    local_stack: LocalStackState, collector_stream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with running_collector(
        local_stack,
        collector_stream,
        tmp_path_factory.mktemp("collector"),
        allowed_origins="https://shop.example",
        max_request_bytes=500 * 1024,
    ) as running:
        yield running.url


def test_each_segment_call_and_both_auth_styles_map_to_the_contract(
    local_stack: LocalStackState, collector_stream: str, collector: str
) -> None:
    page_context = {"page": {"path": "/docs", "referrer": "https://ref.example/"}}
    common = {"anonymousId": "anon-42", "timestamp": now_iso(), "context": page_context}
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("track", {"messageId": "seg-track", "event": "Signed Up"}, "custom"),
        ("page", {"messageId": "seg-page", "properties": {"path": "/docs"}}, "page_view"),
        ("screen", {"messageId": "seg-screen", "name": "Home"}, "page_view"),
        ("identify", {"messageId": "seg-identify", "traits": {"plan": "pro"}}, "custom"),
        ("group", {"messageId": "seg-group", "groupId": "g-1"}, "custom"),
        ("alias", {"messageId": "seg-alias", "previousId": "p-1", "userId": "u-1"}, "custom"),
        (
            "t",
            {"messageId": "seg-short-t", "event": "click", "properties": {"x": 3, "y": 4}},
            "click",
        ),
        ("p", {"messageId": "seg-short-p"}, "page_view"),
    ]
    expected: dict[str, str] = {}
    for index, (path, fields, kind) in enumerate(calls):
        message = {**common, **fields}
        if index % 2:  # analytics.js: key in the body, text/plain, no headers
            response = httpx.post(
                f"{collector}/v1/{path}",
                content=json.dumps({**message, "writeKey": NEW_KEY}),
                headers={"Content-Type": "text/plain"},
            )
        else:  # server libraries: HTTP Basic, key as user name, empty password
            response = httpx.post(f"{collector}/v1/{path}", json=message, headers=basic(OLD_KEY))
        assert (response.status_code, response.json()) == (200, {"success": True}), path
        expected[fields["messageId"]] = kind
    batch = {
        "batch": [
            {**common, "type": "page", "messageId": "seg-batch-1"},
            {**common, "type": "track", "event": "Buy", "messageId": "seg-batch-2"},
        ],
        "sentAt": now_iso(),
        "writeKey": OLD_KEY,
    }
    for path in ("batch", "b"):  # Segment's /v1/batch; analytics.js 2.0's batching path
        body = json.loads(json.dumps(batch).replace("seg-batch", f"seg-{path}"))
        response = httpx.post(f"{collector}/v1/{path}", json=body)
        assert response.status_code == 200, response.text
        expected[f"seg-{path}-1"], expected[f"seg-{path}-2"] = "page_view", "custom"
    gzipped = gzip.compress(json.dumps([own_event("own-gzip")]).encode())
    response = httpx.post(
        f"{collector}/v1/events",
        content=gzipped,
        headers={**basic(NEW_KEY), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    expected["own-gzip"] = "click"

    found = {
        event.event_id: (key, event) for key, event in stream_events(local_stack, collector_stream)
    }
    assert {k: found[k][1].type.value for k in expected if k in found} == expected
    for key, event in (found[k] for k in expected):
        assert key == event.session_id  # partition key = session id
        assert event.user_agent  # from the request's header when the event had none
    assert found["seg-page"][1].page == "/docs"
    assert found["seg-page"][1].referrer == "https://ref.example/"
    assert found["seg-screen"][1].page == "/screens/Home"
    assert (found["seg-short-t"][1].x, found["seg-short-t"][1].y) == (3, 4)
    assert found["seg-track"][1].session_id == "anon-42"  # a visitor-level session


def test_refusals_carry_a_status_a_code_and_a_reason_and_no_event_reaches_the_stream(
    local_stack: LocalStackState, collector_stream: str, collector: str
) -> None:
    before = len(stream_events(local_stack, collector_stream))
    refusals_before = len(stream_refusals(local_stack, collector_stream))
    big = own_event("big", properties={"b": "x" * 40_000})
    cases = [
        (b"{nope", {"Content-Type": "text/plain", **basic(OLD_KEY)}, 400, "invalid_request"),
        (json.dumps([own_event("k")]).encode(), {}, 401, "invalid_write_key"),
        (
            json.dumps([own_event("k")]).encode(),
            basic("not-a-key-at-all"),
            401,
            "invalid_write_key",
        ),
        (json.dumps([big]).encode(), basic(OLD_KEY), 413, "payload_too_large"),
        (b"[" + b"1," * 300_000 + b"1]", basic(OLD_KEY), 413, "payload_too_large"),
        (
            json.dumps([own_event("bad", type="hover")]).encode(),
            basic(OLD_KEY),
            400,
            "invalid_events",
        ),
        (
            b"[]",
            {"Content-Type": "application/xml", **basic(OLD_KEY)},
            415,
            "unsupported_media_type",
        ),
    ]
    for body, headers, status, code in cases:
        response = httpx.post(f"{collector}/v1/events", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.json()["success"] is False
        assert response.json()["code"] == code, response.text
        assert response.json()["message"]
    assert len(stream_events(local_stack, collector_stream)) == before
    # The two refused events (not the refused requests) went on as refusals, with reasons.
    refusals = stream_refusals(local_stack, collector_stream)[refusals_before:]
    assert [r["clickstream_refused"]["reason"] for r in refusals] == ["too_large", "invalid_value"]


def test_an_event_over_the_size_limit_is_rejected_alone_and_its_batch_taken(
    local_stack: LocalStackState, collector_stream: str, collector: str
) -> None:
    body = [
        own_event("beside-big-1"),
        own_event("too-big", properties={"b": "x" * 40_000}),
        own_event("beside-big-2"),
    ]
    response = httpx.post(f"{collector}/v1/events", json=body, headers=basic(OLD_KEY))
    assert response.status_code == 200, response.text
    assert [(r["index"], r["reason"]) for r in response.json()["rejected"]] == [(1, "too_large")]
    ids = {event.event_id for _, event in stream_events(local_stack, collector_stream)}
    assert {"beside-big-1", "beside-big-2"} <= ids
    assert "too-big" not in ids


def test_sdk_telemetry_is_taken_and_dropped(collector: str) -> None:
    # analytics.js 2.0 posts its usage counters to <apiHost>/m every 30 s, with no key
    response = httpx.post(
        f"{collector}/v1/m",
        content=json.dumps({"series": [{"type": "Counter", "metric": "x", "value": 1}]}),
        headers={"Content-Type": "text/plain", "Origin": "https://shop.example"},
    )
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert response.headers["access-control-allow-origin"] == "https://shop.example"


def test_a_partly_valid_batch_names_what_was_rejected(
    local_stack: LocalStackState, collector_stream: str, collector: str
) -> None:
    body = [own_event("partly-good"), own_event("partly-bad", timestamp=12)]
    response = httpx.post(f"{collector}/v1/events", json=body, headers=basic(OLD_KEY))
    assert response.status_code == 200
    assert response.json()["rejected"][0]["index"] == 1
    assert response.json()["rejected"][0]["reason"] == "timestamp_out_of_range"
    ids = {event.event_id for _, event in stream_events(local_stack, collector_stream)}
    assert "partly-good" in ids
    assert "partly-bad" not in ids


def test_cors_preflight_for_configured_origins_only(collector: str) -> None:
    # analytics.js 2.0's retries ask for authorization, content-type and x-retry-count
    asked = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
    }
    allowed = httpx.options(
        f"{collector}/v1/p", headers={"Origin": "https://shop.example", **asked}
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert (
        allowed.headers["access-control-allow-headers"] == asked["Access-Control-Request-Headers"]
    )
    assert allowed.headers["access-control-max-age"] == "86400"
    assert "access-control-allow-credentials" not in allowed.headers
    other = httpx.options(
        f"{collector}/v1/events", headers={"Origin": "https://evil.example", **asked}
    )
    assert "access-control-allow-origin" not in other.headers


def test_the_tracker_health_and_readiness_are_served(collector: str) -> None:
    script = httpx.get(f"{collector}/clickstream.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/javascript")
    assert b"sendBeacon" in script.content
    assert httpx.get(f"{collector}/health").json() == {"status": "ok"}
    assert httpx.get(f"{collector}/ready").json() == {"ready": True, "stream": "ACTIVE"}


async def post_all(url: str, bodies: list[list[dict[str, Any]]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        return await asyncio.gather(
            *(client.post(f"{url}/v1/events", json=body, headers=basic(OLD_KEY)) for body in bodies)
        )


def bodies(prefix: str, requests: int, per_request: int) -> list[list[dict[str, Any]]]:
    return [
        [own_event(f"{prefix}-{r}-{i}", session=f"{prefix}-s{r}") for i in range(per_request)]
        for r in range(requests)
    ]


def test_concurrent_requests_are_batched_into_put_records_of_at_most_500(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    stream = new_stream(local_stack, shards=2)
    with (
        KinesisFaultProxy(local_stack.kinesis_endpoint, lambda *_: False) as proxy,
        running_collector(
            local_stack, stream, tmp_path, kinesis_endpoint=proxy.endpoint, linger_ms=50
        ) as collector,
    ):
        sent = bodies("batched", 120, 10)
        responses = asyncio.run(post_all(collector.url, sent))
        assert [r.status_code for r in responses] == [200] * 120
    calls = proxy.put_records_calls
    assert sum(len(call) for call in calls) == 1200
    assert len(calls) < 120 / 2, "requests were not batched together"
    assert max(len(call) for call in calls) <= 500
    stored = sorted(event.event_id for _, event in stream_events(local_stack, stream))
    assert stored == sorted(event["event_id"] for body in sent for event in body)


def test_a_partial_failure_resends_only_the_failed_entries_before_answering(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    stream = new_stream(local_stack)
    with (
        KinesisFaultProxy(
            local_stack.kinesis_endpoint, lambda call, index, data: call == 0 and index in (1, 4)
        ) as proxy,
        running_collector(local_stack, stream, tmp_path, kinesis_endpoint=proxy.endpoint) as c,
    ):
        body = [own_event(f"partial-{i}") for i in range(6)]
        response = httpx.post(f"{c.url}/v1/events", json=body, headers=basic(OLD_KEY))
        assert response.status_code == 200
        # THEN by the time it answered, the second call had carried the two refused entries
        assert len(proxy.put_records_calls) == 2
        assert proxy.put_records_calls[1] == proxy.failed_entries
        assert [json.loads(d)["event_id"] for d in proxy.failed_entries] == [
            "partial-1",
            "partial-4",
        ]
    stored = sorted(event.event_id for _, event in stream_events(local_stack, stream))
    assert stored == sorted(e["event_id"] for e in body)


def test_a_throttling_stream_gets_503_with_retry_after_and_loses_nothing_accepted(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    stream = new_stream(local_stack)
    throttling = threading.Event()
    throttling.set()
    with (
        KinesisFaultProxy(local_stack.kinesis_endpoint, lambda *_: throttling.is_set()) as proxy,
        running_collector(
            local_stack,
            stream,
            tmp_path,
            kinesis_endpoint=proxy.endpoint,
            in_flight_events=30,
            delivery_timeout_seconds=1.5,
            retry_after_seconds=1,
        ) as collector,
    ):
        # GIVEN a stream that refuses every entry: no request can be answered 200
        sent = bodies("throttled", 8, 10)
        responses = asyncio.run(post_all(collector.url, sent))
        assert {r.status_code for r in responses} == {503}
        assert {r.headers["retry-after"] for r in responses} == {"1"}
        refused_at_once = [r for r in responses if "in flight" in r.json()["message"]]
        assert refused_at_once, "the in-flight budget did not refuse anything"
        # WHEN the stream recovers and the clients send again (same event ids)
        throttling.clear()
        pending, accepted = list(sent), []
        for _ in range(10):
            again = asyncio.run(post_all(collector.url, pending))
            accepted += [b for b, r in zip(pending, again, strict=True) if r.status_code == 200]
            pending = [b for b, r in zip(pending, again, strict=True) if r.status_code != 200]
            if not pending:
                break
            time.sleep(1)
        assert not pending
    # THEN every accepted event is in the stream, and nothing that was throttled got in early
    stored = [event.event_id for _, event in stream_events(local_stack, stream)]
    assert sorted(stored) == sorted(e["event_id"] for body in accepted for e in body)
    assert proxy.failed_entries, "the proxy never throttled"


def test_sigterm_with_requests_in_flight_loses_nothing(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    stream = new_stream(local_stack)
    with (
        KinesisFaultProxy(local_stack.kinesis_endpoint, lambda *_: False) as proxy,
        running_collector(local_stack, stream, tmp_path, kinesis_endpoint=proxy.endpoint) as c,
    ):
        proxy.delay_seconds = 1.5  # each PutRecords is slow: requests are in flight a while
        sent = bodies("sigterm", 20, 5)

        async def post_then_stop() -> tuple[list[httpx.Response], int]:
            posting = asyncio.create_task(post_all(c.url, sent))
            await asyncio.sleep(0.7)
            assert not posting.done()
            code = await asyncio.to_thread(c.stop)
            return await posting, code

        responses, code = asyncio.run(post_then_stop())
        assert code == 0, c.log.read_text()[-2000:]
        assert [r.status_code for r in responses] == [200] * 20
    stored = sorted(event.event_id for _, event in stream_events(local_stack, stream))
    assert stored == sorted(e["event_id"] for body in sent for e in body)


def test_the_locust_file_load_tests_a_collector_without_failures(
    local_stack: LocalStackState, collector_stream: str, collector: str
) -> None:
    # GIVEN the Locust file users run against a deployed collector
    before = len(stream_events(local_stack, collector_stream))
    locust = Path(sys.executable).with_name("locust")
    # WHEN a few simulated visitors run for a few seconds
    result = subprocess.run(
        [
            str(locust),
            "-f",
            str(PROJECT_ROOT / "loadtest" / "locustfile.py"),
            "--headless",
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--run-time",
            "6s",
            "--host",
            collector,
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env={**os.environ, "CLICKSTREAM_WRITE_KEY": OLD_KEY},
        capture_output=True,
        timeout=120,
        check=False,
    )
    # THEN every request succeeded (Locust exits 1 on any failure) and events reached the stream
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert len(stream_events(local_stack, collector_stream)) > before


def test_by_default_pages_of_any_origin_may_send_and_the_collector_says_so(
    local_stack: LocalStackState, collector_stream: str, tmp_path: Path
) -> None:
    # GIVEN a collector started as the README deploys it, with no origins listed
    with running_collector(local_stack, collector_stream, tmp_path) as running:
        # WHEN a page of any site preflights analytics.js 2.0's retry
        preflight = httpx.options(
            f"{running.url}/v1/t",
            headers={
                "Origin": "https://www.some-shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
            },
        )
    # THEN it may send, and the collector's log said at start that any origin may
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "x-retry-count" in preflight.headers["access-control-allow-headers"]
    assert "pages of any origin may send" in running.log.read_text()
