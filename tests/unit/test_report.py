"""The report's ranges, zones, buckets, dimensions and filters (`insights.report`): pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from clickstream.kernel.errors import InsightsError
from insights import report

NOW = datetime(2026, 12, 7, 13, 45, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def test_since_is_a_span_back_from_now_and_today_starts_at_the_zones_midnight() -> None:
    week = report.range_of(NOW, BERLIN, since="7d")
    assert (week.start, week.end) == (NOW - timedelta(days=7), NOW)
    today = report.range_of(NOW, BERLIN, since="today")
    assert today.start == datetime(2026, 12, 7, 0, 0, tzinfo=BERLIN)
    assert today.start.astimezone(UTC) == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    assert report.range_of(NOW, BERLIN, since="8w").start == NOW - timedelta(weeks=8)


def test_dates_are_the_zones_days_and_a_to_date_includes_its_day() -> None:
    span = report.range_of(NOW, BERLIN, start="2026-12-01", end="2026-12-03")
    assert span.start == datetime(2026, 12, 1, tzinfo=BERLIN)
    assert span.end == datetime(2026, 12, 4, tzinfo=BERLIN)
    # times: in the zone without an offset, as given with one; no --to: now
    at = report.range_of(NOW, BERLIN, start="2026-12-07T09:00")
    assert (at.start, at.end) == (datetime(2026, 12, 7, 9, tzinfo=BERLIN), NOW)
    utc = report.range_of(NOW, BERLIN, start="2026-12-07T09:00+00:00")
    assert utc.start == datetime(2026, 12, 7, 9, tzinfo=UTC)
    # the previous range is as long, just before
    assert span.previous.end == span.start
    assert span.previous.start == span.start - timedelta(days=3)


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"since": "7 days"}, "expected today, 30m"),
        ({"since": "7d", "start": "2026-12-01"}, "not both"),
        ({}, "give --since or --from"),
        ({"start": "yesterday"}, "ISO 8601"),
        ({"start": "2026-12-03", "end": "2026-12-01"}, "after --from"),
    ],
)
def test_a_wrong_range_is_one_clear_error(arguments: dict[str, str], said: str) -> None:
    with pytest.raises(InsightsError, match=said):
        report.range_of(NOW, BERLIN, **arguments)


def test_an_unknown_zone_is_one_clear_error() -> None:
    with pytest.raises(InsightsError, match="no such time zone"):
        report.zone_of("Mars/Olympus")


def test_a_day_with_a_clock_change_has_its_25_hours_and_a_week_its_days() -> None:
    # Berlin leaves summer time on 25 October 2026: 02:00-03:00 happens twice
    day = report.range_of(NOW, BERLIN, start="2026-10-25", end="2026-10-25")
    hours = day.buckets()
    assert len(hours) == 25
    assert [end - start for _, start, end in hours] == [timedelta(hours=1)] * 25
    assert hours[0][0] == "2026-10-25T00:00:00+02:00"
    assert hours[-1][0] == "2026-10-25T23:00:00+01:00"
    week = report.range_of(NOW, BERLIN, start="2026-10-20", end="2026-10-26")
    days = week.buckets()
    assert [label for label, _, _ in days][:2] == ["2026-10-20", "2026-10-21"]
    assert len(days) == 7
    assert days[5][2].astimezone(UTC) - days[5][1].astimezone(UTC) == timedelta(hours=25)
    # a zone half an hour off UTC counts from its own hours
    kolkata = report.range_of(NOW, ZoneInfo("Asia/Kolkata"), since="24h")
    assert kolkata.buckets()[0][0].endswith(":00:00+05:30")
    # the live view's are minutes, a few hours' ten minutes
    live = report.range_of(NOW, BERLIN, since="30m").buckets()
    assert len(live) == 30
    assert live[1][1] - live[0][1] == timedelta(minutes=1)
    hours = report.range_of(NOW, BERLIN, since="3h").buckets()
    assert (len(hours), hours[0][0]) == (19, "2026-12-07T11:40:00+01:00")


def test_dimensions_filters_and_properties() -> None:
    assert report.dimension("channel").kind is report.Kind.SESSION
    assert report.dimension("page").kind is report.Kind.PAGE
    plan = report.dimension("property:plan")
    assert plan.kind is report.Kind.EVENT
    assert "$.plan" in plan.expression
    with pytest.raises(InsightsError, match="no dimension 'colour'"):
        report.dimension("colour")
    with pytest.raises(InsightsError, match="no dimension"):
        report.dimension("property:a'b")  # never into the SQL
    filters = report.filters_of(["device_type=mobile", "country=DE", "device_type=tablet"])
    assert [(wanted.name, values) for wanted, values in filters] == [
        ("device_type", ("mobile", "tablet")),
        ("country", ("DE",)),
    ]
    with pytest.raises(InsightsError, match="expected DIM=VALUE"):
        report.filters_of(["country"])


def test_filter_values_are_quoted_into_the_visits_sql() -> None:
    span = report.range_of(NOW, BERLIN, since="7d")
    query = report.Query(span, filters=report.filters_of(["source=o'brien"]))
    sql = report.visits_select(query, span)
    assert "source IN ('o''brien')" in sql
    assert "NOT is_bot" in sql
    assert "is_bot" in report.visits_select(report.Query(span, bots=True), span)


def test_people_counted_apart_when_lone_equal_a_distinct_count() -> None:
    """`KEPT_PEOPLE` over any subset of a reading's visits (the lone marked over all of
    them) is the distinct count, per group: 2,000 visits of 700 people, some with many."""
    import random

    import duckdb

    rng = random.Random(5)
    rows = ", ".join(
        f"('s{n}', 'p{min(rng.randrange(1000), rng.randrange(1000)) % 700}', "
        f"'{rng.choice('abc')}', {rng.random() < 0.5})"
        for n in range(2000)
    )
    connection = duckdb.connect()
    connection.execute(
        f"CREATE TABLE every AS SELECT *, count(*) OVER (PARTITION BY visitor) = 1 AS lone "
        f"FROM (VALUES {rows}) AS v(session_id, visitor, channel, chosen)"
    )
    lone = connection.execute("SELECT count(*) FILTER (WHERE lone) FROM every").fetchone()
    assert lone is not None
    assert 0 < lone[0] < 2000  # both kinds of people are there
    connection.execute("CREATE VIEW visits AS SELECT * FROM every WHERE chosen")
    kept = connection.execute(
        f"SELECT channel, {report.KEPT_PEOPLE} FROM visits GROUP BY 1 ORDER BY 1"
    ).fetchall()
    plain = connection.execute(
        f"SELECT channel, {report.PEOPLE} FROM visits GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert kept == plain
