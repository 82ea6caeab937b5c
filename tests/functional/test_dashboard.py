"""The dashboard against the local stack (moto's S3 and DynamoDB, kinesis-mock): its figures
from an archive and page-stats items the consumer's own code wrote from seeded traffic,
checked against the manifest; a failing source; the token gate; the heatmap endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from clickstream.kernel import aws, dynamo
from clickstream.kernel.errors import InsightsError
from clickstream.kernel.events import ClickEvent
from clickstream.local.stack import LocalStackState
from clickstream.stores.alerts import Alert, Rule, alert_item
from clickstream.stores.page_stats import (
    MinuteRollup,
    PageMinuteState,
    PageStatsTable,
    page_item,
    rollup_item,
)
from clickstream.stores.positions import Position
from consumer.core.batch import archive_objects
from consumer.core.positioned import PositionedEvent
from insights import archive_views, query, sql
from insights.dashboard import Dashboard, Sources
from insights.live_sources import ArchiveTail
from insights.settings import DashboardSettings
from insights.web import COOKIE, create_app
from producer.generator import TrafficProfile, generate
from producer.malformed import MalformedRecord
from producer.manifest import Manifest
from tests.support.archive import START, fill, put_clicks, put_rage_burst

with warnings.catch_warnings():
    # Starlette 1.x suggests httpx2 for its test client; the pinned httpx still drives it.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = START + timedelta(minutes=31, seconds=30)
"""The dashboard's clock: the seeded traffic (START to 2.5 minutes later) is in its last hour,
and the 30 minutes of active sessions end in its middle."""
SHARD = "shardId-000000000000"
TOKEN = "a-dashboard-token-for-tests"
LOOPBACK_URL = "http://127.0.0.1:8050"


@dataclass
class Board:
    dashboard: Dashboard
    manifest: Manifest
    malformed: list[MalformedRecord]
    sources: Sources


def write_page_items(dynamodb: object, table: str, manifest: Manifest) -> None:
    """The manifest's page-minutes as a processor of one shard writes them: the items, and
    each minute's live rollup."""
    rollups: dict[str, MinuteRollup] = {}
    for page, minutes in manifest.pages.items():
        for minute, truth in minutes.items():
            state = PageMinuteState(
                page, minute, SHARD, Position(1), truth.views, truth.clicks, truth.sessions
            )
            item = page_item(state, expires_at=2_000_000_000, updated_at=NOW)
            dynamodb.put_item(TableName=table, Item=dynamo.to_dynamo(item))  # type: ignore[attr-defined]
            rollups.setdefault(minute, MinuteRollup(minute, SHARD)).update(state, Position(1))
    for rollup in rollups.values():
        item = rollup_item(rollup, expires_at=2_000_000_000, updated_at=NOW)
        dynamodb.put_item(TableName=table, Item=dynamo.to_dynamo(item))  # type: ignore[attr-defined]


def sources(stack: LocalStackState, bucket: str, **changes: str) -> Sources:
    location = sql.ArchiveLocation(
        bucket, stack.region, "test", "test", endpoint_url=stack.moto_endpoint
    )
    names = {
        "page_stats_table": stack.outputs["PageStatsTableName"],
        "alerts_table": stack.outputs["AlertsTableName"],
        **changes,
    }
    return Sources(
        stream_name=stack.outputs["StreamName"],
        page_stats_table=names["page_stats_table"],
        alerts_table=names["alerts_table"],
        lease_table=f"{stack.outputs['StreamName']}-consumer",
        archive_bucket=bucket,
        dynamodb=aws.local_client("dynamodb", stack.moto_endpoint, stack.region),
        kinesis=aws.local_client("kinesis", stack.kinesis_endpoint, stack.region),
        s3=aws.local_client("s3", stack.moto_endpoint, stack.region),
        duckdb=lambda since: archive_views.connect(location, since=since),
    )


def new_bucket(stack: LocalStackState, prefix: str) -> tuple[Any, str]:
    """An S3 client of the local stack and a new bucket of the test's own."""
    s3 = aws.local_client("s3", stack.moto_endpoint, stack.region)
    bucket = f"{prefix}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    return s3, bucket


@pytest.fixture(scope="module")
def board(local_stack: LocalStackState) -> Board:
    s3, bucket = new_bucket(local_stack, "dashboard")
    manifest, malformed = fill(s3, bucket, seed=11)
    put_rage_burst(s3, bucket)
    found = sources(local_stack, bucket)
    write_page_items(found.dynamodb, found.page_stats_table, manifest)
    alert = Alert(Rule.PAGE_SPIKE, "/pricing", "2026-11-20T09:12", 50.0, 8.0, 4.0)
    found.dynamodb.put_item(
        TableName=found.alerts_table,
        Item=dynamo.to_dynamo(
            alert_item(alert, raised_by="test", raised_at=NOW, expires_at=2_000_000_000)
        ),
    )
    settings = DashboardSettings(heatmap_refresh_seconds=5)
    return Board(Dashboard(found, settings, clock=lambda: NOW), manifest, malformed, found)


def test_the_figures_equal_the_manifest(board: Board) -> None:
    # GIVEN an archive and page-stats items of seeded traffic, a rage burst and an alert
    # WHEN the dashboard takes its snapshot
    figures = board.dashboard.snapshot()
    # THEN nothing failed
    assert figures["errors"] == []
    # AND page views and clicks per minute are the manifest's, every event counted once
    expected: dict[str, Counter[str]] = {}
    for minutes in board.manifest.pages.values():
        for minute, truth in minutes.items():
            expected.setdefault(minute, Counter()).update(
                {"page_view": truth.all_views, "click": truth.all_clicks}
            )
    rows = {row["minute"]: row for row in figures["events_per_minute"]}
    assert len(rows) == 60
    for minute, counts in expected.items():
        burst = 4 if minute == "2026-11-20T09:08" else 0
        assert (rows[minute]["page_view"], rows[minute]["click"] - burst) == (
            counts["page_view"],
            counts["click"],
        ), minute
    assert figures["events_in_window"] == board.manifest.events + 4
    # AND sessions whose last event is in the last 30 minutes are active
    since = NOW - timedelta(minutes=30)
    active = [s for s in board.manifest.sessions.values() if s.last_seen and s.last_seen >= since]
    assert figures["active_sessions"] == len(active) + 1  # and the rage session, at 09:08
    assert 0 < len(active) < len(board.manifest.sessions)
    # AND the dead letters are the malformed records, by the reason each was made for
    reasons = Counter(record.expected_reason for record in board.malformed)
    assert figures["dead_letters"] == dict(reasons)
    # AND the top pages sum the page-minute items, busiest first
    totals = {
        page: (sum(t.views for t in minutes.values()), sum(t.clicks for t in minutes.values()))
        for page, minutes in board.manifest.pages.items()
    }
    ranked = sorted(totals, key=lambda page: (-totals[page][0], -totals[page][1], page))
    assert [(row["page"], row["views"], row["clicks"]) for row in figures["top_pages"]] == [
        (page, *totals[page]) for page in ranked[:10]
    ]
    # AND the alert, the rage burst (and no other), every shard of the stream
    assert [(a["rule"], a["window"], a["subject"]) for a in figures["alerts"]] == [
        ("page_spike", "2026-11-20T09:12", "/pricing")
    ]
    assert figures["alerts"][0]["observed"] == 50
    assert figures["rage_clicks"] == {
        "count": 1,
        "by_page": {"/pricing": 1},
        "read_at": NOW.isoformat(),
    }
    assert [shard["shard_id"] for shard in figures["shards"]] == [
        f"shardId-00000000000{n}" for n in range(4)
    ]
    assert figures["shards_read_at"] == NOW.isoformat()


def test_a_failing_source_is_shown_as_an_error_and_the_others_still_are(
    local_stack: LocalStackState, board: Board
) -> None:
    # GIVEN the tables of the seeded traffic (`board` writes them: under xdist this test may
    # run in a process where no other test of the module did), and a dashboard whose archive
    # bucket does not exist
    broken = sources(local_stack, f"missing-{uuid.uuid4().hex[:8]}")
    dashboard = Dashboard(broken, DashboardSettings(), clock=lambda: NOW)
    # WHEN it takes its snapshot
    figures = dashboard.snapshot()
    # THEN the archive's and the rage clicks' errors are named, the tables' figures are there
    assert {error["source"] for error in figures["errors"]} == {"archive", "rage clicks"}
    assert "events_per_minute" not in figures
    assert figures["top_pages"]
    assert len(figures["shards"]) == 4


def test_a_dashboard_opened_before_the_first_object_shows_those_that_come(
    local_stack: LocalStackState,
) -> None:
    # GIVEN a dashboard on an archive with no objects yet (a stack whose traffic has not come)
    s3, bucket = new_bucket(local_stack, "dashboard-late")
    settings = DashboardSettings(refresh_seconds=1, heatmap_refresh_seconds=5)
    dashboard = Dashboard(sources(local_stack, bucket), settings, clock=lambda: NOW)
    first = dashboard.snapshot()
    assert (first["events_in_window"], first["rage_clicks"]["count"]) == (0, 0)
    assert dashboard.heatmap("/pricing", None)[0]["clicks"] == 0
    # WHEN the traffic's objects arrive, and a refresh interval passes
    manifest, _ = fill(s3, bucket, seed=11)
    put_rage_burst(s3, bucket)
    time.sleep(5.1)
    # THEN the figures, computed again in the background (the rage clicks on their own),
    # show them all: no view stays as empty as it was made
    deadline = time.monotonic() + 30
    later = dashboard.snapshot()  # the old figures at once; new ones are on their way
    while (
        later["events_in_window"] == 0 or later["rage_clicks"]["count"] == 0
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
        later = dashboard.snapshot()
    assert later["events_in_window"] == manifest.events + 4
    assert later["rage_clicks"]["count"] == 1
    assert dashboard.heatmap("/pricing", None)[0]["clicks"] >= 4


def test_off_loopback_every_request_but_health_needs_the_token(board: Board) -> None:
    client = TestClient(create_app(board.dashboard, token=TOKEN), follow_redirects=False)
    # GIVEN no token: only the health check answers
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 401
    assert client.get("/api/snapshot").status_code == 401
    assert client.get("/?token=wrong-token-of-some-length").status_code == 401
    # WHEN the printed URL is opened: a cookie, and the token out of the address bar
    first = client.get(f"/?token={TOKEN}&page=%2Fpricing")
    assert first.status_code == 303
    assert first.headers["location"] == "/?page=%2Fpricing"
    # AND the cookie is a session of its own, expiring: never the token (before, it was)
    assert first.cookies[COOKIE] != TOKEN
    assert TOKEN not in first.headers["set-cookie"]
    assert "max-age=43200" in first.headers["set-cookie"].lower()
    assert "httponly" in first.headers["set-cookie"].lower()
    # THEN the cookie opens the page and its figures, as a bearer header does
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/dashboard.js").status_code == 200
    bearer = TestClient(create_app(board.dashboard, token=TOKEN))
    answer = bearer.get("/api/snapshot", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.json()["as_of"] == NOW.isoformat()


def test_the_heatmap_endpoints_give_bins_rage_clicks_and_a_png(board: Board) -> None:
    client = TestClient(create_app(board.dashboard, token=None), base_url=LOOPBACK_URL)
    figures = client.get("/api/heatmap", params={"page": "/pricing"}).json()
    assert [(r["session_id"], r["clicks"]) for r in figures["rage_clicks"]] == [("s-rage", 4)]
    clicks = sum(truth.clicks for truth in board.manifest.pages.get("/pricing", {}).values())
    assert figures["clicks"] == clicks + 4
    assert figures["clicks_per_width_class"][figures["width_class"]] > 0
    picture = client.get("/api/heatmap.png", params={"page": "/pricing"})
    assert picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG")
    nothing = client.get("/api/heatmap.png", params={"page": "/never-clicked"})
    assert nothing.status_code == 404
    assert client.get("/api/heatmap").status_code == 400
    assert client.get("/api/heatmap", params={"page": "/", "width": "huge"}).status_code == 400


def test_on_loopback_only_loopback_host_names_are_answered(board: Board) -> None:
    """Before: any Host was answered, so a page whose name an attacker pointed at 127.0.0.1
    (DNS rebinding) could read the figures and start heatmaps."""
    app = create_app(board.dashboard, token=None)
    for name in ("http://127.0.0.1:8050", "http://localhost:8050", "http://[::1]:8050"):
        assert TestClient(app, base_url=name).get("/health").status_code == 200, name
    rebound = TestClient(app, base_url="http://rebound.evil.example:8050")
    for path in ("/", "/api/snapshot", "/api/heatmap?page=/pricing"):
        assert rebound.get(path).status_code == 421, path


def test_one_visitors_far_click_neither_sizes_the_map_nor_fails_it(
    local_stack: LocalStackState,
) -> None:
    """Before: a click at (1e6, 1e6) made `/api/heatmap.png` answer 500 (MemoryError), and
    each poll of each viewer drew it again."""
    # GIVEN a page with an ordinary click and one where no page reaches
    s3, bucket = new_bucket(local_stack, "dashboard-far")
    put_clicks(s3, bucket, "/far", [(120, 80), (10**6, 10**6)])
    dashboard = Dashboard(sources(local_stack, bucket), DashboardSettings(), clock=lambda: NOW)
    client = TestClient(create_app(dashboard, token=None), base_url=LOOPBACK_URL)
    # WHEN the map is asked for
    picture = client.get("/api/heatmap.png", params={"page": "/far"})
    figures = client.get("/api/heatmap", params={"page": "/far"}).json()
    # THEN it is drawn on the bounded canvas, the far click counted but not drawn
    assert picture.status_code == 200
    assert picture.content.startswith(b"\x89PNG")
    assert (figures["clicks"], figures["clicks_off_canvas"]) == (2, 1)


def test_a_failed_heatmap_is_kept_like_a_drawn_one_and_says_nothing_of_its_cause(
    local_stack: LocalStackState,
) -> None:
    # GIVEN a dashboard whose archive reading fails (SQL quoting a page's text, say)
    readings = []

    def failing(since: datetime) -> Any:
        readings.append(since)
        raise InsightsError("query failed: Parser Error: SELECT session_id FROM raw_events")

    broken = replace(sources(local_stack, "unused"), duckdb=failing)
    dashboard = Dashboard(broken, DashboardSettings(), clock=lambda: NOW)
    client = TestClient(create_app(dashboard, token=None), base_url=LOOPBACK_URL)
    # WHEN viewers poll the page's map
    answers = [client.get("/api/heatmap", params={"page": "/pricing"}) for _ in range(3)]
    # THEN it was read once for them all (the archive's hours of the dashboard's window
    # only), and the answer names no SQL
    assert [a.status_code for a in answers] == [502] * 3
    assert readings == [NOW - timedelta(minutes=DashboardSettings().window_minutes)]
    assert "SELECT" not in answers[0].text
    # AND a page name with a control character is refused before anything is read
    nul = client.get("/api/heatmap", params={"page": "/pri\x00cing"})
    assert nul.status_code == 400
    assert len(readings) == 1


def test_the_page_loads_nothing_from_elsewhere() -> None:
    import re
    from importlib import resources

    for name in (
        "dashboard.html",
        "dashboard.js",
        "dashboard.css",
        "site.html",
        "site.js",
        "site.css",
    ):
        text = resources.files("insights").joinpath(f"static/{name}").read_text()
        # The SVG namespace is a name, not a fetch.
        without_namespace = text.replace("http://www.w3.org/2000/svg", "")
        assert "http://" not in without_namespace, name
        assert "https://" not in without_namespace, name
        for target in re.findall(r'(?:src|href)="([^"]*)"', text):
            # our assets, inline data, or our own pages (the two views link each other)
            assert target.startswith(("/static/", "data:")) or target in {"/", "/operator"}, (
                name,
                target,
            )
        assert "@import" not in text, name


def crowded_minute(local_stack: LocalStackState) -> tuple[Any, str, str]:
    """A page-stats table where, in one minute, shard 0 had a crawler's 120 pages besides one
    click on /pricing (its rollup lists only its busiest 100 pages, not /pricing) and shard 1
    had /pricing's views (its rollup lists every page it had): client, table, minute."""
    dynamodb = aws.local_client("dynamodb", local_stack.moto_endpoint, local_stack.region)
    table = f"page-stats-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "page", "KeyType": "HASH"},
            {"AttributeName": "bucket_shard", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "page", "AttributeType": "S"},
            {"AttributeName": "bucket_shard", "AttributeType": "S"},
            {"AttributeName": "window_shard", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-window",
                "KeySchema": [
                    {"AttributeName": "window_shard", "KeyType": "HASH"},
                    {"AttributeName": "page", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    minute = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    crowded, quiet = "shardId-000000000000", "shardId-000000000001"
    shard_pages = {
        crowded: [(f"/crawl/{n:03d}", 1, 0, 1) for n in range(120)] + [("/pricing", 0, 1, 1)],
        quiet: [("/pricing", 5, 3, 4)],
    }
    for shard, pages in shard_pages.items():
        rollup = MinuteRollup(minute, shard)
        for page, views, clicks, sessions in pages:
            state = PageMinuteState(page, minute, shard, Position(1), views, clicks, sessions)
            item = page_item(state, expires_at=2_000_000_000, updated_at=NOW)
            dynamodb.put_item(TableName=table, Item=dynamo.to_dynamo(item))
            rollup.update(state, Position(1))
        item = rollup_item(rollup, expires_at=2_000_000_000, updated_at=NOW)
        dynamodb.put_item(TableName=table, Item=dynamo.to_dynamo(item))
    return dynamodb, table, minute


def test_a_page_a_crawlers_minute_pushed_out_of_a_rollup_is_still_counted_exactly(
    local_stack: LocalStackState,
) -> None:
    # GIVEN a minute where a crawler pushed /pricing out of one shard's rollup
    _, table, _ = crowded_minute(local_stack)
    _, bucket = new_bucket(local_stack, "dashboard-crawl")
    dashboard = Dashboard(
        sources(local_stack, bucket, page_stats_table=table), DashboardSettings(), clock=lambda: NOW
    )
    # WHEN the dashboard takes its snapshot
    figures = dashboard.snapshot()
    # THEN /pricing leads the top pages with every count, the crowded shard's click included
    assert figures["top_pages"][0] | {"minutes": 0, "recent_views": 0} == {
        "page": "/pricing",
        "views": 5,
        "clicks": 4,
        "sessions": 5,
        "bot_views": 0,
        "minutes": 0,
        "recent_views": 0,
    }
    # AND the crawler's pages count as their rollup and items have them
    assert {row["page"]: row["views"] for row in figures["top_pages"][1:]} == {
        f"/crawl/{n:03d}": 1 for n in range(9)
    }


def test_an_archive_object_a_replay_rewrites_longer_is_counted_again(
    local_stack: LocalStackState,
) -> None:
    # GIVEN a worker's archived window of 300 events, read by the dashboard's archive tail
    s3, bucket = new_bucket(local_stack, "dashboard-replay")
    records, _ = generate(5, START, 600, TrafficProfile(malformed=0, sessions_per_minute=60))
    events = [
        PositionedEvent(Position(n), record, record.to_record(), record.session_id)
        for n, record in enumerate(records, start=1)
        if isinstance(record, ClickEvent)
    ]

    def archive(window: list[PositionedEvent]) -> set[str]:
        objects = archive_objects(SHARD, window, [])
        for item in objects:
            s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
        return {item.key for item in objects}

    first_keys = archive(events[:300])
    tail = ArchiveTail(s3, bucket)
    tail.refresh(NOW, timedelta(hours=1))
    assert sum(sum(t.per_minute.values()) for t in tail.raw_tallies()) == 300
    # WHEN the worker lost its lease before checkpointing, and the new owner's replay from the
    # same checkpoint archived a longer first window under the same keys
    assert archive(events[:500]) == first_keys
    tail.refresh(NOW, timedelta(hours=1))
    # THEN the tail counts the object as it is now, each event once
    assert sum(sum(t.per_minute.values()) for t in tail.raw_tallies()) == 500
    # AND objects that did not change are not read again
    reads: list[str] = []
    s3.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: reads.append(params["Key"])
    )
    tail.refresh(NOW, timedelta(hours=1))
    assert reads == []
    assert sum(sum(t.per_minute.values()) for t in tail.raw_tallies()) == 500


def test_query_pages_of_a_minute_counts_a_page_a_crawler_pushed_out_of_a_rollup(
    local_stack: LocalStackState,
) -> None:
    # GIVEN a minute where a crawler pushed /pricing out of one shard's rollup
    dynamodb, table, minute = crowded_minute(local_stack)
    # WHEN `query pages --minute` reads it
    rows = query.merge_pages(PageStatsTable(dynamodb, table).minute_rows(minute))
    # THEN /pricing leads with every count, the crowded shard's click included
    assert rows[0].as_dict() == {
        "page": "/pricing",
        "views": 5,
        "clicks": 4,
        "sessions": 5,
        "bot_views": 0,
        "minutes": 1,
    }
    # AND every crawled page is there once, from the rollup or from its item
    assert sorted(row.page for row in rows[1:]) == [f"/crawl/{n:03d}" for n in range(120)]
    assert {row.views for row in rows[1:]} == {1}


def test_a_token_the_operator_gave_is_never_printed(local_stack: LocalStackState) -> None:
    """Before: the start banner printed `?token=<the token>` whatever its source, into
    terminals and CI logs."""
    from tests.support.stack import free_port

    _, bucket = new_bucket(local_stack, "dashboard-banner")
    env = {
        **os.environ,
        **local_stack.environment(),
        "CLICKSTREAM_ARCHIVE_BUCKET": bucket,
        "CLICKSTREAM_DASHBOARD_TOKEN": TOKEN,
    }
    command = [sys.executable, "-m", "clickstream.cli", "dashboard", "--port", str(free_port())]
    with subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as started:
        try:
            assert started.stderr is not None
            lines = []
            for line in started.stderr:  # ends when it prints the banner, or exits
                lines.append(line)
                if "dashboard at" in line:
                    break
        finally:
            started.terminate()
            started.wait(30)
    banner = "".join(lines)
    assert "dashboard at http://127.0.0.1:" in banner, banner
    assert "?token=<CLICKSTREAM_DASHBOARD_TOKEN>" in banner
    assert TOKEN not in banner
