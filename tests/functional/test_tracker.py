"""clickstream.js in Debian's headless chromium against a real collector (no workers): what it
sends, what it sends again, and what it must not send."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clickstream.kernel import aws
from clickstream.local.stack import LocalStackState
from clickstream.tools.streamread import read_stream
from tests.support.browser import headless_chromium, page_server
from tests.support.collector import WRITE_KEYS, new_stream, running_collector
from tests.support.kinesis_fault_proxy import KinesisFaultProxy

PAGE = """<!doctype html><html><head><meta charset="utf-8"></head>
<body style="margin:0;height:2000px">
<button id="b" style="position:absolute;left:10px;top:10px">b</button>
<script src="{collector}/clickstream.js" data-write-key="{key}" data-flush-ms="500"{extra}></script>
</body></html>"""


def events_of(state: LocalStackState, stream: str) -> list[dict[str, Any]]:
    kinesis = aws.local_client("kinesis", state.kinesis_endpoint, state.region)
    return [json.loads(r.data) for r in read_stream(kinesis, stream)]


def wait_for(
    state: LocalStackState, stream: str, count: int, seconds: float = 30
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        found = events_of(state, stream)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "site"
    root.mkdir()
    with page_server(root) as origin:
        yield root, origin


def write_page(root: Path, collector: str, extra: str = "") -> None:
    (root / "index.html").write_text(
        PAGE.format(collector=collector, key=WRITE_KEYS[0], extra=extra)
    )


def test_a_batch_the_collector_could_not_take_is_sent_again_with_the_same_ids(
    local_stack: LocalStackState, site: tuple[Path, str], tmp_path: Path
) -> None:
    root, origin = site
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
            allowed_origins="*",
            delivery_timeout_seconds=1,
            retry_after_seconds=1,
        ) as collector,
        headless_chromium() as driver,
    ):
        write_page(root, collector.url)
        # GIVEN a stream that refuses everything: the collector answers 503
        driver.get(f"{origin}/index.html")
        driver.find_element("id", "b").click()
        # the tracker's flushes get 503s and keep the batch (the click joins it once its
        # second is over: whether it was dead)
        deadline = time.monotonic() + 20
        while {json.loads(d)["type"] for d in proxy.failed_entries} != {"click", "page_view"}:
            assert time.monotonic() < deadline, "the tracker never sent both"
            time.sleep(0.2)
        refused_ids = {json.loads(d)["event_id"] for d in proxy.failed_entries}
        assert events_of(local_stack, stream) == []
        # WHEN the stream recovers
        throttling.clear()
        stored = wait_for(local_stack, stream, 2)
    # THEN the events arrive, with the ids they had when they were refused, once each
    ids = [event["event_id"] for event in stored]
    assert sorted(ids) == sorted(set(ids))
    assert set(ids) == refused_ids
    assert sorted(event["type"] for event in stored) == ["click", "page_view"]


def test_identify_puts_the_user_id_on_every_later_event_until_reset(
    local_stack: LocalStackState, site: tuple[Path, str], tmp_path: Path
) -> None:
    root, origin = site
    stream = new_stream(local_stack)
    with (
        running_collector(local_stack, stream, tmp_path, allowed_origins="*") as collector,
        headless_chromium() as driver,
    ):
        write_page(root, collector.url)
        # GIVEN a visitor who views a page, logs in (identify), clicks, and logs out
        driver.get(f"{origin}/index.html")
        driver.execute_script("clickstream.identify('u-hal', {plan: 'pro'})")
        driver.find_element("id", "b").click()
        driver.execute_script("clickstream.reset()")
        driver.get(f"{origin}/index.html")
        driver.execute_script("clickstream.flush()")
        sent = wait_for(local_stack, stream, 5)
    # THEN the events before carry no user id, the identify and the click carry it beside the
    # same anonymous id, and after the reset a new anonymous id and none (the stream's
    # shards give them in no particular order; the first page's scroll depth as it is left)
    assert sorted(e["type"] for e in sent) == [
        "click", "custom", "page_view", "page_view", "scroll",
    ]  # fmt: skip
    (identify,) = [e for e in sent if e["type"] == "custom"]
    (click,) = [e for e in sent if e["type"] == "click"]
    views = [e for e in sent if e["type"] == "page_view"]
    (first,) = [e for e in views if e["anonymous_id"] == identify["anonymous_id"]]
    (after,) = [e for e in views if e is not first]
    assert "user_id" not in first
    assert identify["user_id"] == click["user_id"] == "u-hal"
    assert identify["anonymous_id"] == click["anonymous_id"] == first["anonymous_id"]
    assert identify["properties"] == {"call": "identify", "traits": {"plan": "pro"}}
    assert "user_id" not in after
    assert after["anonymous_id"] != first["anonymous_id"]


def test_opt_out_and_global_privacy_control_send_nothing(
    local_stack: LocalStackState, site: tuple[Path, str], tmp_path: Path
) -> None:
    root, origin = site
    stream = new_stream(local_stack)
    with (
        running_collector(local_stack, stream, tmp_path, allowed_origins="*") as collector,
        headless_chromium() as driver,
    ):
        write_page(root, collector.url, ' data-respect-gpc="true"')
        # GIVEN a visitor whose first page view was sent, who then opted out
        driver.get(f"{origin}/index.html")
        assert [e["type"] for e in wait_for(local_stack, stream, 1)] == ["page_view"]
        driver.execute_script("clickstream.optOut()")
        driver.get(f"{origin}/index.html")
        driver.find_element("id", "b").click()
        driver.execute_script("clickstream.flush()")
        # AND a visitor whose browser sends Global Privacy Control
        driver.execute_script("clickstream.optIn(); localStorage.clear(); sessionStorage.clear()")
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": "Object.defineProperty(navigator, 'globalPrivacyControl', {value: true})"},
        )
        driver.get(f"{origin}/index.html")
        driver.find_element("id", "b").click()
        driver.execute_script("clickstream.flush()")
        time.sleep(2)
        # THEN nothing was sent after the opt-out, nor under GPC
        sent = [e["type"] for e in events_of(local_stack, stream)]
    assert sent == ["page_view"]


def test_a_session_is_renewed_after_thirty_idle_minutes(
    local_stack: LocalStackState, site: tuple[Path, str], tmp_path: Path
) -> None:
    root, origin = site
    stream = new_stream(local_stack)
    with (
        running_collector(local_stack, stream, tmp_path, allowed_origins="*") as collector,
        headless_chromium() as driver,
    ):
        write_page(root, collector.url)
        driver.get(f"{origin}/index.html")
        first = driver.execute_script("return JSON.parse(sessionStorage['clickstream:session']).id")
        driver.get(f"{origin}/index.html")  # a second page within the session
        assert (
            driver.execute_script("return JSON.parse(sessionStorage['clickstream:session']).id")
            == first
        )
        # 31 minutes without activity, as the tracker's clock sees it
        driver.execute_script(
            "var s = JSON.parse(sessionStorage['clickstream:session']);"
            "s.last -= 31 * 60 * 1000; sessionStorage['clickstream:session'] = JSON.stringify(s);"
        )
        driver.get(f"{origin}/index.html")
        renewed = driver.execute_script(
            "return JSON.parse(sessionStorage['clickstream:session']).id"
        )
        stored = wait_for(local_stack, stream, 5)
    assert renewed != first
    views = [e["session_id"] for e in stored if e["type"] == "page_view"]
    assert sorted(views) == sorted([first, first, renewed])
    # (each page left sends its scroll depth in its own view's session, the idle one too)
    assert [e["session_id"] for e in stored if e["type"] == "scroll"] == [first, first]


ELEMENTS_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head>
<body style="margin:0;height:4000px">
<nav class="menu css-1q2w3e"><button id="save" class="Button_primary__3xYz1">Save</button></nav>
<button data-testid="buy" id="ember1234" class="sc-AxjAm btn">Buy <b>now</b></button>
<div class="card"><span class="price">10 EUR</span></div>
<a id="jump" href="#below">Jump down</a>
<input id="email" value="me@example.com">
<button id=":r1:" data-cs="checkout">Checkout <textarea>secret note</textarea></button>
<p id="status"></p>
<script>
document.getElementById("save").addEventListener("click", function () {{
  document.getElementById("status").textContent = "saved";  // the page answers: alive
}});
document.querySelector("[data-cs=checkout]").addEventListener("click", function () {{
  document.getElementById("email").focus();  // focus moves: alive
}});
</script>
<script src="{collector}/clickstream.js" data-write-key="{key}" data-flush-ms="500"></script>
</body></html>"""


def test_clicks_name_their_element_and_whether_they_were_dead_and_views_their_depth(
    local_stack: LocalStackState, site: tuple[Path, str], tmp_path: Path
) -> None:
    root, origin = site
    stream = new_stream(local_stack)
    with (
        running_collector(local_stack, stream, tmp_path, allowed_origins="*") as collector,
        headless_chromium(1000, 800) as driver,
    ):
        (root / "index.html").write_text(
            ELEMENTS_PAGE.format(collector=collector.url, key=WRITE_KEYS[0])
        )
        # GIVEN a page whose elements do something, nothing, or move the focus
        driver.get(f"{origin}/index.html")
        # WHEN a visitor clicks each (a second apart: each click is judged over its second)
        for target in (
            "#save", "[data-testid=buy] b", ".price", "[data-cs=checkout]", "#email", "#jump",
        ):  # fmt: skip
            driver.find_element("css selector", target).click()
            time.sleep(1.3)
        # AND clicks the dead button four times at once (a rage click)
        buy = driver.find_element("css selector", "[data-testid=buy]")
        for _ in range(4):
            buy.click()
        time.sleep(1.3)
        # AND scrolls the viewport's bottom to 3,000 of 4,000 px, back up, and leaves
        driver.execute_script("window.scrollTo(0, 3000 - window.innerHeight)")
        time.sleep(0.3)
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.3)
        driver.get("about:blank")
        sent = wait_for(local_stack, stream, 12)
    clicks = sorted((e for e in sent if e["type"] == "click"), key=lambda e: e["timestamp"])
    found = [
        (c["properties"]["selector"], c["properties"]["text"], c["properties"]["kind"],
         c["properties"].get("dead"))
        for c in clicks
    ]  # fmt: skip
    # THEN each names the element meant, stably: an id, a data attribute (before a generated
    # id), a short path without generated class names; its visible text, never a field's
    # value or a textarea's; dead when nothing happened within the second, unjudged on a field
    assert found == [
        ("button#save", "Save", "button", False),
        ('button[data-testid="buy"]', "Buy now", "button", True),
        ("div.card > span.price", "10 EUR", "other", True),
        ('button[data-cs="checkout"]', "Checkout", "button", False),
        ("input#email", "", "other", None),
        ("a#jump", "Jump down", "link", False),  # the hash changed
        *[('button[data-testid="buy"]', "Buy now", "button", True)] * 4,
    ]
    assert "me@example.com" not in json.dumps(sent)
    assert "secret note" not in json.dumps(sent)
    # AND the page view's deepest scroll as it was left: 3,000 of 4,000 px, not where it ended
    (depth,) = [e for e in sent if "max_depth" in (e.get("properties") or {})]
    (view,) = [e for e in sent if e["type"] == "page_view"]
    assert depth["properties"] == {"max_depth": 0.75, "view": view["event_id"]}
    assert depth["page"] == view["page"]
