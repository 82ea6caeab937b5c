"""`clickstream retention` over six weeks of archived visits across a month's end, in a zone
off UTC: the cohort table equals one counted from the events in Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from clickstream.kernel import aws
from clickstream.kernel.events import ClickEvent
from clickstream.local.stack import LocalStackState
from clickstream.stores.positions import Position
from consumer.core.positioned import PositionedEvent
from insights import archive_views, report, retention, sql
from producer.generator import TrafficProfile, generate
from tests.support import report_truth as truth
from tests.support.archive import put_objects, shard_name

SEED = 41
START = datetime(2026, 11, 18, 10, tzinfo=UTC)  # a Wednesday
ZONE = ZoneInfo("America/New_York")
WEEKS = 4


def week_of(moment: datetime) -> datetime:
    day = moment.astimezone(ZONE).date()
    return datetime.combine(day - timedelta(days=day.weekday()), datetime.min.time(), ZONE)


def test_weekly_retention_across_a_month_boundary(local_stack: LocalStackState) -> None:
    # GIVEN an hour of the world's traffic, and in each of the three weeks after, the visits
    # of some of its visitors again (a visitor returns in week k when a hash says so)
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"retention-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    records, _ = generate(SEED, START, 1500, TrafficProfile(malformed=0, bot_sessions=0))
    first = [r for r in records if isinstance(r, ClickEvent)]
    events = list(first)
    for week in range(1, WEEKS):
        for event in first:
            visitor = event.user_id or event.anonymous_id or event.session_id
            if zlib.crc32(f"{visitor}/{week}".encode()) % 3 != 0:
                continue
            events.append(
                event.model_copy(
                    update={
                        "timestamp": event.timestamp + timedelta(days=7 * week, hours=week),
                        "session_id": f"{event.session_id}-w{week}",
                        "event_id": f"{event.event_id}-w{week}",
                    }
                )
            )
    items = [
        PositionedEvent(Position(n), e, e.to_record(), e.session_id)
        for n, e in enumerate(events, start=1)
    ]
    for chunk in range(0, len(items), 500):
        put_objects(s3, bucket, shard_name(0), items[chunk : chunk + 500])
    # the truth: people's visits by the zone's week
    visits = truth.in_range(
        truth.visits_of(events, frozenset()),
        START - timedelta(days=1),
        START + timedelta(weeks=5),
        bots=False,
    )
    weeks_of: dict[str, set[datetime]] = defaultdict(set)
    for visit in visits:
        weeks_of[visit.visitor].add(week_of(visit.started))
    cohorts: dict[datetime, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for seen in weeks_of.values():
        cohort = min(seen)
        for seen_week in seen:
            cohorts[cohort][(seen_week - cohort).days // 7] += 1
    assert cohorts[week_of(START)][3] > 5  # people came back three weeks later
    # WHEN retention is asked for by week over the range, in that zone
    location = sql.ArchiveLocation(
        bucket, local_stack.region, "test", "test", endpoint_url=local_stack.moto_endpoint
    )
    query = report.Query(report.range_of(START, ZONE, start="2026-11-18", end="2026-12-13"))
    whole = retention.widened(query, "week")
    connection = archive_views.connect(
        location, s3, since=report.reading_start(whole, compare=False), raw_views=False
    )
    shown = retention.retention_of(connection, query, "week", START).as_dict(query)
    # THEN its weeks start on the zone's Mondays, across November's end, and each cohort's
    # people per week are the events' count
    assert [c["cohort"] for c in shown["cohorts"]] == [
        "2026-11-16", "2026-11-23", "2026-11-30", "2026-12-07",
    ]  # fmt: skip
    for row in shown["cohorts"]:
        start = datetime.combine(
            datetime.fromisoformat(row["cohort"]).date(), datetime.min.time(), ZONE
        )
        expected = cohorts.get(start, {})
        assert [p["people"] for p in row["periods"]] == [
            expected.get(k, 0) for k in range(len(row["periods"]))
        ], row["cohort"]
    # AND the statement `retention --sql` prints (for Athena) counts the same
    _, rows = sql.run(connection, retention.portable_sql(query, "week"))
    assert {(int(r[0]), int(r[1])): int(r[2]) for r in rows} == {
        (index, k): people
        for index, row in enumerate(shown["cohorts"])
        for k, people in enumerate(p["people"] for p in row["periods"])
        if people
    }
    # AND the CLI prints the same table as JSON
    environment = {**os.environ, **local_stack.environment(), "CLICKSTREAM_ARCHIVE_BUCKET": bucket}
    done = subprocess.run(
        [sys.executable, "-m", "clickstream.cli", "retention", "--cohort", "week", "--from",
         "2026-11-18", "--to", "2026-12-13", "--tz", "America/New_York", "--json"],
        check=False, env=environment, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout)["cohorts"] == shown["cohorts"]
