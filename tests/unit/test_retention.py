"""Retention (`insights.retention`): the zone's periods (weeks from Monday, months of their
own length, a day of 23 hours), and the cohort table over hand-made visits (DuckDB in
memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from insights import report, retention

BERLIN = ZoneInfo("Europe/Berlin")


def test_weeks_start_on_monday_in_the_zone_and_months_have_their_lengths() -> None:
    span = report.Range(
        datetime(2026, 10, 21, 12, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC), BERLIN
    )
    weeks = retention.periods(span, "week")
    assert [label for label, _, _ in weeks] == ["2026-10-19", "2026-10-26", "2026-11-02"]
    # the week of the clock change (25 October) is an hour longer
    assert weeks[0][2].astimezone(UTC) - weeks[0][1].astimezone(UTC) == timedelta(days=7, hours=1)
    months = retention.periods(span, "month")
    assert [
        (label, end.astimezone(UTC) - start.astimezone(UTC)) for label, start, end in months
    ] == [
        ("2026-10-01", timedelta(days=31, hours=1)),
        ("2026-11-01", timedelta(days=30)),
    ]
    with pytest.raises(report.RequestError, match="day, week or month"):
        retention.periods(span, "year")


def test_the_cohort_table_counts_each_person_once_per_period() -> None:
    zone = ZoneInfo("UTC")
    monday = datetime(2026, 11, 23, tzinfo=UTC)  # its week ends in December
    visits = [
        ("ann", 0), ("ann", 1), ("ann", 8), ("ann", 15),  # week 0 twice, then 1 and 2
        ("bob", 2), ("bob", 16),                          # week 0, week 2
        ("cy", 9), ("cy", 10),                            # first seen in week 1
        ("di", 3),                                        # week 0 only
    ]  # fmt: skip
    connection = duckdb.connect()
    rows = ", ".join(
        f"('{who}', TIMESTAMP '{(monday + timedelta(days=d)).replace(tzinfo=None)}')"
        for who, d in visits
    )
    connection.execute(
        f"CREATE TABLE visits AS SELECT * FROM (VALUES {rows}) AS v(visitor, started_at)"
    )
    span = report.Range(monday, monday + timedelta(days=21), zone)
    bounds = retention.periods(span, "week")
    counts: dict[int, dict[int, int]] = {}
    for cohort, k, people in connection.execute(retention.retention_select(bounds)).fetchall():
        counts.setdefault(cohort, {})[k] = people
    assert counts == {0: {0: 3, 1: 1, 2: 2}, 1: {0: 1}}
    table = retention.Retention("week", bounds, counts, monday + timedelta(days=20))
    shown = table.as_dict(report.Query(span))
    assert shown["last_period_partial"] is True
    first = shown["cohorts"][0]
    assert first["cohort"] == "2026-11-23"
    assert first["people"] == 3
    assert [p["share"] for p in first["periods"]] == [1.0, round(1 / 3, 4), round(2 / 3, 4)]
    assert [p["people"] for p in shown["cohorts"][1]["periods"]] == [1, 0]
    assert shown["cohorts"][2]["people"] == 0
