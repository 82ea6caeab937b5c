"""`clickstream sql`'s engine: DuckDB over an archive in the local stack's S3 (moto), written by
the consumer's own archive code from seeded traffic, checked against the producer's manifest."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from itertools import islice
from pathlib import Path

import pytest

from clickstream.kernel import aws
from clickstream.kernel.errors import InsightsError
from clickstream.kernel.events import ClickEvent
from clickstream.kernel.pagekey import page_key
from clickstream.kernel.paths import DEFAULT_TEMPLATE
from clickstream.local.stack import LocalStackState
from clickstream.local.template import load_template
from insights import archive_views, sql
from insights.enriched import STORED_COLUMNS
from producer.generator import TrafficProfile, generate
from producer.malformed import MalformedRecord
from producer.manifest import Manifest
from tests.support.archive import START, fill, put_rage_burst


@dataclass
class Archive:
    location: sql.ArchiveLocation
    manifest: Manifest
    malformed: list[MalformedRecord]


@pytest.fixture(scope="module")
def archive(local_stack: LocalStackState) -> Archive:
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"sqltest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    manifest, malformed = fill(s3, bucket, seed=5)
    location = sql.ArchiveLocation(
        bucket, local_stack.region, "test", "test", endpoint_url=local_stack.moto_endpoint
    )
    return Archive(location, manifest, malformed)


def test_counts_per_page_and_type_for_an_hour_equal_the_manifest(archive: Archive) -> None:
    connection = archive_views.connect(archive.location)
    _, rows = sql.run(
        connection,
        "SELECT page, type, count(*) AS n FROM raw_events "
        "WHERE year = 2026 AND month = 11 AND day = 20 AND hour = 9 "
        "AND type IN ('page_view', 'click') GROUP BY page, type",
    )
    found: Counter[tuple[str, str]] = Counter()
    for page, kind, count in rows:
        found[(page_key(page), kind)] += count
    expected: Counter[tuple[str, str]] = Counter()
    for page, minutes in archive.manifest.pages.items():
        for minute, truth in minutes.items():
            if minute.startswith("2026-11-20T09:"):
                expected[(page, "page_view")] += truth.all_views
                expected[(page, "click")] += truth.all_clicks
    assert +expected == found
    assert sum(found.values()) > 1000


def test_every_event_once_and_the_dead_letters_by_reason(archive: Archive) -> None:
    connection = archive_views.connect(archive.location)
    _, [(events, distinct)] = sql.run(
        connection, "SELECT count(*), count(DISTINCT event_id) FROM raw_events"
    )
    assert events == distinct == archive.manifest.events
    _, rows = sql.run(connection, "SELECT reason, count(*) FROM dead_letters GROUP BY reason")
    assert dict(rows) == dict(Counter(m.expected_reason.value for m in archive.malformed))


def test_the_views_have_the_athena_tables_name_columns_and_partitions(archive: Archive) -> None:
    tables = {
        resource["Properties"]["TableInput"]["Name"]: resource["Properties"]["TableInput"]
        for resource in load_template(DEFAULT_TEMPLATE)["Resources"].values()
        if resource["Type"] == "AWS::Glue::Table"
    }
    assert set(tables) == {
        "raw_events",
        "events",
        "sessions",
        "bot_verdicts",
        "session_parts",
        "page_parts",
        "custom_events",
        "identities",
        "persons",
        "page_views",
    }
    connection = archive_views.connect(archive.location)
    # (the lake's table is what its Parquet holds: DuckDB's `events_stored`; `sessions` is a
    # view in both)
    views = {
        "raw_events": "raw_events",
        "events": "events_stored",
        "sessions": "sessions",
        "bot_verdicts": "bot_verdicts",
        "session_parts": "session_parts",
        "page_parts": "page_parts",
        "custom_events": "custom_events",
        "identities": "identities",
        "persons": "persons",
        "page_views": "page_views",
    }
    for name, table in tables.items():
        athena_columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
        athena_partitions = [c["Name"] for c in table.get("PartitionKeys", [])]
        columns, _ = sql.run(connection, f"SELECT * FROM {views[name]} LIMIT 1")
        assert sorted(columns) == sorted(athena_columns + athena_partitions)
    raw_columns = [c["Name"] for c in tables["raw_events"]["StorageDescriptor"]["Columns"]]
    assert [name for name, _ in sql.RAW_EVENT_COLUMNS] == raw_columns
    lake_columns = [c["Name"] for c in tables["events"]["StorageDescriptor"]["Columns"]]
    assert lake_columns == raw_columns + [name for name, _ in STORED_COLUMNS] + ["event_time"]


def test_partition_filters_prune_objects(local_stack: LocalStackState, archive: Archive) -> None:
    # GIVEN an object in another hour that cannot be read at all
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"sqlprune-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    fill(s3, bucket, seed=6)
    s3.put_object(
        Bucket=bucket, Key="raw/year=2026/month=11/day=21/hour=03/bad.jsonl.gz", Body=b"x"
    )
    connection = archive_views.connect(
        sql.ArchiveLocation(
            bucket, local_stack.region, "t", "t", endpoint_url=local_stack.moto_endpoint
        )
    )
    # WHEN a query filters on the good hour, THEN the bad object is never opened
    _, [(count,)] = sql.run(
        connection, "SELECT count(*) FROM raw_events WHERE day = 20 AND hour = 9"
    )
    assert count > 0
    # AND a query over everything reads it and says so in one line
    with pytest.raises(InsightsError) as failed:
        sql.run(connection, "SELECT count(*) FROM raw_events")
    assert "\n" not in str(failed.value)


def test_a_connection_since_a_moment_lists_and_reads_only_the_hours_from_it(
    local_stack: LocalStackState,
) -> None:
    # GIVEN an archive of one hour (09:05 on) and, hours before, objects and a manifest that
    # cannot be read at all
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"sqlsince-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    manifest, malformed = fill(s3, bucket, seed=7)
    earlier = "year=2026/month=11/day=19/hour=23"
    for key in (f"raw/{earlier}/bad.jsonl.gz", f"dead-letter/{earlier}/bad.jsonl.gz"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_object(Bucket=bucket, Key=f"lake/manifests/{earlier}/manifest.json", Body=b"{")
    location = sql.ArchiveLocation(
        bucket, local_stack.region, "t", "t", endpoint_url=local_stack.moto_endpoint
    )
    # (the whole archive cannot even be opened: its `events` view reads every manifest)
    with pytest.raises(InsightsError):
        archive_views.connect(location)
    # WHEN a connection is opened since a moment of the good hour (a dashboard's window)
    connection = archive_views.connect(location, since=START + timedelta(minutes=20))
    # THEN every view reads that hour whole and nothing before it
    _, [(raw, distinct)] = sql.run(
        connection, "SELECT count(*), count(DISTINCT event_id) FROM raw_events"
    )
    assert raw == distinct == manifest.events
    _, [(events,)] = sql.run(connection, "SELECT count(*) FROM events")
    assert events == manifest.events
    _, [(letters,)] = sql.run(connection, "SELECT count(*) FROM dead_letters")
    assert letters == len(malformed)
    _, sources = sql.run(connection, "SELECT key FROM events_sources")
    assert sources
    assert all("/day=20/hour=09/" in key for (key,) in sources)
    # AND since an hour with nothing yet, the views are empty
    later = archive_views.connect(location, since=START + timedelta(hours=1))
    for view in ("events", "raw_events", "dead_letters"):
        assert sql.run(later, f"SELECT * FROM {view}")[1] == []


def test_a_bad_query_and_an_unreachable_archive_are_one_line_errors(archive: Archive) -> None:
    connection = archive_views.connect(archive.location)
    with pytest.raises(InsightsError, match="query failed"):
        sql.run(connection, "SELEC nothing")
    gone = sql.ArchiveLocation("nowhere", "us-east-1", "t", "t", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(InsightsError, match="cannot read the archive") as failed:
        archive_views.connect(gone)
    assert "\n" not in str(failed.value)


def test_an_archive_without_objects_yet_gives_empty_views(local_stack: LocalStackState) -> None:
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"sqlempty-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    location = sql.ArchiveLocation(
        bucket, local_stack.region, "t", "t", endpoint_url=local_stack.moto_endpoint
    )
    connection = archive_views.connect(location)
    for view in ("events", "raw_events", "dead_letters", "events_sources"):
        columns, rows = sql.run(connection, f"SELECT * FROM {view}")
        assert rows == []
        if view != "events_sources":
            assert columns[-4:] == ["year", "month", "day", "hour"]


def test_the_command_prints_table_json_and_csv_and_one_line_errors(
    local_stack: LocalStackState, archive: Archive
) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        **local_stack.environment(),
        "CLICKSTREAM_ARCHIVE_BUCKET": archive.location.bucket,
    }
    query = "SELECT type, count(*) AS n FROM raw_events GROUP BY type ORDER BY type"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clickstream.cli", "sql", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    as_json = run(query, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    counts = {row["type"]: row["n"] for row in json.loads(as_json.stdout)}
    assert sum(counts.values()) == archive.manifest.events
    as_csv = run(query, "--format", "csv")
    assert as_csv.stdout.splitlines()[0] == "type,n"
    assert len(as_csv.stdout.splitlines()) == len(counts) + 1
    assert "page_view" in run(query).stdout
    # A visitor's text that starts like a formula (a user agent, a page) is written as text:
    # before, `=HYPERLINK(...)` became a formula when the CSV was opened in a spreadsheet.
    hostile = run(
        """SELECT '=HYPERLINK("https://evil.example","x")' AS user_agent, -5 AS n, '@x' AS page""",
        "--format",
        "csv",
    )
    assert next(islice(csv.reader(io.StringIO(hostile.stdout)), 1, None)) == [
        """'=HYPERLINK("https://evil.example","x")""",
        "-5",
        "'@x",
    ]
    # `--since` narrows the views to the hours from then on: the archive's one hour, or none
    same = run(query, "--format", "json", "--since", START.isoformat())
    assert json.loads(same.stdout) == json.loads(as_json.stdout)
    later = (START + timedelta(hours=1)).isoformat()
    assert json.loads(run(query, "--format", "json", "--since", later).stdout) == []
    wrong = run(query, "--since", "yesterday")
    assert wrong.returncode != 0
    assert "expected a span like 90m" in wrong.stderr
    bad = run("SELECT * FROM nowhere")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: query failed")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_heatmap_bins_equal_the_generators_clicks_for_a_page(archive: Archive) -> None:
    from clickstream.kernel.events import EventType
    from insights.heatmap import Click, bins, clicks_of_page

    # GIVEN the traffic the archive was filled with: the generator knows where it clicked
    records, _ = generate(5, START, 3000, TrafficProfile(malformed=40, sessions_per_minute=120))
    clicks = [r for r in records if isinstance(r, ClickEvent) and r.type is EventType.CLICK]
    busiest = Counter(page_key(c.page) for c in clicks).most_common(1)[0][0]
    truth = [
        Click(c.session_id, c.timestamp, c.x or 0, c.y or 0, c.viewport_width, c.page)
        for c in clicks
        if page_key(c.page) == busiest
    ]
    # WHEN the page's clicks are read back from the archive
    read = clicks_of_page(archive_views.connect(archive.location), busiest, START.replace(minute=0))
    # THEN they bin exactly as the generator's
    assert bins(read) == bins(truth)
    assert len(read) == len(truth) > 20


def test_rage_clicks_are_found_where_a_session_made_them_and_nowhere_else(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"sqlrage-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    fill(s3, bucket, seed=7)  # ordinary traffic: no rage clicks in it
    put_rage_burst(s3, bucket)
    env = {**os.environ, **local_stack.environment(), "CLICKSTREAM_ARCHIVE_BUCKET": bucket}
    png = tmp_path / "pricing.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "clickstream.cli",
            "heatmap",
            "/pricing",
            "--since",
            START.replace(minute=0).isoformat(),
            "--out",
            str(png),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(r["session_id"], r["clicks"]) for r in report["rage_clicks"]] == [("s-rage", 4)]
    assert report["png"] == str(png)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert sum(c["clicks"] for c in report["width_classes"]["large"]) >= 4


def test_heatmap_elements_and_scroll_count_what_the_tracker_sent(
    local_stack: LocalStackState,
) -> None:
    import json
    import os
    import subprocess
    import sys

    from clickstream.kernel.events import EventType
    from clickstream.stores.positions import Position
    from consumer.core.batch import archive_objects
    from consumer.core.positioned import PositionedEvent

    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"sqlelements-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    at = START + timedelta(minutes=5)
    events: list[ClickEvent] = []

    def sent(session: str, kind: EventType, width: int, **extra: object) -> None:
        events.append(
            ClickEvent(
                event_id=f"{session}-{len(events)}", type=kind, session_id=session,
                page="/shop?ref=mail", timestamp=at + timedelta(seconds=len(events)),
                viewport_width=width, **extra,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    def click(session: str, width: int, selector: str, text: str, dead: bool | None) -> None:
        named: dict[str, object] = {"selector": selector, "text": text, "kind": "button"}
        if dead is not None:
            named["dead"] = dead
        sent(session, EventType.CLICK, width, x=10, y=10, properties=named)

    # GIVEN four visits of /shop, two on phones, as the tracker sends them: clicks on named
    # elements (some dead), and each page view's depth as it was left
    for session, width, depth in (("v1", 1400, 0.95), ("v2", 1400, 0.4), ("v3", 390, 1.0),
                                  ("v4", 390, 0.25)):  # fmt: skip
        sent(session, EventType.PAGE_VIEW, width)
        sent(session, EventType.SCROLL, width, x=0, y=100,
             properties={"max_depth": depth, "view": f"{session}-view"})  # fmt: skip
    click("v1", 1400, "button#buy", "Buy", False)
    click("v2", 1400, "button#buy", "Buy", True)
    click("v3", 390, "button#buy", "Buy", False)
    click("v3", 390, "div.card > span.price", "10 EUR", True)
    click("v4", 390, "input#email", "", None)
    positioned = [
        PositionedEvent(Position(n), e, e.to_record(), e.session_id)
        for n, e in enumerate(events, 1)
    ]
    for item in archive_objects("shardId-000000000001", positioned, []):
        s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
    env = {**os.environ, **local_stack.environment(), "CLICKSTREAM_ARCHIVE_BUCKET": bucket}

    def heatmap(*flags: str) -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-m", "clickstream.cli", "heatmap", "/shop?ref=mail", "--since",
             START.replace(minute=0).isoformat(), *flags, "--json"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        found: dict[str, object] = json.loads(result.stdout)
        return found

    # WHEN `heatmap --elements` reads the archive
    found = heatmap("--elements")
    # THEN each element's clicks, visits, share of the page's four visits, dead clicks
    assert found["visits"] == 4
    assert found["elements"] == [
        {"selector": "button#buy", "text": "Buy", "clicks": 3, "visits": 3,
         "visit_share": 0.75, "rage_clicks": 0, "dead_clicks": 1},
        {"selector": "div.card > span.price", "text": "10 EUR", "clicks": 1, "visits": 1,
         "visit_share": 0.25, "rage_clicks": 0, "dead_clicks": 1},
        {"selector": "input#email", "text": "", "clicks": 1, "visits": 1,
         "visit_share": 0.25, "rage_clicks": 0, "dead_clicks": 0},
    ]  # fmt: skip
    # AND `--scroll` the share reaching each tenth, per viewport class
    classes = heatmap("--scroll")["width_classes"]
    assert isinstance(classes, dict)
    assert classes["large"]["visits"] == classes["small"]["visits"] == 2
    assert classes["large"]["reached"]["50%"] == 0.5  # v1's 95 %, not v2's 40 %
    assert classes["large"]["reached"]["100%"] == 0.0
    assert classes["small"]["reached"]["30%"] == 0.5  # v3's whole page, not v4's quarter
    assert classes["small"]["reached"]["100%"] == 0.5
