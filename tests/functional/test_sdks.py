"""The official SDKs sites already run, unchanged but for their host, against a real
collector on its defaults (the local stack's Kinesis behind it): Segment's
`segment-analytics-python` and RudderStack's `rudder-sdk-python` (pinned in the dev group),
Segment's `@segment/analytics-node` (run by node) and analytics.js 2.0
(`@segment/analytics-next`, in Debian's headless chromium; both pinned in infra/sdk). Each
event reaches the stream exactly once, through a 503 and the SDK's own retry too; a wrong
key and an invalid event get answers the SDK reports and does not retry. A proxy in front
of the collector counts each request the SDK makes (`tests/support/sdk_proxy.py`).
`tests/e2e/test_browser.py` sends a session with each through a real worker too."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clickstream.kernel.events import REFUSAL_KEY
from clickstream.local.stack import LocalStackState
from tests.support.browser import headless_chromium, page_server
from tests.support.collector import WRITE_KEYS, new_stream, running_collector, stream_contents
from tests.support.sdk_proxy import SdkProxy
from tests.support.sdks import READS_THE_CODE, SDKS, Errors, analytics_next_site, server_sdk


@pytest.fixture(scope="module")
def stream(local_stack: LocalStackState) -> str:
    return new_stream(local_stack)


@pytest.fixture(scope="module")
def proxy(
    local_stack: LocalStackState, stream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SdkProxy]:
    # The collector as the README deploys it: its defaults, a write key
    log_dir = tmp_path_factory.mktemp("sdk-collector")
    with (
        running_collector(local_stack, stream, log_dir) as collector,
        SdkProxy(collector.url) as in_front,
    ):
        yield in_front


def client(kind: str, key: str, proxy: SdkProxy, errors: Errors) -> Any:
    """The SDK as a site configures it, pointed at the proxy in front of the collector; the
    Python SDKs' own error logs kept quiet (their callbacks are what the tests read)."""
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    logging.getLogger("rudderstack").setLevel(logging.CRITICAL)
    return server_sdk(kind, key, proxy.endpoint, errors)


def reported(kind: str, status: int, code: str) -> list[tuple[int | None, str | None]]:
    """What the SDK's error callback is told of one refused batch."""
    return [(status, code if READS_THE_CODE[kind] else None)]


def events_in_stream(state: LocalStackState, stream: str) -> Counter[str]:
    """How often each event id is in the stream as an event (refusals left out)."""
    events, _ = stream_contents(state, stream)
    return Counter(json.loads(r.data)["event_id"] for r in events)


@pytest.mark.parametrize("kind", sorted(SDKS))
def test_events_arrive_once_through_a_503_and_the_sdks_retry(
    kind: str, local_stack: LocalStackState, stream: str, proxy: SdkProxy
) -> None:
    # GIVEN the SDK pointed at the collector, whose first answer is a 503
    errors = Errors()
    sdk = client(kind, WRITE_KEYS[0], proxy, errors)
    proxy.reset()
    proxy.refuse_next(1)
    ids = [f"{kind}-{uuid.uuid4().hex[:12]}" for _ in range(5)]
    # WHEN a site's code tracks five events and a page view, and flushes
    for n, event_id in enumerate(ids[:4]):
        sdk.track(
            user_id="u-1",
            event="Signed Up" if n % 2 else "Checkout Started",
            properties={"n": n},
            message_id=event_id,
        )
    sdk.page(user_id="u-1", name="Pricing", properties={"path": "/pricing"}, message_id=ids[4])
    sdk.flush()
    sdk.join()
    # THEN the SDK sent the batch again after the 503, with no error reported
    assert proxy.answered_503 == 1
    assert proxy.requests["/v1/batch"] >= 2, proxy.requests
    assert errors.seen == []
    # AND each event is in the stream exactly once
    found = events_in_stream(local_stack, stream)
    assert {event_id: found[event_id] for event_id in ids} == dict.fromkeys(ids, 1)


@pytest.mark.parametrize("kind", sorted(SDKS))
def test_a_wrong_key_and_an_invalid_event_are_reported_once_and_not_retried(
    kind: str, local_stack: LocalStackState, stream: str, proxy: SdkProxy
) -> None:
    # GIVEN a site with a wrong key, and one with an event 40 days old (past the 30-day window)
    wrong, old = Errors(), Errors()
    proxy.reset()
    with_wrong_key = client(kind, "not-a-key-of-ours", proxy, wrong)
    with_wrong_key.track(user_id="u-2", event="Lost", message_id=f"{kind}-wrong-key")
    with_wrong_key.flush()
    with_wrong_key.join()
    wrong_key_requests = proxy.requests["/v1/batch"]
    proxy.reset()
    backfill = client(kind, WRITE_KEYS[1], proxy, old)
    backfill.track(
        user_id="u-3",
        event="Old",
        timestamp=datetime.now(UTC) - timedelta(days=40),
        message_id=f"{kind}-too-old",
    )
    backfill.flush()
    backfill.join()
    # THEN each SDK told its error callback the status and code, after one request: no retry
    assert wrong.seen == reported(kind, 401, "invalid_write_key")
    assert wrong_key_requests == 1
    assert old.seen == reported(kind, 400, "invalid_events")
    assert proxy.requests["/v1/batch"] == 1
    # AND neither event is in the stream as an event; the old one is there as a refusal
    found = events_in_stream(local_stack, stream)
    assert f"{kind}-wrong-key" not in found
    assert f"{kind}-too-old" not in found


def test_an_oversized_event_is_refused_alone_and_its_batch_taken(
    local_stack: LocalStackState, stream: str, proxy: SdkProxy
) -> None:
    # GIVEN RudderStack's SDK, which sends messages up to 4 MB (Segment's drops over 32 KB
    # itself), and a batch of three events, one of 40 KB
    errors = Errors()
    proxy.reset()
    sdk = client("rudder", WRITE_KEYS[0], proxy, errors)
    sdk.track(user_id="u-4", event="Small", message_id="rudder-small-1")
    sdk.track(
        user_id="u-4", event="Big", properties={"blob": "x" * 40_000}, message_id="rudder-big"
    )
    sdk.track(user_id="u-4", event="Small", message_id="rudder-small-2")
    sdk.flush()
    sdk.join()
    # THEN the batch was taken in one request, and only the big event was left out
    assert errors.seen == []
    assert proxy.requests["/v1/batch"] == 1
    found = events_in_stream(local_stack, stream)
    assert {"rudder-small-1", "rudder-small-2"} <= set(found)
    assert "rudder-big" not in found


# analytics.js 2.0 in Debian's headless chromium, on a page of another origin; its bundle is
# served by the test's own page server: nothing is fetched from a CDN (the page's resource
# list says so).


def site(root: Path, proxy: SdkProxy, strategy: dict[str, Any] | None) -> Path:
    return analytics_next_site(root, proxy.endpoint, WRITE_KEYS[0], strategy)


def wait_for(state: LocalStackState, stream: str, ids: list[str]) -> Counter[str]:
    deadline = time.monotonic() + 60
    while True:
        found = events_in_stream(state, stream)
        if all(found[i] for i in ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("strategy", "path"),
    [
        (None, "/v1/t"),
        ({"strategy": "batching", "config": {"size": 4, "timeout": 300}}, "/v1/b"),
    ],
    ids=["standard", "batching"],
)
def test_analytics_next_delivers_each_event_once_through_a_503(
    local_stack: LocalStackState,
    stream: str,
    proxy: SdkProxy,
    tmp_path: Path,
    strategy: dict[str, Any] | None,
    path: str,
) -> None:
    # GIVEN a page of another origin with analytics.js 2.0 pointed at the collector, whose
    # first answer to an event will be 503
    proxy.reset()
    proxy.refuse_next(1)
    with page_server(site(tmp_path, proxy, strategy)) as origin, headless_chromium() as driver:
        driver.get(f"{origin}/index.html")
        # WHEN the visitor's page view and three tracked events are sent
        driver.execute_script("window.page()")
        for n in range(3):
            driver.execute_script("window.track(arguments[0], {n: arguments[1]})", "Clicked", n)
        deadline = time.monotonic() + 60
        while driver.execute_script("return window.sent.length + window.failures.length") < 4:
            assert time.monotonic() < deadline, driver.execute_script("return window.failures")
            time.sleep(0.2)
        sent = driver.execute_script("return window.sent")
        failures = driver.execute_script("return window.failures")
        # (a batch resolves its events' promises when they are queued: the page stays open
        # while the SDK sends them and again after the 503)
        found = wait_for(local_stack, stream, sent)
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
    # THEN each event is in the stream exactly once
    assert failures == []
    assert {event_id: found[event_id] for event_id in sent} == dict.fromkeys(sent, 1)
    # AND the SDK got past the 503 by sending again (its calls preflighted: Authorization,
    # and X-Retry-Count on the retry)
    assert proxy.answered_503 == 1
    assert proxy.requests[path] >= 2, proxy.requests
    assert proxy.preflights[path] >= 1, proxy.preflights
    # AND the page loaded nothing from anywhere but the loopback servers
    assert all(url.startswith("http://127.0.0.1:") for url in resources), resources


def test_analytics_next_drops_a_refused_event_without_retrying_it(
    local_stack: LocalStackState, stream: str, proxy: SdkProxy, tmp_path: Path
) -> None:
    # GIVEN a page whose analytics.js has a write key the collector does not know
    proxy.reset()
    root = site(tmp_path, proxy, None)
    page = (root / "index.html").read_text()
    (root / "index.html").write_text(page.replace(json.dumps(WRITE_KEYS[0]), '"not-our-key-1"'))
    with page_server(root) as origin, headless_chromium() as driver:
        driver.get(f"{origin}/index.html")
        # WHEN it tracks an event, which the collector answers 401
        driver.execute_script("window.track('Refused', {})")
        deadline = time.monotonic() + 30
        while driver.execute_script("return window.sent.length + window.failures.length") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        sent = driver.execute_script("return window.sent")
        # (analytics.js' first retry would come within 0.5-1 s: give it three)
        time.sleep(3)
    # THEN it sent the event once and gave up on it: a 4xx is not retried
    assert proxy.requests["/v1/t"] == 1, proxy.requests
    assert all(events_in_stream(local_stack, stream)[event_id] == 0 for event_id in sent)


def refusals_in_stream(state: LocalStackState, stream: str) -> list[dict[str, Any]]:
    """The collector's refusals in the stream: reason, detail, bytes... and the excerpt."""
    _, refusals = stream_contents(state, stream)
    envelopes = [json.loads(record.data) for record in refusals]
    return [{**envelope[REFUSAL_KEY], "excerpt": envelope["excerpt"]} for envelope in envelopes]


def settled(driver: Any, count: int) -> tuple[list[str], list[str]]:
    """Waits for the page's `count` calls to resolve (sent) or fail; then gives the SDK three
    seconds more, in which its first retry of anything would come (0.5-1 s)."""
    deadline = time.monotonic() + 30
    while driver.execute_script("return window.sent.length + window.failures.length") < count:
        assert time.monotonic() < deadline, driver.execute_script("return window.failures")
        time.sleep(0.2)
    time.sleep(3)
    return driver.execute_script("return window.sent"), driver.execute_script(
        "return window.failures"
    )


def test_analytics_next_sends_an_invalid_event_once_and_the_collector_keeps_its_refusal(
    local_stack: LocalStackState, stream: str, proxy: SdkProxy, tmp_path: Path
) -> None:
    # GIVEN analytics.js 2.0 on a page, sending each event as it comes
    proxy.reset()
    with page_server(site(tmp_path, proxy, None)) as origin, headless_chromium() as driver:
        driver.get(f"{origin}/index.html")
        # WHEN it tracks an event dated 40 days ago (a backfill past the 30-day window),
        # which the collector answers 400 invalid_events
        driver.execute_script(
            "analytics.track('Old', {}, {timestamp: new Date(Date.now() - 40 * 864e5),"
            " messageId: 'next-too-old'})"
            ".then((ctx) => window.sent.push(ctx.event.messageId))"
            ".catch((error) => window.failures.push(String(error)))"
        )
        settled(driver, 1)
    # THEN it sent the event once: a 4xx is dropped, not retried
    assert proxy.requests["/v1/t"] == 1, proxy.requests
    # AND the event is not in the stream as an event, but its refusal is, with the reason
    assert events_in_stream(local_stack, stream)["next-too-old"] == 0
    refused = [r for r in refusals_in_stream(local_stack, stream) if "next-too-old" in r["excerpt"]]
    assert [r["reason"] for r in refused] == ["timestamp_out_of_range"], refused


def test_analytics_next_batch_with_an_oversized_event_is_taken_but_for_that_event(
    local_stack: LocalStackState, stream: str, proxy: SdkProxy, tmp_path: Path
) -> None:
    # GIVEN analytics.js 2.0 batching three events a request (it sets no size limit per
    # event: only a batch's 500 KB), the second carrying 40 KB of properties
    proxy.reset()
    strategy = {"strategy": "batching", "config": {"size": 3, "timeout": 300}}
    with page_server(site(tmp_path, proxy, strategy)) as origin, headless_chromium() as driver:
        driver.get(f"{origin}/index.html")
        # WHEN the three are tracked
        ids = ["next-small-1", "next-big", "next-small-2"]
        sizes = ({"n": 1}, {"blob": "x" * 40_000}, {"n": 2})
        for event_id, properties in zip(ids, sizes, strict=True):
            driver.execute_script(
                "analytics.track('Tracked', arguments[1], {messageId: arguments[0]})"
                ".then((ctx) => window.sent.push(ctx.event.messageId))"
                ".catch((error) => window.failures.push(String(error)))",
                event_id,
                properties,
            )
        _, failures = settled(driver, 3)
        found = wait_for(local_stack, stream, ["next-small-1", "next-small-2"])
    # THEN the batch went out once and was taken: the two small events are in the stream
    # once each, the big one is not
    assert failures == []
    assert proxy.requests["/v1/b"] == 1, proxy.requests
    assert [found[event_id] for event_id in ids] == [1, 0, 1]
    # AND the big one's refusal is there, with its reason and size
    refused = refusals_in_stream(local_stack, stream)
    assert any(r["reason"] == "too_large" and r["bytes"] > 40_000 for r in refused), refused
