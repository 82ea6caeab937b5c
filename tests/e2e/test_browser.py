"""End to end from a real browser: Debian's headless chromium on a sample page with the tracker,
the collector, the stream, a real KCL worker, the tables and the archive; and a session sent
by Segment's Python SDK through the same collector and worker, counted once through a 503 and
the SDK's retry."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By

from clickstream.local.workers import LocalWorker, wait_until_caught_up
from clickstream.tools.streamread import read_stream
from insights.archive import archived_events
from tests.support.browser import headless_chromium, page_server
from tests.support.collector import WRITE_KEYS, running_collector
from tests.support.e2e import E2EStack, cli_stack, clickstream
from tests.support.sdk_proxy import SdkProxy

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<style>body {{ margin: 0; height: 3000px; }}
#buy {{ position: absolute; left: 60px; top: 180px; width: 120px; height: 40px; }}
#to-cart {{ position: fixed; left: 600px; top: 20px; }}</style></head>
<body>
<button id="buy" class="primary cta">Buy</button>
<a id="to-cart" href="/shop/cart">Cart</a>
<script>
document.getElementById("to-cart").addEventListener("click", function (e) {{
  e.preventDefault();
  history.pushState({{}}, "", "/shop/cart");  // a single-page-app navigation
}});
</script>
<script src="{collector}/clickstream.js" data-write-key="{key}" data-flush-ms="60000"></script>
</body></html>
"""


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[E2EStack]:
    with cli_stack(tmp_path / "state", 1, "e2ebrowser") as stack:
        yield stack


def click_at(driver: object, x: int, y: int) -> None:
    """A real pointer click at viewport coordinates (x, y)."""
    actions = ActionBuilder(driver)  # type: ignore[arg-type]
    actions.pointer_action.move_to_location(x, y).click()
    actions.perform()


def test_a_browser_session_is_counted_exactly_and_its_clicks_archived_with_coordinates(
    e2e: E2EStack, tmp_path: Path
) -> None:
    stream = e2e.state.outputs["StreamName"]
    site = tmp_path / "site"
    worker = LocalWorker("browser-worker", tmp_path / "worker.log").start()
    try:
        with running_collector(e2e.state, stream, tmp_path, allowed_origins="*") as collector:
            (site / "shop").mkdir(parents=True)
            html = PAGE.format(collector=collector.url, key=WRITE_KEYS[0])
            (site / "shop" / "index.html").write_text(html)
            with page_server(site) as origin, headless_chromium() as driver:
                # GIVEN a visitor on a page with the tracker
                driver.get(f"{origin}/shop/")  # page view 1
                assert driver.execute_script("return !!(window.clickstream && clickstream.loaded)")
                # WHEN they click at known places, scroll, navigate in the app, and leave
                click_at(driver, 100, 200)  # click 1: on #buy, page (100, 200)
                # the viewport's bottom at 1,600 of 3,000 px: past 25% and 50%, short of 75%
                driver.execute_script("window.scrollTo(0, 1600 - window.innerHeight)")
                time.sleep(0.3)
                scroll_y = driver.execute_script("return window.scrollY")
                click_at(driver, 300, 100)  # click 2: page (300, 100 + scrollY)
                ActionChains(driver).click(driver.find_element(By.ID, "to-cart")).perform()
                assert driver.execute_script("return location.pathname") == "/shop/cart"
                session_id = driver.execute_script(
                    "return JSON.parse(sessionStorage.getItem('clickstream:session')).id"
                )
                driver.get("about:blank")  # pagehide: the queue leaves by sendBeacon
                # THEN the stream receives the session's events. The browser stays open while
                # they travel: a beacon is sent after the page is gone, by the browser, and
                # quitting it at once (which no visitor's browser does) would cancel it.
                deadline = time.monotonic() + 60
                while True:
                    mine = [
                        r
                        for r in read_stream(_kinesis(e2e), stream)
                        if r.partition_key == session_id
                    ]
                    if len(mine) >= 7 or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
            kinds = Counter(json.loads(r.data)["type"] for r in mine)
            seen = [
                (r.partition_key, json.loads(r.data).get("type"))
                for r in read_stream(_kinesis(e2e), stream)
            ]
            requests = _requests_answered(collector.log)
            # AND a site's server sends a session with Segment's Python SDK through the same
            # collector, whose first answer is a 503 (the SDK sends the batch again)
            sdk_errors = _send_with_segments_sdk(collector.url)
        assert kinds == {"page_view": 2, "click": 3, "scroll": 2}, (
            f"{kinds}; session {session_id}; collector answered {requests} requests; "
            f"the stream holds {seen[:20]}"
        )
        last = {r.shard_id: r.sequence_number for r in read_stream(_kinesis(e2e), stream)}
        wait_until_caught_up(e2e.dynamodb, e2e.lease_table, last, [worker], timeout=300)
    finally:
        worker.stop()

    # AND the workers counted exactly those events in that session
    result = clickstream("query", "session", session_id, "--json")
    assert result.returncode == 0, result.stderr.decode()
    counted = json.loads(result.stdout)
    assert counted["events"] == 7, counted
    assert counted["page_views"] == 2, counted
    assert counted["clicks"] == 3, counted
    # AND the SDK's session was counted once, through its retry
    assert sdk_errors == []
    result = clickstream("query", "session", SDK_SESSION, "--json")
    assert result.returncode == 0, result.stderr.decode()
    counted = json.loads(result.stdout)
    assert (counted["events"], counted["page_views"]) == (SDK_EVENTS + 1, 1), counted
    # AND the archive holds the clicks with their page coordinates and viewport
    archived = [json.loads(line) for line in archived_events(e2e.s3, _bucket(e2e))]
    clicks = [e for e in archived if e["session_id"] == session_id and e["type"] == "click"]
    places = {(c["x"], c["y"]) for c in clicks}
    assert {(100, 200), (300, 100 + scroll_y)} <= places, places
    assert {c["page"] for c in clicks} == {"/shop/"}
    buy = next(c for c in clicks if (c["x"], c["y"]) == (100, 200))
    assert buy["properties"]["selector"] == "button#buy"
    assert buy["viewport_width"] > 0


SDK_SESSION = "sdk-session-1"
SDK_EVENTS = 5


def _send_with_segments_sdk(collector_url: str) -> list[str]:
    """A page view and `SDK_EVENTS` tracked events of one session (`context.sessionId`) by
    segment-analytics-python, through a proxy that answers its first request 503; the
    errors the SDK reported."""
    from segment.analytics.client import Client

    errors: list[str] = []
    with SdkProxy(collector_url) as proxy:
        proxy.refuse_next(1)
        sdk = Client(
            WRITE_KEYS[1],
            host=proxy.endpoint,
            on_error=lambda error, batch: errors.append(repr(error)),
        )
        context = {"sessionId": SDK_SESSION}
        sdk.page(user_id="buyer-1", name="Home", properties={"path": "/"}, context=context)
        for n in range(SDK_EVENTS):
            sdk.track(user_id="buyer-1", event="Item Viewed", properties={"n": n}, context=context)
        sdk.flush()
        sdk.join()
        assert proxy.answered_503 == 1
        assert proxy.requests["/v1/batch"] >= 2, proxy.requests
    return errors


def _requests_answered(log: Path) -> int:
    """CollectorRequests summed over the collector's EMF lines."""
    total = 0
    for line in log.read_text().splitlines():
        if '"CollectorRequests"' in line:
            total += int(json.loads(line).get("CollectorRequests", 0))
    return total


def _kinesis(e2e: E2EStack) -> object:
    from clickstream import aws

    return aws.local_client("kinesis", e2e.state.kinesis_endpoint, e2e.state.region)


def _bucket(e2e: E2EStack) -> str:
    return e2e.state.outputs["ArchiveBucketName"]
