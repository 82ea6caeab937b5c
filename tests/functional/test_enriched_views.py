"""The enrichment columns through the archive's views (`insights.enriched`): hand-written
visits archived as a processor archives them, read from the raw archive and again after
their hour is compacted, give the same `sessions` and `events` columns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clickstream.kernel import aws
from clickstream.kernel.events import ClickEvent, EventType
from clickstream.local.stack import LocalStackState
from clickstream.stores import archive_layout as layout
from clickstream.stores.alerts import Alert, Rule
from clickstream.stores.positions import Position
from consumer.core.batch import verdict_objects
from consumer.core.positioned import PositionedEvent
from insights import archive_views, lake, sql
from insights.compaction import Compactor
from insights.lake_store import LakeStore
from insights.sessions_sql import sessions_from_parts, sessions_select
from insights.settings import LakeSettings
from tests.support.archive import put_objects, shard_name

HOUR = datetime(2026, 11, 20, 9, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
SITE = "https://shop.example.com"

VISITS: list[tuple[str, list[dict[str, Any]]]] = [
    # From Google's results, on a desktop, in Germany; then a click, so not a bounce.
    (
        "s-search",
        [
            {"page": f"{SITE}/", "referrer": "https://www.google.de/", "country": "DE"},
            {"type": "click", "page": f"{SITE}/", "x": 5, "y": 5},
            {"page": f"{SITE}/pricing", "referrer": f"{SITE}/"},
        ],
    ),
    # A tagged newsletter link on a phone; a same-site referrer later keeps the source. The
    # landing arrives last (retried), but it is the earliest page view.
    (
        "s-mail",
        [
            {"page": f"{SITE}/docs", "referrer": f"{SITE}/blog", "minute": 3},
            {
                "page": f"{SITE}/blog?utm_source=newsletter&utm_medium=email&utm_campaign=dec",
                "minute": 1,
            },
        ],
    ),
    # An ad click, one page, nothing else: a bounce.
    ("s-ad", [{"page": f"{SITE}/pricing?gclid=abc", "referrer": "https://www.google.com/"}]),
    # Segment's campaign (kept in the page view's properties by the collector).
    (
        "s-segment",
        [
            {
                "page": f"{SITE}/",
                "properties": {"campaign": {"source": "facebook", "medium": "paid_social"}},
            }
        ],
    ),
    # A crawler.
    ("s-bot", [{"page": f"{SITE}/", "agent": GOOGLEBOT}, {"page": f"{SITE}/pricing"}]),
    # A visit across two hours: its landing in the first, its exit in the second.
    (
        "s-long",
        [
            {"page": f"{SITE}/a", "referrer": "https://duckduckgo.com/"},
            {"page": f"{SITE}/b", "minute": 55},
        ],
    ),
    # A script passing for Chrome, which the workers' bot rule judged (`JUDGED`).
    ("s-script", [{"type": "click", "page": f"{SITE}/", "x": 1, "y": 1}] * 2),
]
AGENTS = {
    "s-search": CHROME,
    "s-mail": IPHONE,
    "s-ad": CHROME,
    "s-segment": IPHONE,
    "s-script": CHROME,
    "s-long": IPHONE,
}
JUDGED = Alert(Rule.BOT_SESSION, "s-script", "2026-11-20T09:10", 1.0, None, 0.5)

SAFARI = "Mobile Safari"
EXPECTED_SESSIONS = {
    # session: source, medium, campaign, channel, device_type, browser, country, bot, bounced
    "s-search": ("google", "organic", None, "Organic Search", "desktop", "Chrome", "DE", False, False),  # noqa: E501
    "s-mail": ("newsletter", "email", "dec", "Email", "mobile", SAFARI, None, False, False),
    "s-ad": ("google", "cpc", None, "Paid Search", "desktop", "Chrome", None, False, True),
    "s-segment": ("facebook", "paid_social", None, "Paid Social", "mobile", SAFARI, None, False, True),  # noqa: E501
    "s-bot": ("(direct)", "(none)", None, "Direct", "bot", "Googlebot", None, True, False),
    "s-script": ("(direct)", "(none)", None, "Direct", "desktop", "Chrome", None, True, False),
    "s-long": ("duckduckgo", "organic", None, "Organic Search", "mobile", SAFARI, None, False, False),  # noqa: E501
}  # fmt: skip


def archived_events() -> list[PositionedEvent]:
    events, sequence = [], 0
    for session, visit in VISITS:
        for step, fields in enumerate(visit):
            sequence += 1
            minute = fields.get("minute", step)
            event = ClickEvent(
                event_id=f"{session}-{step}",
                type=EventType(fields.get("type", "page_view")),
                session_id=session,
                page=fields["page"],
                timestamp=HOUR + timedelta(minutes=10 + minute),
                referrer=fields.get("referrer"),
                user_agent=fields.get("agent", AGENTS.get(session, GOOGLEBOT)),
                country=fields.get("country"),
                x=fields.get("x"),
                y=fields.get("y"),
                properties=fields.get("properties"),
            )
            events.append(PositionedEvent(Position(sequence), event, event.to_record(), session))
    return events


def session_rows(location: sql.ArchiveLocation, s3: Any) -> dict[str, tuple[Any, ...]]:
    connection = archive_views.connect(location, s3)
    # `sessions` is put together from the hours' session parts (stored or computed): the
    # same rows as the one definition over every event gives
    _, from_parts = sql.run(connection, "SELECT * FROM sessions")
    _, from_events = sql.run(connection, sessions_select("events_stored"))
    assert sorted(from_parts) == sorted(from_events)
    _, rows = sql.run(
        connection,
        "SELECT session_id, source, medium, campaign, channel, device_type, browser, country, "
        "is_bot, bounced FROM sessions",
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def event_rows(location: sql.ArchiveLocation, s3: Any) -> list[tuple[Any, ...]]:
    connection = archive_views.connect(location, s3)
    _, rows = sql.run(
        connection,
        "SELECT event_id, source, channel, device_type, is_bot, event_time FROM events "
        "ORDER BY event_id",
    )
    return rows


@pytest.fixture
def archived(local_stack: LocalStackState) -> tuple[sql.ArchiveLocation, Any]:
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"enriched-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    put_objects(s3, bucket, shard_name(0), archived_events())
    for verdict in verdict_objects([JUDGED]):  # as the worker files it
        s3.put_object(Bucket=bucket, Key=verdict.key, Body=verdict.body)
    location = sql.ArchiveLocation(
        bucket, local_stack.region, "test", "test", endpoint_url=local_stack.moto_endpoint
    )
    return location, s3


def test_sessions_and_events_carry_the_landings_acquisition_raw_and_compacted(
    archived: tuple[sql.ArchiveLocation, Any],
) -> None:
    location, s3 = archived
    # WHEN the hour is read from the raw archive
    assert session_rows(location, s3) == EXPECTED_SESSIONS
    raw_events = event_rows(location, s3)
    # THEN every event carries its session's source and channel, its own agent's columns
    by_id = {row[0]: row for row in raw_events}
    assert by_id["s-mail-0"][1:3] == ("newsletter", "Email")  # its own referrer is same-site
    assert by_id["s-search-1"][1:5] == ("google", "Organic Search", "desktop", False)
    assert by_id["s-bot-1"][3:5] == ("bot", True)
    # AND the session the bot rule judged is a bot's, whatever its agent says
    assert by_id["s-script-0"][3:5] == ("desktop", True)
    assert by_id["s-search-0"][4] is False
    assert by_id["s-search-0"][5] == (HOUR + timedelta(minutes=10)).replace(tzinfo=None)
    # WHEN the first hour is compacted (its session parts stored), the next not yet
    compactor = Compactor(
        s3,
        location,
        LakeSettings(memory_limit="256MB", threads=1),
        clock=lambda: HOUR + timedelta(days=1),
    )
    assert compactor.compact(HOUR).outcome == "compacted"
    manifest = LakeStore(s3, location.bucket).manifest(HOUR)[0]
    assert manifest is not None
    assert manifest.current
    assert set(manifest.parts) == set(lake.PART_KINDS)
    connection = archive_views.connect(location, s3)
    _, kinds = sql.run(connection, "SELECT DISTINCT kind FROM events_sources ORDER BY 1")
    assert kinds == [("parquet",), ("raw",)]
    # THEN the mixed reading gives the same columns (a session's parts from both)
    assert session_rows(location, s3) == EXPECTED_SESSIONS
    assert event_rows(location, s3) == raw_events
    # AND so does the lake once both hours are compacted
    assert compactor.compact(HOUR + timedelta(hours=1)).outcome == "compacted"
    connection = archive_views.connect(location, s3)
    _, kinds = sql.run(connection, "SELECT DISTINCT kind FROM events_sources")
    assert kinds == [("parquet",)]
    assert session_rows(location, s3) == EXPECTED_SESSIONS
    assert event_rows(location, s3) == raw_events
    # AND Athena's view (the same SQL, over its `session_parts` table: here the files its
    # symlinks name) too, and the one definition over the lake's events
    store = LakeStore(s3, location.bucket)
    hours = [m.hour for m in store.manifests()]
    named = [
        s3.get_object(Bucket=location.bucket, Key=layout.parts_symlink_key("sessions", hour))[
            "Body"
        ]
        .read()
        .decode()
        .strip()
        for hour in hours
    ]
    assert len(named) == 2
    parts_files = ", ".join(sql.quote(path) for path in named)
    files = [f.key for m in store.manifests() for f in m.files]
    lake_files = ", ".join(sql.quote(f"s3://{location.bucket}/{key}") for key in files)
    athena_like = sql.open_duckdb(location)
    athena_like.execute(f"CREATE VIEW session_parts AS SELECT * FROM read_parquet([{parts_files}])")
    athena_like.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet([{lake_files}])")
    verdict = sql.quote(f"s3://{location.bucket}/{verdict_objects([JUDGED])[0].key}")
    athena_like.execute(f"CREATE VIEW bot_verdicts AS SELECT * FROM read_json([{verdict}])")
    _, rows = sql.run(athena_like, f"SELECT * FROM ({sessions_from_parts('session_parts')})")
    _, over_events = sql.run(athena_like, f"SELECT * FROM ({sessions_select('events')})")
    assert sorted(over_events) == sorted(rows)
    _, viewed = sql.run(connection, "SELECT * FROM sessions")
    assert sorted(rows) == sorted(viewed)
    assert len(rows) == len(EXPECTED_SESSIONS)
