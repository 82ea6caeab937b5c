"""Segment's analytics.js 2.0 (`@segment/analytics-next`, pinned in infra/sdk, installed by
the bootstrap) in Debian's headless chromium, on a page of another origin, sending to a real
collector set up as the README says for a deployed one (its defaults, a write key), with a
proxy in front that can answer 503 and counts the requests. The SDK's bundle is served by
the test's own page server: nothing is fetched from a CDN (the page's resource list says so).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clickstream import aws
from clickstream.events import carried_refusal
from clickstream.local.stack import LocalStackState
from clickstream.tools.streamread import read_stream
from tests.support.browser import headless_chromium, page_server
from tests.support.collector import WRITE_KEYS, new_stream, running_collector
from tests.support.sdk_proxy import SdkProxy
from tests.support.sdks import analytics_next_site


@pytest.fixture(scope="module")
def stream(local_stack: LocalStackState) -> str:
    return new_stream(local_stack)


@pytest.fixture(scope="module")
def proxy(
    local_stack: LocalStackState, stream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SdkProxy]:
    log_dir = tmp_path_factory.mktemp("browser-sdk-collector")
    with (
        running_collector(local_stack, stream, log_dir) as collector,
        SdkProxy(collector.url) as in_front,
    ):
        yield in_front


def site(root: Path, proxy: SdkProxy, strategy: dict[str, Any] | None) -> Path:
    return analytics_next_site(root, proxy.endpoint, WRITE_KEYS[0], strategy)


def events_in_stream(state: LocalStackState, stream: str) -> Counter[str]:
    kinesis = aws.local_client("kinesis", state.kinesis_endpoint, state.region)
    return Counter(
        json.loads(r.data)["event_id"]
        for r in read_stream(kinesis, stream)
        if carried_refusal(r.data) is None
    )


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
