"""`clickstream report` over seeded hours, open, mixed and compacted: every dimension, filters,
the previous range, a day of a zone half an hour off UTC, against a report computed from the
events in Python (`tests.support.report_truth`)."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog

from clickstream.kernel import aws
from clickstream.kernel.events import ClickEvent, EventType
from clickstream.kernel.retry import Backoff
from clickstream.local.stack import LocalStackState
from clickstream.stores.alerts import Alert, Rule
from clickstream.stores.archive_layout import hour_start_key, raw_prefix, start_of_day
from clickstream.stores.positions import Position
from consumer.core.batch import archive_objects, verdict_objects
from consumer.core.positioned import PositionedEvent
from consumer.sinks import S3Archive
from insights import archive_views, report, sql
from insights.compaction import Compactor
from insights.dashboard import Dashboard, Sources
from insights.lake import PART_KINDS, hours_between
from insights.lake_reader import month_reading
from insights.lake_store import LakeStore
from insights.settings import DashboardSettings, LakeSettings
from insights.web import create_app
from producer.generator import TrafficProfile, generate
from producer.manifest import shard_index
from producer.world import country_of_session
from tests.support import report_truth as truth
from tests.support.archive import put_objects, shard_name

SEED = 29
START = datetime(2026, 11, 20, 17, 20, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Kolkata")
"""UTC+05:30: its 21 November starts at 18:30 UTC, inside the traffic, and off the hour."""
DAY = report.range_of(START, ZONE, start="2026-11-21", end="2026-11-21")
DIMENSIONS = [*report.SESSION_DIMENSIONS, "page", "event"]


class Seeded:
    def __init__(self, s3: Any, location: sql.ArchiveLocation, events: list[ClickEvent]) -> None:
        self.s3 = s3
        self.location = location
        self.events = events

    def sources(self, dynamodb: Any = None) -> Sources:
        """The dashboard's sources over the seeded archive (no stream, no tables)."""
        s3, location = self.s3, self.location
        return Sources(
            stream_name="unused", page_stats_table="unused", alerts_table=None,
            lease_table="unused", archive_bucket=location.bucket, dynamodb=dynamodb,
            kinesis=None, s3=s3,
            duckdb=lambda since: archive_views.connect(location, s3, since=since, enrich=False),
            reports=lambda since: archive_views.connect(
                location, s3, since=since, raw_views=False
            ),
        )  # fmt: skip

    def report(self, query: report.Query, *, compare: bool = False) -> dict[str, Any]:
        connection = archive_views.connect(
            self.location,
            self.s3,
            since=report.reading_start(query, compare=compare),
            raw_views=False,
        )
        # As the dashboard keeps a reading: its people marked (`report.KEPT_PEOPLE`).
        report.prepare(connection, people=True)
        return report.report_of(connection, query, compare=compare).as_dict(query)


@contextlib.contextmanager
def raw_listings(s3: Any) -> Iterator[list[dict[str, Any]]]:
    """The ListObjectsV2 requests under `raw/` made through `s3` meanwhile."""
    seen: list[dict[str, Any]] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        if params.get("Prefix", "").startswith("raw/"):
            seen.append(dict(params))

    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", note)
    try:
        yield seen
    finally:
        s3.meta.events.unregister("provide-client-params.s3.ListObjectsV2", note)


@pytest.fixture(scope="module")
def seeded(local_stack: LocalStackState) -> Seeded:
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"reports-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    records, anomalies = generate(
        SEED, START, 7000, TrafficProfile(malformed=0, sessions_per_minute=3, bot_sessions=3)
    )
    events = [
        record.model_copy(update={"country": country_of_session(SEED, record.session_id).code})
        for record in records
        if isinstance(record, ClickEvent)
    ]
    assert max(e.timestamp for e in events) > START + timedelta(hours=2)
    per_shard: list[list[PositionedEvent]] = [[], []]
    for sequence, event in enumerate(events, start=1):
        item = PositionedEvent(Position(sequence), event, event.to_record(), event.session_id)
        per_shard[shard_index(event.session_id, 2)].append(item)
    for index, shard in enumerate(per_shard):
        for chunk in range(0, len(shard), 500):
            put_objects(s3, bucket, shard_name(index), shard[chunk : chunk + 500])
    # The bot rule's verdicts on the scripted sessions, as the workers file them (one of
    # them passes for Chrome: only its verdict makes it a bot).
    for anomaly in anomalies:
        if anomaly.kind == "bot_session":
            judged = Alert(
                Rule.BOT_SESSION,
                anomaly.subject,
                f"{anomaly.window_start:%Y-%m-%dT%H:%M}",
                1,
                None,
                0.5,
            )
            for verdict in verdict_objects([judged]):
                s3.put_object(Bucket=bucket, Key=verdict.key, Body=verdict.body)
    location = sql.ArchiveLocation(
        bucket, local_stack.region, "test", "test", endpoint_url=local_stack.moto_endpoint
    )
    return Seeded(s3, location, events)


def judged_sessions(seeded: Seeded) -> frozenset[str]:
    return frozenset(e.session_id for e in seeded.events if e.session_id.startswith("bot-"))


def carted(visit: truth.Visit) -> bool:
    return any(
        e.type is EventType.CUSTOM and (e.properties or {}).get("name") == "add_to_cart"
        for e in visit.events
    )


def close(found: dict[str, Any], expected: dict[str, Any]) -> None:
    """Counts exactly; the bounce rate and mean duration as rounded for output."""
    for name, value in expected.items():
        if name == "bounce_rate" and value is not None:
            assert found[name] == pytest.approx(value, abs=5.1e-5), name
        elif name == "visit_duration_s" and value is not None:
            assert found[name] == pytest.approx(value, abs=0.051), name
        else:
            assert found[name] == value, name


def check(seeded: Seeded) -> None:
    """Every dimension, a filter of each kind, the previous range, bots apart."""
    visits = truth.visits_of(seeded.events, judged_sessions(seeded))
    day = truth.in_range(visits, DAY.start, DAY.end, bots=False)
    before = truth.in_range(visits, DAY.previous.start, DAY.previous.end, bots=False)
    assert len(day) > 100
    assert len(before) > 50
    for by in DIMENSIONS:
        query = report.Query(DAY, by=report.dimension(by), top=1000)
        found = seeded.report(query, compare=by == "channel")
        close(found["totals"], truth.totals(day))
        expected = truth.rows(day, by)
        assert {row["value"] for row in found["rows"]} == set(expected), by
        for row in found["rows"]:
            close(row, expected[row["value"]])
        if by == "channel":
            close(found["previous"]["totals"], truth.totals(before))
            assert found["previous"]["range"]["to"] == DAY.start.astimezone(ZONE).isoformat()
    # the day's graph: hours in the zone (half past, here), each visit in one
    series = seeded.report(report.Query(DAY))["series"]
    assert series[0]["bucket"] == "2026-11-21T00:00:00+05:30"
    assert sum(bucket["visits"] for bucket in series) == len(day)
    # filters: a session dimension, a page, an event, and a dimension given twice
    top_channel = max(truth.rows(day, "channel").items(), key=lambda kv: kv[1]["visits"])[0]
    wanted = [
        (("channel", (top_channel,)), [v for v in day if v.values["channel"] == top_channel]),
        (
            ("page", ("/pricing",)),
            [v for v in day if "/pricing" in {truth.path(e.page) for e in v.views}],
        ),
        (("event", ("add_to_cart",)), [v for v in day if carted(v)]),
        (
            ("device_type", ("mobile", "tablet")),
            [v for v in day if v.values["device_type"] in {"mobile", "tablet"}],
        ),
    ]
    for (name, values), members in wanted:
        assert members, name
        query = report.Query(
            DAY,
            by=report.dimension("country"),
            filters=((report.dimension(name), values),),
            top=1000,
        )
        found = seeded.report(query)
        close(found["totals"], truth.totals(members))
        for row in found["rows"]:
            close(row, truth.rows(members, "country")[row["value"]])
    # the one statement `report --sql` prints (for Athena) gives the same figures
    for name in ("", "source", "page", "event"):
        query = report.Query(DAY, by=report.dimension(name) if name else None, top=1000)
        connection = archive_views.connect(
            seeded.location,
            seeded.s3,
            since=report.reading_start(query, compare=False),
            raw_views=False,
        )
        columns, found_rows = sql.run(connection, report.portable_sql(query))
        rows = [dict(zip(columns, row, strict=True)) for row in found_rows]
        if not name:
            close(rows[0], truth.totals(day))
            continue
        expected = truth.rows(day, name)
        assert {row["value"] for row in rows} == set(expected), name
        for row in rows:
            close(row, expected[row["value"]])
    # bots: theirs alone, the scripted ones among them
    bots = truth.in_range(visits, DAY.previous.start, DAY.end, bots=True)
    span = report.Range(DAY.previous.start, DAY.end, ZONE)
    found = seeded.report(report.Query(span, bots=True))
    close(found["totals"], truth.totals(bots))
    assert judged_sessions(seeded) <= {v.session_id for v in bots}


def test_reports_equal_the_events_open_mixed_and_compacted(seeded: Seeded) -> None:
    # WHEN no hour is compacted (every part computed from the raw events)
    check(seeded)
    compactor = Compactor(
        seeded.s3,
        seeded.location,
        LakeSettings(memory_limit="256MB", threads=1),
        clock=lambda: START + timedelta(days=2),
    )
    hours = hours_between(START, max(e.timestamp for e in seeded.events))
    # AND when every other hour is (a visit's parts stored in one hour, computed in the next)
    for hour in hours[::2]:
        assert compactor.compact(hour).outcome == "compacted"
    check(seeded)
    # AND when all are
    for hour in hours[1::2]:
        assert compactor.compact(hour).outcome == "compacted"
    connection = archive_views.connect(seeded.location, seeded.s3)
    _, kinds = sql.run(connection, "SELECT DISTINCT kind FROM events_sources")
    assert kinds == [("parquet",)]
    check(seeded)
    # AND the compacted hours are read from their manifests alone: no raw listing of them,
    # only of what comes after the last (compacted long after their end: trusted alone)
    with raw_listings(seeded.s3) as listings:
        check(seeded)
    compacted = {hour_start_key("raw", hour) for hour in hours}
    assert listings
    assert all(listing["Prefix"].startswith("raw/") for listing in listings), listings[:3]
    assert not compacted & {listing["StartAfter"] for listing in listings}
    # AND when the days are rolled up: the same figures, read from the rollups rather than
    # from the hours' manifests and parts
    store = LakeStore(seeded.s3, seeded.location.bucket)
    days = sorted({start_of_day(hour) for hour in hours})
    assert [compactor.roll_up(day).outcome for day in days] == ["rolled up"] * len(days)
    assert [compactor.roll_up(day).outcome for day in days] == ["up to date"] * len(days)
    reading = month_reading(store, START - timedelta(days=1))
    assert len(reading.day_part_files) == len(days) * len(PART_KINDS)
    assert reading.part_files == ()
    check(seeded)
    # AND when a late object comes to a compacted hour, archived as the workers archive it
    # (its late mark after it): read from raw until the hour is compacted again, then its new
    # parts replace the old, the mark cleared: counted once
    hour = hours[1]
    old, _ = store.manifest(hour)
    assert old is not None
    late = [
        event.model_copy(
            update={"session_id": f"late-{event.session_id}", "event_id": f"late-{event.event_id}"}
        )
        for event in seeded.events
        if hour <= event.timestamp < hour + timedelta(minutes=5)
    ]
    assert late
    with ThreadPoolExecutor(max_workers=2) as pool:
        S3Archive(
            seeded.s3,
            seeded.location.bucket,
            backoff=Backoff(base_seconds=0.01, cap_seconds=0.05, deadline_seconds=2.0),
            log=structlog.get_logger("test"),
            pool=pool,
            clock=lambda: START + timedelta(days=2, hours=1),
        ).put(
            archive_objects(
                shard_name(5),
                [
                    PositionedEvent(Position(n), e, e.to_record(), e.session_id)
                    for n, e in enumerate(late, 1)
                ],
                [],
            )
        )
    marks = store.late_marks(hour)
    assert [key for key, _ in marks] == [f"{raw_prefix(hour)}{shard_name(5)}-1-0.jsonl.gz"]
    seeded.events.extend(late)
    # (its day's rollup is not read while a mark is there, nor rebuilt)
    assert compactor.roll_up(hour).outcome == "waiting"
    assert len(month_reading(store, START).day_part_files) == (len(days) - 1) * len(PART_KINDS)
    with raw_listings(seeded.s3) as listings:
        check(seeded)
    assert hour_start_key("raw", hour) in {listing["StartAfter"] for listing in listings}
    result = compactor.compact(hour)
    assert (result.outcome, result.marks_cleared) == ("compacted", 1)
    assert store.late_marks(hour) == []
    assert store.day_manifest(start_of_day(hour)) is None  # withdrawn before the hour's
    check(seeded)
    assert compactor.roll_up(hour).outcome == "rolled up"
    new, _ = store.manifest(hour)
    assert new is not None
    assert {p.key for p in new.parts.values()}.isdisjoint(p.key for p in old.parts.values())
    check(seeded)
    # AND a compaction of an hour before its late marks could be trusted (listed early:
    # the settle of a test) is not trusted alone: its hour is listed
    early = Compactor(
        seeded.s3,
        seeded.location,
        LakeSettings(memory_limit="256MB", threads=1),
        clock=lambda: hour + timedelta(hours=1, minutes=1),
        token=lambda: "early",
    )
    rollup = store.day_manifest(start_of_day(hour))
    assert rollup is not None
    assert early.compact(hour, excluding_sessions=frozenset({"nobody"})).outcome == "compacted"
    # (an erasure's compaction deletes its day's rollup at once, files and all: they could
    # name the person)
    assert store.day_manifest(start_of_day(hour)) is None
    left = {file.key for file in store.day_files(start_of_day(hour))}
    assert left.isdisjoint(part.key for part in rollup.parts.values())
    with raw_listings(seeded.s3) as listings:
        check(seeded)
    assert hour_start_key("raw", hour) in {listing["StartAfter"] for listing in listings}


def test_the_cli_prints_the_report_as_json_and_as_a_table(
    seeded: Seeded, local_stack: LocalStackState
) -> None:
    environment = {
        **os.environ,
        **local_stack.environment(),
        "CLICKSTREAM_ARCHIVE_BUCKET": seeded.location.bucket,
    }
    arguments = ["--from", "2026-11-21", "--to", "2026-11-21", "--tz", "Asia/Kolkata"]
    command = [sys.executable, "-m", "clickstream.cli", "report", *arguments, "--by", "source"]
    done = subprocess.run(
        [*command, "--compare", "--json"],
        check=False,
        env=environment,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    body = json.loads(done.stdout)
    assert set(body) == {"range", "totals", "rows", "series", "previous"}
    assert body["range"]["from"] == "2026-11-21T00:00:00+05:30"
    assert body["range"]["by"] == "source"
    assert set(body["totals"]) == {
        "visitors",
        "visits",
        "page_views",
        "views_per_visit",
        "bounce_rate",
        "visit_duration_s",
    }
    visits = truth.visits_of(seeded.events, judged_sessions(seeded))
    assert body["totals"]["visits"] == len(truth.in_range(visits, DAY.start, DAY.end, bots=False))
    assert len(body["rows"]) <= 10
    table = subprocess.run(command, check=False, env=environment, capture_output=True, timeout=120)
    assert table.returncode == 0, table.stderr.decode()[-2000:]
    text = table.stdout.decode()
    assert "visitors" in text
    assert body["rows"][0]["value"] in text
    # AND a wrong dimension is one clear line
    wrong = subprocess.run(
        [*command[:-1], "colour"], check=False, env=environment, capture_output=True, timeout=120
    )
    assert wrong.returncode != 0
    assert "no dimension 'colour'" in wrong.stderr.decode()


def test_the_dashboards_api_answers_the_same_report_behind_the_same_rules(
    seeded: Seeded, local_stack: LocalStackState
) -> None:
    from starlette.testclient import TestClient

    sources = seeded.sources(
        aws.local_client("dynamodb", local_stack.moto_endpoint, local_stack.region)
    )
    dashboard = Dashboard(sources, DashboardSettings(), clock=lambda: START + timedelta(days=1))
    client = TestClient(create_app(dashboard, token=None), base_url="http://127.0.0.1:8050")
    # WHEN the site owner's view asks for the day, compared, with its panels and a filter
    params = {
        "from": "2026-11-21",
        "to": "2026-11-21",
        "tz": "Asia/Kolkata",
        "compare": "1",
        "panel": ["channel", "device_type", "country", "site"],
        "filter": "device_type=mobile",
    }
    answer = client.get("/api/report", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # THEN it is the report's JSON, with a breakdown per panel
    query = report.Query(DAY, filters=report.filters_of(["device_type=mobile"]), top=10)
    expected = seeded.report(query, compare=True)
    assert body["totals"] == expected["totals"]
    assert body["previous"]["totals"] == expected["previous"]["totals"]
    assert set(body["breakdowns"]) == {"channel", "device_type", "country", "site"}
    assert [row["value"] for row in body["breakdowns"]["device_type"]] == ["mobile"]
    mobile = [
        v
        for v in truth.in_range(
            truth.visits_of(seeded.events, judged_sessions(seeded)), DAY.start, DAY.end, bots=False
        )
        if v.values["device_type"] == "mobile"
    ]
    by_channel = truth.rows(mobile, "channel")
    for row in body["breakdowns"]["channel"]:
        close(row, by_channel[row["value"]])
    # AND without tz= the site's zone counts the days (CLICKSTREAM_SITE_TIME_ZONE)
    in_kolkata = Dashboard(
        sources,
        DashboardSettings(CLICKSTREAM_SITE_TIME_ZONE="Asia/Kolkata"),
        clock=lambda: START + timedelta(days=1),
    )
    zoned = TestClient(create_app(in_kolkata, token=None), base_url="http://127.0.0.1:8050")
    without_zone = {key: value for key, value in params.items() if key != "tz"}
    answer = zoned.get("/api/report", params=without_zone).json()
    assert answer["range"]["tz"] == "Asia/Kolkata"
    assert answer["totals"] == body["totals"]
    # AND the two views are served: the site owner's at /, the operator's at /operator
    assert 'src="/static/site.js"' in client.get("/").text
    assert 'src="/static/dashboard.js"' in client.get("/operator").text
    # AND the world map is served by the dashboard itself (installed at set-up), by ISO code
    shapes = client.get("/static/world.json")
    assert shapes.status_code == 200
    places = {place["id"] for place in shapes.json()["locations"]}
    assert {"de", "us", "in", "br", "jp"} <= places
    assert "CC BY 4.0" in shapes.json()["credit"]
    # AND what is wrong with a request is said, in the request's own words
    wrong = client.get("/api/report", params={"by": "colour"})
    assert wrong.status_code == 400
    assert "no dimension 'colour'" in wrong.json()["error"]
    assert client.get("/api/report", params={"since": "7 days"}).status_code == 400
    assert client.get("/api/report", params={"tz": "Mars/Olympus"}).status_code == 400
    # AND off loopback it needs the token like every other request
    gated = TestClient(create_app(dashboard, token="t0ken"), follow_redirects=False)
    assert gated.get("/api/report", params=params).status_code == 401
    bearer = gated.get("/api/report", params=params, headers={"Authorization": "Bearer t0ken"})
    assert bearer.status_code == 200
    assert bearer.json()["totals"] == body["totals"]


def goal_truth(visits: list[truth.Visit], hits: Any) -> dict[str, Any]:
    """A goal's figures computed from the events: `hits(visit)` is its conversions."""
    people = {v.visitor for v in visits}
    converted = [(v, n) for v in visits if (n := hits(v))]
    reached = {v.visitor for v, _ in converted}
    return {
        "visitors": len(reached),
        "visits": len(converted),
        "conversions": sum(n for _, n in converted),
        "conversion_rate": round(len(reached) / len(people), 4) if people else None,
    }


def test_goals_equal_the_events_and_are_saved_in_the_bucket(
    seeded: Seeded, local_stack: LocalStackState
) -> None:
    from insights import goals
    from insights.goals_store import GoalsFile

    visits = truth.visits_of(seeded.events, judged_sessions(seeded))
    day = truth.in_range(visits, DAY.start, DAY.end, bots=False)
    carts = [e for v in day for e in v.events if (e.properties or {}).get("name") == "add_to_cart"]
    value = str(carts[0].properties["value"])  # type: ignore[index]
    section = next(
        truth.path(e.page).split("/")[1]
        for v in day
        for e in v.views
        if truth.path(e.page).count("/") == 2
    )

    def viewed(pattern: Any) -> Any:
        return lambda v: sum(1 for e in v.views if pattern(truth.path(e.page)))

    def sent(condition: Any) -> Any:
        return lambda v: sum(
            1
            for e in v.events
            if e.type is EventType.CUSTOM
            and (e.properties or {}).get("name") == "add_to_cart"
            and condition(e.properties or {})
        )

    expected = {
        "/pricing": viewed(lambda p: p == "/pricing"),
        f"/{section}/*": viewed(lambda p: p.startswith(f"/{section}/")),
        "event:add_to_cart": sent(lambda _: True),
        f"event:add_to_cart[value={value}]": sent(lambda p: str(p.get("value")) == value),
    }
    # GIVEN the goals saved in the bucket, one added twice, one removed
    saved = GoalsFile(seeded.s3, seeded.location.bucket)
    cleared(saved)
    saved.add([*expected, "/pricing", "/nowhere"])
    kept = saved.remove(["/nowhere"])
    assert [goal.text for goal in kept] == list(expected)
    # WHEN their figures are reported for the day, in total and by device
    query = report.Query(DAY, by=report.dimension("device_type"), top=100)
    connection = archive_views.connect(
        seeded.location, seeded.s3, since=report.reading_start(query, compare=False),
        raw_views=False,
    )  # fmt: skip
    found = {f.goal.text: f.as_dict() for f in goals.goals_of(connection, query, saved.goals())}
    # THEN each is what the events say, and so is each device's row
    for text, hits in expected.items():
        want = goal_truth(day, hits)
        assert want["visits"] > 0, text
        assert {k: found[text][k] for k in want} == want, text
        for row in found[text]["rows"]:
            members = [v for v in day if v.values["device_type"] == row["value"]]
            assert {k: row[k] for k in want} == goal_truth(members, hits), (text, row["value"])
    # AND the statement `goals --sql` prints (for Athena) gives the same totals
    for text, hits in expected.items():
        columns, rows = sql.run(
            connection, goals.portable_sql(report.Query(DAY), goals.parse_goal(text))
        )
        row = dict(zip(columns, rows[0], strict=True))
        assert row["visits"] == goal_truth(day, hits)["visits"], text
    # AND the CLI reports the saved goals, and says what a wrong goal may be
    environment = {
        **os.environ,
        **local_stack.environment(),
        "CLICKSTREAM_ARCHIVE_BUCKET": seeded.location.bucket,
    }
    command = [sys.executable, "-m", "clickstream.cli", "goals", "--from", "2026-11-21",
               "--to", "2026-11-21", "--tz", "Asia/Kolkata"]  # fmt: skip
    done = subprocess.run(
        [*command, "--json"], check=False, env=environment, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    body = json.loads(done.stdout)
    assert [g["goal"] for g in body["goals"]] == list(expected)
    assert body["goals"][0]["visits"] == goal_truth(day, expected["/pricing"])["visits"]
    wrong = subprocess.run(
        [*command, "--goal", "event:add_to_cart[value]"],
        check=False,
        env=environment,
        capture_output=True,
        timeout=120,
    )
    assert wrong.returncode == 1
    assert "a condition is property=value" in wrong.stderr.decode()
    cleared(saved)


def cleared(saved: Any) -> None:
    """No goal saved in the seeded bucket (tests of one module share it)."""
    if saved.goals():
        saved.remove([goal.text for goal in saved.goals()])


def funnel_truth(
    units: dict[str, list[ClickEvent]], steps: list[Any], window: timedelta
) -> list[tuple[int, float | None]]:
    """Per step: how many units reached it and the median seconds from the step before,
    each unit's events walked in Python: every step-1 event a start, each later step the
    earliest match after the one before within the window; the start that gets furthest
    (the earliest of those) counts."""
    reached: list[list[float]] = [[] for _ in steps]
    for events in units.values():
        ordered = sorted(events, key=lambda e: e.timestamp)
        best: list[datetime] = []
        for start in (e for e in ordered if steps[0](e)):
            times = [start.timestamp]
            for step in steps[1:]:
                after = next(
                    (e.timestamp for e in ordered
                     if step(e) and times[-1] < e.timestamp <= start.timestamp + window),
                    None,
                )  # fmt: skip
                if after is None:
                    break
                times.append(after)
            if len(times) > len(best):
                best = times
        for index, moment in enumerate(best):
            reached[index].append(0.0 if index == 0 else (moment - best[index - 1]).total_seconds())
    return [
        (len(seconds), None if index == 0 or not seconds else statistics.median(seconds))
        for index, seconds in enumerate(reached)
    ]


def test_funnels_per_visit_and_per_person_equal_the_events(
    seeded: Seeded, local_stack: LocalStackState
) -> None:
    from insights import funnels

    visits = truth.visits_of(seeded.events, judged_sessions(seeded))
    day = truth.in_range(visits, DAY.start, DAY.end, bots=False)
    texts = ["/pricing", "event:add_to_cart", "/checkout"]

    def page(wanted: str) -> Any:
        return lambda e: e.type is EventType.PAGE_VIEW and truth.path(e.page) == wanted

    def cart(e: ClickEvent) -> bool:
        return e.type is EventType.CUSTOM and (e.properties or {}).get("name") == "add_to_cart"

    steps = [page("/pricing"), cart, page("/checkout")]
    window = timedelta(minutes=30)
    connection = archive_views.connect(
        seeded.location, seeded.s3, since=report.reading_start(report.Query(DAY), compare=False),
        raw_views=False,
    )  # fmt: skip
    per_visit = {v.session_id: v.events for v in day}
    per_person: dict[str, list[ClickEvent]] = {}
    for visit in day:
        per_person.setdefault(visit.visitor, []).extend(visit.events)
    for per, units in ((funnels.Per.VISIT, per_visit), (funnels.Per.PERSON, per_person)):
        found = funnels.funnel_of(
            connection, report.Query(DAY), funnels.steps_of(texts), within=window, per=per
        ).as_dict(report.Query(DAY))
        expected = funnel_truth(units, steps, window)
        assert expected[-1][0] > 0, per  # the seeded traffic goes all the way
        assert [row["count"] for row in found["steps"]] == [n for n, _ in expected], per
        for row, (_, median) in zip(found["steps"], expected, strict=True):
            if median is None:
                assert row["median_seconds_from_previous"] is None
            else:
                assert row["median_seconds_from_previous"] == pytest.approx(median, abs=0.06)
    # AND by channel, each channel's visits apart
    query = report.Query(DAY, by=report.dimension("channel"), top=100)
    by = funnels.funnel_of(
        connection, query, funnels.steps_of(texts), within=window, per=funnels.Per.VISIT
    ).as_dict(query)["by"]
    for channel, rows in by.items():
        members = {v.session_id: v.events for v in day if v.values["channel"] == channel}
        assert [row["count"] for row in rows] == [
            n for n, _ in funnel_truth(members, steps, window)
        ], channel
    # AND the statement `funnel --sql` prints (for Athena) counts the same
    statement = funnels.portable_sql(
        report.Query(DAY), funnels.steps_of(texts), within=window, per=funnels.Per.VISIT
    )
    _, rows = sql.run(connection, statement)
    assert [int(row[2]) for row in rows] == [n for n, _ in funnel_truth(per_visit, steps, window)]


def test_the_dashboards_funnel_paths_and_retention_api_answer_as_the_commands_do(
    seeded: Seeded, local_stack: LocalStackState
) -> None:
    from starlette.testclient import TestClient

    from insights import funnels, paths, retention
    from insights.goals import parse_goal

    s3 = seeded.s3
    sources = seeded.sources()
    now = START + timedelta(days=1)
    dashboard = Dashboard(sources, DashboardSettings(), clock=lambda: now)
    client = TestClient(create_app(dashboard, token=None), base_url="http://127.0.0.1:8050")
    day = {"from": "2026-11-21", "to": "2026-11-21", "tz": str(ZONE)}
    texts = ["/pricing", "event:add_to_cart", "/checkout"]
    window = timedelta(minutes=30)
    connection = archive_views.connect(
        seeded.location, seeded.s3, since=report.reading_start(report.Query(DAY), compare=False),
        raw_views=False,
    )  # fmt: skip
    query = report.Query(DAY)
    for per in (funnels.Per.VISIT, funnels.Per.PERSON):
        # WHEN the view asks for a funnel
        answer = client.get(
            "/api/funnel", params={**day, "step": texts, "within": "30m", "per": per}
        )
        assert answer.status_code == 200, answer.text
        # THEN it is `clickstream funnel --json`'s (whose counts the events' own walk checks)
        expected = funnels.funnel_of(
            connection, query, funnels.steps_of(texts), within=window, per=per
        ).as_dict(query)
        body = answer.json()
        assert body["steps"] == expected["steps"], per
        counts = [row["count"] for row in body["steps"]]
        assert counts[-1] > 0
        # AND each drop-off's paths are those that stopped there: as many as the counts say
        for after in (1, 2):
            dropped = client.get(
                "/api/funnel",
                params={**day, "step": texts, "within": "30m", "per": per, "dropped": after},
            ).json()
            assert dropped["dropped"] == counts[after - 1] - counts[after], (per, after)
            assert dropped["step"] == texts[after - 1]
            if per == funnels.Per.VISIT:  # a visit's pages all fit: every visit in a row
                top = client.get(
                    "/api/funnel",
                    params={**day, "step": texts, "within": "30m", "per": per,
                            "dropped": after, "top": 1000},
                ).json()  # fmt: skip
                assert sum(p["count"] for p in top["paths"]) == dropped["dropped"]
    # AND paths after a page and retention by week are the commands' too
    page_query = report.Query(DAY, top=10)
    found_paths = client.get("/api/paths", params={**day, "page": "/pricing", "steps": 3})
    assert found_paths.status_code == 200, found_paths.text
    assert {k: v for k, v in found_paths.json().items() if k != "as_of"} == paths.paths_of(
        connection, page_query, parse_goal("/pricing"), steps=3, before=False
    ).as_dict(page_query)
    weekly = client.get("/api/retention", params={**day, "cohort": "week"})
    assert weekly.status_code == 200, weekly.text
    reading = archive_views.connect(
        seeded.location, s3,
        since=report.reading_start(retention.widened(query, "week"), compare=False),
        raw_views=False,
    )  # fmt: skip
    assert {k: v for k, v in weekly.json().items() if k != "as_of"} == retention.retention_of(
        reading, query, "week", now
    ).as_dict(query)
    # AND what is wrong is said, in the parameter's words
    for kind, params, words in (
        ("funnel", {"step": ["/pricing"]}, "2 to 8 steps"),
        ("funnel", {"step": texts, "per": "team"}, "per 'team'"),
        ("funnel", {"step": texts, "dropped": "3"}, "dropped 3"),
        ("paths", {"page": "event:add_to_cart"}, "not an event"),
        ("paths", {}, "page: which page"),
        ("retention", {"cohort": "year"}, "cohort 'year'"),
    ):
        refused = client.get(f"/api/{kind}", params={**day, **params})
        assert refused.status_code == 400, (kind, params)
        assert words in refused.json()["error"], refused.json()
    dashboard.close()


def paths_truth(visits: list[truth.Visit], page: str, steps: int, *, before: bool) -> Any:
    """Per path of pages after (before) the first view of `page`: its visits, walked in
    Python (a page viewed again at once counted once)."""
    from collections import Counter

    taken: Counter[tuple[str, ...]] = Counter()
    for visit in visits:
        walked: list[str] = []
        for view in sorted(visit.views, key=lambda e: (e.timestamp, e.event_id)):
            if not walked or walked[-1] != truth.path(view.page):
                walked.append(truth.path(view.page))
        if page not in walked:
            continue
        at = walked.index(page)
        near = list(reversed(walked[:at])) if before else walked[at + 1 :]
        pages = near[:steps]
        if len(pages) < steps:
            pages.append("(entrance)" if before else "(exit)")
        taken[tuple(reversed(pages)) if before else tuple(pages)] += 1
    return taken


def test_paths_after_and_before_a_page_equal_the_events(seeded: Seeded) -> None:
    from insights import paths
    from insights.goals import parse_goal

    visits = truth.visits_of(seeded.events, judged_sessions(seeded))
    day = truth.in_range(visits, DAY.start, DAY.end, bots=False)
    query = report.Query(DAY, top=1000)
    connection = archive_views.connect(
        seeded.location, seeded.s3, since=report.reading_start(query, compare=False),
        raw_views=False,
    )  # fmt: skip
    for page, before in (("/pricing", False), ("/checkout", True)):
        found = paths.paths_of(connection, query, parse_goal(page), steps=3, before=before).as_dict(
            query
        )
        expected = paths_truth(day, page, 3, before=before)
        assert found["visits"] == sum(expected.values()) > 10, page
        assert {tuple(p["pages"]): p["visits"] for p in found["paths"]} == dict(expected), page
    # AND the statement `paths --sql` prints (for Athena) finds the same paths
    statement = paths.portable_sql(query, parse_goal("/pricing"), steps=3, before=False)
    _, rows = sql.run(connection, statement)
    assert sorted(int(row[-1]) for row in rows) == sorted(
        paths_truth(day, "/pricing", 3, before=False).values()
    )


def test_the_named_queries_give_the_cli_figures_with_their_parameters(seeded: Seeded) -> None:
    from insights import funnels, goals, paths
    from insights.goals import parse_goal
    from insights.named_queries import named_queries

    # The day in UTC: the named queries take UTC bounds.
    day = report.Range(
        datetime(2026, 11, 20, 18, tzinfo=UTC), datetime(2026, 11, 21, 18, tzinfo=UTC), ZONE
    )
    bounds = [
        moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        for moment in (day.start, day.end)
    ]
    connection = archive_views.connect(
        seeded.location, seeded.s3, since=report.reading_start(report.Query(day), compare=False),
        raw_views=False,
    )  # fmt: skip
    by_name = {query.name: query for query in named_queries()}

    def rounded(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Means summed in another order differ in their last digits."""
        return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]

    def run(name: str, *pages: str) -> list[tuple[Any, ...]]:
        query = by_name[name]
        assert len(query.parameters) == 2 + len(pages)
        return rounded(connection.execute(query.sql, [*bounds, *pages]).fetchall())

    expected = rounded(sql.run(connection, report.portable_sql(report.Query(day)))[1])
    assert run("clickstream-report") == expected
    for by in ("channel", "page", "country"):
        query = report.Query(day, by=report.dimension(by), top=20)
        assert run(f"clickstream-report-by-{by}") == rounded(
            sql.run(connection, report.portable_sql(query))[1]
        )
    goal = rounded(
        sql.run(connection, goals.portable_sql(report.Query(day), parse_goal("/pricing")))[1]
    )
    assert run("clickstream-goal-page", "/pricing") == goal
    steps = funnels.steps_of(["/", "/pricing", "/checkout"])
    funnel = funnels.portable_sql(
        report.Query(day), steps, within=timedelta(days=1), per=funnels.Per.VISIT
    )
    assert run("clickstream-funnel-3-pages", "/", "/pricing", "/checkout") == rounded(
        sql.run(connection, funnel)[1]
    )
    found_paths = paths.portable_sql(
        report.Query(day, top=20), parse_goal("/pricing"), steps=3, before=False
    )
    assert run("clickstream-paths-from-page", "/pricing") == rounded(
        sql.run(connection, found_paths)[1]
    )
    assert len(run("clickstream-paths-from-page", "/pricing")) > 1


def test_the_site_owners_view_shows_the_saved_goals(seeded: Seeded) -> None:
    import time as clock

    from clickstream.tools.bench_reports import serving
    from insights.goals_store import GoalsFile
    from tests.support.browser import headless_chromium

    s3 = seeded.s3
    sources = seeded.sources()
    visits = truth.visits_of(seeded.events, judged_sessions(seeded))
    day = truth.in_range(visits, DAY.start, DAY.end, bots=False)
    expected = {
        "/pricing": goal_truth(
            day, lambda v: sum(1 for e in v.views if truth.path(e.page) == "/pricing")
        ),
        "event:add_to_cart": goal_truth(
            day,
            lambda v: sum(
                1
                for e in v.events
                if e.type is EventType.CUSTOM and (e.properties or {}).get("name") == "add_to_cart"
            ),
        ),
    }
    saved = GoalsFile(s3, seeded.location.bucket)
    cleared(saved)
    saved.add(list(expected))
    try:
        dashboard = Dashboard(sources, DashboardSettings(), clock=lambda: START + timedelta(days=1))
        with serving(dashboard) as address, headless_chromium(1400, 1800) as browser:
            # WHEN the site owner opens the day's view
            browser.get(f"{address}/?from=2026-11-21&to=2026-11-21&tz=Asia%2FKolkata")
            deadline = clock.monotonic() + 60
            while browser.execute_script("return document.body.dataset.state") != "ok":
                assert clock.monotonic() < deadline, "the view did not draw its figures"
                clock.sleep(0.2)
            rows = browser.execute_script(
                "return Array.from(document.querySelectorAll('#goals tbody tr'))"
                ".map((tr) => Array.from(tr.cells).map((td) => td.textContent))"
            )
        # THEN the goals table shows each goal's converted people, visits, conversions, rate
        assert [row[0] for row in rows] == list(expected)
        for row in rows:
            want = expected[row[0]]
            assert want["visits"] > 0
            assert row[1:4] == [f"{want[k]:,}" for k in ("visitors", "visits", "conversions")]
            assert float(row[4].rstrip("%")) == pytest.approx(
                want["conversion_rate"] * 100, abs=0.051
            )
        dashboard.close()
    finally:
        cleared(saved)


def test_the_site_owners_view_draws_the_funnel_its_drop_offs_the_paths_and_retention(
    seeded: Seeded,
) -> None:
    import json
    import time as clock
    import urllib.request
    from urllib.parse import urlencode

    from clickstream.tools.bench_reports import serving
    from tests.support.browser import ARTIFACTS, headless_chromium

    sources = seeded.sources()
    dashboard = Dashboard(sources, DashboardSettings(), clock=lambda: START + timedelta(days=1))
    day = [("from", "2026-11-21"), ("to", "2026-11-21"), ("tz", "Asia/Kolkata")]
    steps = [("step", "/pricing"), ("step", "event:add_to_cart"), ("step", "/checkout")]
    view = [*day, *steps, ("per", "person"), ("within", "30m"), ("paths", "/pricing"),
            ("direction", "after"), ("path_steps", "3"), ("cohort", "day")]  # fmt: skip

    def api(address: str, kind: str, params: list[tuple[str, str]]) -> Any:
        with urllib.request.urlopen(f"{address}/api/{kind}?{urlencode(params)}") as answer:
            return json.load(answer)

    def drawn(browser: Any, script: str) -> Any:
        deadline = clock.monotonic() + 90
        while True:
            found = browser.execute_script(script)
            if found:
                return found
            assert clock.monotonic() < deadline, script
            clock.sleep(0.2)

    with serving(dashboard) as address, headless_chromium(1400, 2600) as browser:
        # WHEN the site owner opens a view with a funnel per person, paths and day cohorts
        browser.get(f"{address}/?{urlencode(view)}")
        funnel = drawn(
            browser,
            "const c = document.getElementById('funnel-card');"
            "return c.dataset.state === 'ok' && Array.from(document.querySelectorAll("
            "'#funnel .step')).map((li) => [li.dataset.step, Number(li.dataset.count)]);",
        )
        # THEN the funnel's steps are the API's (whose counts the events' walk checks)
        want = api(address, "funnel", [*day, *steps, ("per", "person"), ("within", "30m")])
        assert funnel == [[row["step"], row["count"]] for row in want["steps"]]
        assert funnel[-1][1] > 0
        # WHEN the drop-off after the first step is clicked
        browser.execute_script("document.querySelector('#funnel .drop button').click()")
        dropped = drawn(
            browser,
            "return !document.getElementById('dropped').hidden && Array.from("
            "document.querySelectorAll('#dropped tbody tr')).map((tr) => "
            "[tr.dataset.pages, Number(tr.dataset.count)]);",
        )
        # THEN the pages those people viewed instead, the address keeping the choice
        assert "dropped=1" in browser.execute_script("return location.search")
        instead = api(
            address, "funnel",
            [*day, *steps, ("per", "person"), ("within", "30m"), ("dropped", "1"), ("top", "10")],
        )  # fmt: skip
        assert dropped == [[" → ".join(p["pages"]), p["count"]] for p in instead["paths"]]
        assert instead["dropped"] == want["steps"][0]["count"] - want["steps"][1]["count"]
        # AND the paths after /pricing: a table and a flow diagram whose first column is
        # /pricing with every shown path's visits
        rows = drawn(
            browser,
            "return document.getElementById('paths-card').dataset.state === 'ok' && "
            "Array.from(document.querySelectorAll('#paths tbody tr')).map((tr) => "
            "[tr.dataset.pages, Number(tr.dataset.visits)]);",
        )
        taken = api(address, "paths", [*day, ("page", "/pricing"), ("steps", "3")])
        assert rows == [[" → ".join(p["pages"]), p["visits"]] for p in taken["paths"]]
        first_column = browser.execute_script(
            "return Array.from(document.querySelectorAll('#flow rect[data-column=\"0\"]'))"
            ".map((r) => [r.dataset.page, Number(r.dataset.visits)])"
        )
        assert first_column == [["/pricing", sum(p["visits"] for p in taken["paths"])]]
        # AND retention by day: each cohort's people and those back later
        cohorts = drawn(
            browser,
            "return document.getElementById('retention-card').dataset.state === 'ok' && "
            "Array.from(document.querySelectorAll('#retention tbody tr')).map((tr) => "
            "[tr.dataset.cohort, Array.from(tr.querySelectorAll('td.share')).map("
            "(td) => Number(td.dataset.people))]);",
        )
        back = api(address, "retention", [*day, ("cohort", "day")])
        assert cohorts == [
            [row["cohort"], [p["people"] for p in row["periods"]]] for row in back["cohorts"]
        ]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.execute_script("document.getElementById('funnel-card').scrollIntoView()")
        browser.save_screenshot(str(ARTIFACTS / "site-flows.png"))
        # AND a wrong step is said on the card, the rest of the view drawn
        browser.get(f"{address}/?{urlencode([*day, ('step', '/a'), ('step', 'event:')])}")
        error = drawn(
            browser,
            "const c = document.getElementById('funnel-card');"
            "return c.dataset.state === 'error' && c.querySelector('.card-error').textContent;",
        )
        assert "event" in error
    dashboard.close()
