"""End to end from a real browser: Debian's headless chromium on a sample page with the tracker,
the collector, the stream, a real KCL worker, the tables and the archive; and a session sent
by each official SDK sites run (analytics.js 2.0 in the browser, Segment's Node and Python
SDKs, RudderStack's Python SDK) through the same collector and worker, each counted once,
through a 503 and the SDK's retry for two of them."""

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
from selenium.webdriver.remote.webdriver import WebDriver

from clickstream.local.workers import LocalWorker, wait_until_caught_up
from clickstream.tools.streamread import read_stream
from insights.archive import archived_events
from tests.support.browser import headless_chromium, page_server
from tests.support.collector import WRITE_KEYS, running_collector
from tests.support.e2e import E2EStack, cli_stack, clickstream
from tests.support.sdk_proxy import SdkProxy
from tests.support.sdks import Errors, analytics_next_site, server_sdk

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


def click_at(driver: WebDriver, x: int, y: int) -> None:
    """A real pointer click at viewport coordinates (x, y)."""
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(x, y).click()  # type: ignore[no-untyped-call]
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
                    if len(mine) >= 9 or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
            kinds = Counter(json.loads(r.data)["type"] for r in mine)
            seen = [
                (r.partition_key, json.loads(r.data).get("type"))
                for r in read_stream(_kinesis(e2e), stream)
            ]
            requests = _requests_answered(collector.log)
            # AND each official SDK sends a session through the same collector, the first
            # answer to Segment's Python SDK and to analytics.js a 503 (each sends again)
            sdk_errors = _send_with_the_sdks(collector.url, tmp_path / "sdk-site")
        # (two scroll marks, 25 % and 50 %, and each page view's depth as it was left)
        assert kinds == {"page_view": 2, "click": 3, "scroll": 4}, (
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
    assert counted["events"] == 9, counted
    assert counted["page_views"] == 2, counted
    assert counted["clicks"] == 3, counted
    # AND each SDK's session was counted once, the retried ones included
    assert sdk_errors == []
    for kind in (*SERVER_SDKS, "browser"):
        result = clickstream("query", "session", _session_of(kind), "--json")
        assert result.returncode == 0, (kind, result.stderr.decode())
        counted = json.loads(result.stdout)
        assert (counted["events"], counted["page_views"]) == (SDK_EVENTS + 1, 1), (kind, counted)
    # AND the archive holds the clicks with their page coordinates and viewport
    archived = [json.loads(line) for line in archived_events(e2e.s3, _bucket(e2e))]
    clicks = [e for e in archived if e["session_id"] == session_id and e["type"] == "click"]
    places = {(c["x"], c["y"]) for c in clicks}
    assert {(100, 200), (300, 100 + scroll_y)} <= places, places
    assert {c["page"] for c in clicks} == {"/shop/"}
    buy = next(c for c in clicks if (c["x"], c["y"]) == (100, 200))
    assert buy["properties"]["selector"] == "button#buy"
    assert (buy["properties"]["text"], buy["properties"]["kind"]) == ("Buy", "button")
    # AND each page view's deepest scroll, the viewport's bottom at 1,600 of 3,000 px
    depths = sorted(
        (e["page"], e["properties"]["max_depth"])
        for e in archived
        if e["session_id"] == session_id and "max_depth" in (e.get("properties") or {})
    )
    assert depths == [("/shop/", 0.533), ("/shop/cart", 0.533)], depths
    assert buy["viewport_width"] > 0


SDK_EVENTS = 5
"""Tracked events of each SDK's session, beside its page view."""
SERVER_SDKS = ("segment", "rudder", "node")


def _session_of(kind: str) -> str:
    return f"sdk-{kind}-session"


def _send_with_the_sdks(collector_url: str, root: Path) -> list[tuple[str, object]]:
    """A session by each official SDK (`context.sessionId`): a page view and `SDK_EVENTS`
    tracked events, through a proxy that answers the first request of Segment's Python SDK
    and of analytics.js 503 (each sends again); what the SDKs reported as errors."""
    failed: list[tuple[str, object]] = []
    with SdkProxy(collector_url) as proxy:
        for kind in SERVER_SDKS:
            errors = Errors()
            if kind == "segment":
                proxy.refuse_next(1)
            sdk = server_sdk(kind, WRITE_KEYS[1], proxy.endpoint, errors)
            context = {"sessionId": _session_of(kind)}
            sdk.page(
                user_id="buyer-1",
                name="Home",
                properties={"path": "/"},
                context=context,
                message_id=f"{kind}-page",
            )
            for n in range(SDK_EVENTS):
                sdk.track(
                    user_id="buyer-1",
                    event="Item Viewed",
                    properties={"n": n},
                    context=context,
                    message_id=f"{kind}-{n}",
                )
            sdk.flush()
            sdk.join()
            failed += [(kind, seen) for seen in errors.seen]
        assert proxy.answered_503 == 1
        proxy.refuse_next(1)
        site = analytics_next_site(
            root, proxy.endpoint, WRITE_KEYS[0], session_id=_session_of("browser")
        )
        with page_server(site) as origin, headless_chromium() as driver:
            driver.get(f"{origin}/index.html")
            driver.execute_script("window.page()")
            for n in range(SDK_EVENTS):
                driver.execute_script("window.track('Item Viewed', {n: arguments[0]})", n)
            # The page stays open until its six calls and the retry of the refused one have
            # been sent (a call's promise resolves before a retry of its delivery).
            deadline = time.monotonic() + 60
            while proxy.requests["/v1/p"] + proxy.requests["/v1/t"] < SDK_EVENTS + 2:
                failures = driver.execute_script("return window.failures")
                assert not failures, failures
                assert time.monotonic() < deadline, f"analytics.js sent {proxy.requests}"
                time.sleep(0.2)
        assert proxy.answered_503 == 2
    return failed


def _requests_answered(log: Path) -> int:
    """CollectorRequests summed over the collector's EMF lines."""
    total = 0
    for line in log.read_text().splitlines():
        if '"CollectorRequests"' in line:
            total += int(json.loads(line).get("CollectorRequests", 0))
    return total


def _kinesis(e2e: E2EStack) -> object:
    from clickstream.kernel import aws

    return aws.local_client("kinesis", e2e.state.kinesis_endpoint, e2e.state.region)


def _bucket(e2e: E2EStack) -> str:
    return e2e.state.outputs["ArchiveBucketName"]
