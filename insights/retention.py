"""Retention: people by the period of their first visit, and the share of them that came back
in each later period (docs/reports.md, Retention).

Periods are the site's zone's days, weeks (Monday to Sunday) or months. The range is
widened back to the start of its first period, so every cohort is a whole period; the last
period is the one now falls in (partial, said so). A person (the report's visitor) belongs
to the cohort of their first visit in the range, and **returned in period k** when they
made a visit that began in the k-th period after it (k = 0 is the cohort's own: every one
of them). People only, the report's filters applied.

One statement over `sessions` (the reports' parts: a retention table over months reads no
events), the periods given as literal bounds so that DuckDB and Athena count the same
days whatever their zone support.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

import duckdb

from insights.report import (
    Query,
    Range,
    RequestError,
    use_visits,
    visits_select,
)
from insights.sql import quote

COHORTS: Final = ("day", "week", "month")
MAX_PERIODS: Final = 400


def period_start(moment: datetime, cohort: str, zone: Any) -> datetime:
    """The start of the zone's period holding `moment`."""
    day = moment.astimezone(zone).date()
    if cohort == "week":
        day -= timedelta(days=day.weekday())
    elif cohort == "month":
        day = day.replace(day=1)
    return datetime.combine(day, time(), zone)


def cohort_of(text: str, name: str = "--cohort") -> str:
    """A cohort's period (`name`: the option or parameter that said it)."""
    if text not in COHORTS:
        raise RequestError(f"{name} {text!r}: day, week or month")
    return text


def periods(span: Range, cohort: str) -> list[tuple[str, datetime, datetime]]:
    """The zone's periods from the one holding the range's start to the one holding its end:
    (label, start, end), aware."""
    cohort_of(cohort)
    found = []
    start = period_start(span.start, cohort, span.zone)
    while start < span.end:
        day = start.date()
        if cohort == "day":
            following = day + timedelta(days=1)
        elif cohort == "week":
            following = day + timedelta(days=7)
        else:
            following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        end = datetime.combine(following, time(), span.zone)
        found.append((day.isoformat(), start, end))
        start = end
        if len(found) > MAX_PERIODS:
            raise RequestError(f"more than {MAX_PERIODS} {cohort}s: a shorter range or --cohort")
    return found


def _utc(moment: datetime) -> str:
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return f"TIMESTAMP {quote(text)}"


def retention_select(bounds: list[tuple[str, datetime, datetime]], visits: str = "visits") -> str:
    """Per cohort (its period's index) and period after it: the people who visited."""
    values = ", ".join(
        f"({index}, {_utc(start)}, {_utc(end)})" for index, (_, start, end) in enumerate(bounds)
    )
    return (
        f"WITH periods AS (SELECT * FROM (VALUES {values}) AS p(i, start, stop)), "  # noqa: S608
        "visited AS (SELECT DISTINCT v.visitor, p.i FROM "
        f"{visits} v JOIN periods p ON v.started_at >= p.start AND v.started_at < p.stop), "
        "cohorts AS (SELECT visitor, min(i) AS cohort FROM visited GROUP BY visitor) "
        "SELECT c.cohort, v.i - c.cohort AS k, count(*) AS people FROM cohorts c "
        "JOIN visited v ON v.visitor = c.visitor GROUP BY c.cohort, v.i - c.cohort "
        "ORDER BY c.cohort, k"
    )


@dataclass(frozen=True, slots=True)
class Retention:
    cohort: str
    bounds: list[tuple[str, datetime, datetime]]
    counts: dict[int, dict[int, int]]
    """Cohort index -> periods after it -> people."""
    now: datetime

    def as_dict(self, query: Query) -> dict[str, Any]:
        cohorts = []
        for index, (label, _, _) in enumerate(self.bounds):
            counted = self.counts.get(index, {})
            people = counted.get(0, 0)
            later = len(self.bounds) - index
            cohorts.append(
                {
                    "cohort": label,
                    "people": people,
                    "periods": [
                        {
                            "period": k,
                            "people": counted.get(k, 0),
                            "share": round(counted.get(k, 0) / people, 4) if people else None,
                        }
                        for k in range(later)
                    ],
                }
            )
        last = self.bounds[-1] if self.bounds else None
        return {
            "range": {
                **Range(
                    self.bounds[0][1] if self.bounds else query.range.start,
                    query.range.end,
                    query.range.zone,
                ).as_dict(),
                "cohort": self.cohort,
            },
            "last_period_partial": bool(last and last[2] > self.now),
            "cohorts": cohorts,
        }


def widened(query: Query, cohort: str) -> Query:
    """The query over whole periods: its start moved back to its period's."""
    start = period_start(query.range.start, cohort, query.range.zone)
    return Query(
        Range(start, query.range.end, query.range.zone),
        filters=query.filters,
        bots=query.bots,
        top=query.top,
    )


def retention_of(
    connection: duckdb.DuckDBPyConnection, query: Query, cohort: str, now: datetime
) -> Retention:
    """Retention on a reading (`insights.report`), over `widened(query)`'s range."""
    whole = widened(query, cohort)
    bounds = periods(whole.range, cohort)
    use_visits(connection, whole)
    counts: dict[int, dict[int, int]] = {}
    for index, k, people in connection.execute(retention_select(bounds)).fetchall():
        counts.setdefault(int(index), {})[int(k)] = int(people)
    return Retention(cohort, bounds, counts, now)


def portable_sql(query: Query, cohort: str) -> str:
    whole = widened(query, cohort)
    visits = visits_select(whole, whole.range)
    body = retention_select(periods(whole.range, cohort))
    return f"WITH visits AS ({visits}), {body.removeprefix('WITH ')}"
