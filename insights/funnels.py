"""Funnels: how many visits (or people) took a sequence of steps, and where they dropped off
(docs/reports.md, Funnels).

A step is a goal's form (`insights.goals`: a page, a page of one site, a custom event with
conditions). A visit (or person) **reaches step k** when it has events matching steps 1 to k
in that order, each strictly later than the one before (other events may come between; a
step repeated counts once), the k-th within the window of the first: `t1 < t2 < … < tk ≤
t1 + window`. Each step-1 event is a possible start; the one that gets furthest counts (the
earliest of those), and the steps after it are each the earliest match after the one
before, which is what lets the most later steps follow. Per person: a person's events across
all the range's visits (a person is the report's visitor: the user id where known, else the
anonymous id).

Per step: `count` (visits or people that reached it), `conversion_from_first` and
`conversion_from_previous` (shares of the first step's and the previous step's counts), and
`median_seconds_from_previous` (the median time from the previous step, among those that
reached it; the mean of the two middle ones for an even count).

The SQL is one statement over the lake's `page_views` and `custom_events` parts and `visits`
(`insights.report.visits_select`) that DuckDB and Athena both run: step order needs each
event's time, which the page views part keeps (a fifth of the events' bytes) beside the
custom events.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import duckdb

from insights.goals import Goal, like_pattern, parse_goal
from insights.paths import MAX_STEPS as MAX_PATH_STEPS
from insights.paths import changed_select, shown
from insights.report import Kind, Query, RequestError, use_visits, visits_select
from insights.sessions_sql import CUSTOM_EVENTS, PAGE_VIEWS
from insights.sql import quote

MAX_STEPS: Final = 8
NO_VALUE: Final = "(none)"
"""The breakdown's key of the visits without a value (no campaign, say)."""
WINDOW: Final = re.compile(r"(\d{1,5})([smhdw])")
UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Per:
    VISIT = "visit"
    PERSON = "person"


def per_of(text: str, name: str = "--per") -> str:
    """What a funnel counts (`name`: the option or parameter that said it)."""
    if text not in {Per.VISIT, Per.PERSON}:
        raise RequestError(f"{name} {text!r}: visit or person")
    return text


def window_of(text: str) -> timedelta:
    matched = WINDOW.fullmatch(text.strip())
    if matched is None or int(matched.group(1)) == 0:
        raise RequestError(f"--within {text!r}: expected a length such as 30m, 1d or 7d")
    return timedelta(**{UNITS[matched.group(2)]: int(matched.group(1))})


def steps_of(texts: Sequence[str]) -> list[Goal]:
    if not 2 <= len(texts) <= MAX_STEPS:
        raise RequestError(f"a funnel has 2 to {MAX_STEPS} steps, not {len(texts)}")
    return [parse_goal(text) for text in texts]


def step_source(step: Goal) -> tuple[str, str]:
    """Where a step's events are (`page_views` or `custom_events`, the lake's parts) and
    whether one of them (`e`, joined to its visit, `v`) matches the step."""
    if step.event is not None:
        conditions = [f"e.name = {quote(step.event)}"]
        conditions += [
            f"json_extract_scalar(e.properties, {quote('$.' + key)}) = {quote(value)}"
            for key, value in step.conditions
        ]
        return CUSTOM_EVENTS, " AND ".join(conditions)
    assert step.path is not None
    conditions = [f"e.page LIKE {quote(like_pattern(step.path))} ESCAPE '\\'"]
    if step.host is not None:
        conditions.append(f"v.site = {quote(step.host)}")
    return PAGE_VIEWS, " AND ".join(conditions)


def _unit(per: str) -> str:
    return "v.session_id" if per == Per.VISIT else "v.visitor"


def _best_ctes(
    steps: Sequence[Goal], query: Query, *, within: timedelta, per: str, visits: str
) -> list[str]:
    """The funnel's common table expressions up to `best`: per unit (visit or person), its
    start that got furthest, `t1`…`tN` (NULL past where it stopped) and `depth`."""
    unit = _unit(per)
    value = "CAST(NULL AS VARCHAR)"
    if query.by is not None:
        if query.by.kind is not Kind.SESSION:
            raise RequestError(
                f"--by {query.by.name}: a funnel is broken down by what a visit says "
                "(source, channel, device_type, country, …), not by pages or events"
            )
        value = query.by.expression
    seconds = int(within.total_seconds())
    # Each event matching a step, with the unit it counts for and the unit's value. Per
    # person the value is the one of the person's first visit in the range.
    matched = " UNION ALL ".join(
        f"SELECT {unit} AS unit, e.event_time AS t, {index} AS step "  # noqa: S608
        f"FROM {source} e JOIN {visits} v ON v.session_id = e.session_id WHERE {condition}"
        for index, (source, condition) in enumerate(map(step_source, steps), start=1)
    )
    valued = (
        f"SELECT unit, value FROM (SELECT {unit} AS unit, {value} AS value, "  # noqa: S608
        f"row_number() OVER (PARTITION BY {unit} ORDER BY v.started_at, v.session_id) AS n "
        f"FROM {visits} v) WHERE n = 1"
    )
    ctes = [f"matched AS ({matched})", f"valued AS ({valued})"]
    ctes.append("s1 AS (SELECT DISTINCT unit, t AS t1 FROM matched WHERE step = 1)")
    keys = ["unit", "t1"]
    for index in range(2, len(steps) + 1):
        previous = f"t{index - 1}"
        carried = ", ".join(f"p.{key}" for key in keys)
        ctes.append(
            f"s{index} AS (SELECT {carried}, min(m.t) AS t{index} "  # noqa: S608
            f"FROM s{index - 1} p JOIN matched m ON m.unit = p.unit AND m.step = {index} "
            f"AND m.t > p.{previous} AND m.t <= p.t1 + INTERVAL '{seconds}' SECOND "
            f"GROUP BY {carried})"
        )
        keys.append(f"t{index}")
    # Every start with how far it got: the starts joined to each later step's table.
    joined = "s1"
    for index in range(2, len(steps) + 1):
        using = ", ".join(f"t{k}" for k in range(1, index))
        joined += f" LEFT JOIN s{index} USING (unit, {using})"
    depth = " + ".join(
        f"CASE WHEN t{k} IS NOT NULL THEN 1 ELSE 0 END" for k in range(1, len(steps) + 1)
    )
    times = ", ".join(f"t{k}" for k in range(1, len(steps) + 1))
    ctes.append(
        f"starts AS (SELECT unit, {times}, {depth} AS depth FROM {joined})"  # noqa: S608
    )
    ctes.append(
        "best AS (SELECT * FROM (SELECT s.*, row_number() OVER (PARTITION BY unit "
        "ORDER BY depth DESC, t1) AS n FROM starts s) WHERE n = 1)"
    )
    return ctes


def funnel_select(
    steps: Sequence[Goal],
    query: Query,
    *,
    within: timedelta,
    per: str,
    visits: str = "visits",
) -> str:
    """The funnel's rows (`value`, `step`, `count`, `median_seconds`) over `page_views`,
    `custom_events` and `visits`: per value of `query.by` (a session dimension) or NULL for all."""
    ctes = _best_ctes(steps, query, within=within, per=per, visits=visits)
    # One row per unit and step it reached, with the seconds from the step before.
    per_step = " UNION ALL ".join(
        f"SELECT unit, {k} AS step, "  # noqa: S608
        + (
            "CAST(NULL AS DOUBLE) AS seconds"
            if k == 1
            else f"date_diff('millisecond', t{k - 1}, t{k}) / 1000.0 AS seconds"
        )
        + f" FROM best WHERE depth >= {k}"
        for k in range(1, len(steps) + 1)
    )
    ctes.append(
        f"reached AS (SELECT r.*, v.value FROM ({per_step}) r "  # noqa: S608
        "JOIN valued v USING (unit))"
    )
    ctes.append(
        "ranked AS (SELECT value, step, seconds, "
        "row_number() OVER (PARTITION BY value, step ORDER BY seconds) AS n, "
        "count(*) OVER (PARTITION BY value, step) AS total FROM reached)"
    )
    # The median, portably: the mean of the middle one or two (Athena has no exact median).
    return (
        f"WITH {', '.join(ctes)} SELECT value, step, count(*) AS count, "  # noqa: S608
        "avg(CASE WHEN n IN (floor((total + 1) / 2.0), floor((total + 2) / 2.0)) "
        "THEN seconds END) "
        "AS median_seconds FROM ranked GROUP BY value, step ORDER BY value, step"
    )


@dataclass(frozen=True, slots=True)
class Funnel:
    steps: list[Goal]
    per: str
    within: timedelta
    rows: list[dict[str, Any]]
    """All visits' (or people's) steps."""
    by: dict[str, list[dict[str, Any]]]

    def as_dict(self, query: Query) -> dict[str, Any]:
        found: dict[str, Any] = {
            "range": {**query.range.as_dict(), "by": query.by.name if query.by else None},
            "per": self.per,
            "within_seconds": int(self.within.total_seconds()),
            "steps": self.rows,
        }
        if query.by is not None:
            found["by"] = self.by
        return found


def _step_rows(
    steps: Sequence[Goal], counted: dict[int, tuple[int, float | None]]
) -> list[dict[str, Any]]:
    rows = []
    first = counted.get(1, (0, None))[0]
    previous = first
    for index, step in enumerate(steps, start=1):
        count, median = counted.get(index, (0, None))
        rows.append(
            {
                "step": step.text,
                "count": count,
                "conversion_from_first": round(count / first, 4) if first else None,
                "conversion_from_previous": (
                    None if index == 1 else round(count / previous, 4) if previous else None
                ),
                "median_seconds_from_previous": None if median is None else round(median, 1),
            }
        )
        previous = count
    return rows


def funnel_of(
    connection: duckdb.DuckDBPyConnection,
    query: Query,
    steps: Sequence[Goal],
    *,
    within: timedelta,
    per: str,
    sessions: str | None = None,
) -> Funnel:
    """The funnel on a connection with the parts' views and `sessions` (`insights.archive_views`):
    the reading's sessions put together once (`report.prepare`) unless `sessions` names a
    relation to read instead."""
    use_visits(connection, query, sessions)
    everyone = Query(query.range, filters=query.filters, bots=query.bots)
    totals: dict[int, tuple[int, float | None]] = {}
    for _, step, count, median in connection.execute(
        funnel_select(steps, everyone, within=within, per=per)
    ).fetchall():
        totals[int(step)] = (int(count), None if median is None else float(median))
    by: dict[str, list[dict[str, Any]]] = {}
    if query.by is not None:
        values: dict[str, dict[int, tuple[int, float | None]]] = {}
        for value, step, count, median in connection.execute(
            funnel_select(steps, query, within=within, per=per)
        ).fetchall():
            values.setdefault(NO_VALUE if value is None else str(value), {})[int(step)] = (
                int(count),
                None if median is None else float(median),
            )
        ordered = sorted(values.items(), key=lambda item: -item[1].get(1, (0, None))[0])
        by = {value: _step_rows(steps, counted) for value, counted in ordered[: query.top]}
    return Funnel(list(steps), per, within, _step_rows(steps, totals), by)


def dropped_paths_select(
    steps: Sequence[Goal],
    query: Query,
    *,
    within: timedelta,
    per: str,
    after: int,
    length: int,
    visits: str = "visits",
) -> str:
    """The pages the visits (people) that reached step `after` and no further viewed next,
    from the moment of that step: `p1`…`pN` (NULL where they left first), `units` per
    sequence and `dropped` (all of them), the most taken first. A page viewed again at once
    counts once, as in paths (`insights.paths`)."""
    if not 1 <= after < len(steps):
        raise RequestError(f"dropped {after}: a step from 1 to {len(steps) - 1}")
    if not 1 <= length <= MAX_PATH_STEPS:
        raise RequestError(f"steps {length}: from 1 to {MAX_PATH_STEPS}")
    unit = _unit(per)
    ctes = _best_ctes(steps, query, within=within, per=per, visits=visits)
    ctes += [
        f"dropped AS (SELECT unit, t{after} AS since FROM best WHERE depth = {after})",  # noqa: S608
        # Their page views after the step only: not every view of the range.
        f"later AS (SELECT d.unit, e.page, e.event_time, e.event_id FROM dropped d "  # noqa: S608
        f"JOIN {visits} v ON {unit} = d.unit JOIN {PAGE_VIEWS} e "
        "ON e.session_id = v.session_id AND e.event_time > d.since)",
        f"changed AS ({changed_select('later', 'unit')})",
    ]
    columns = ", ".join(
        f"max(CASE WHEN c.n = {k} THEN c.page END) AS p{k}" for k in range(1, length + 1)
    )
    ctes.append(
        f"taken AS (SELECT d.unit, {columns} FROM dropped d "  # noqa: S608
        "LEFT JOIN changed c ON c.unit = d.unit GROUP BY d.unit)"
    )
    names = ", ".join(f"p{k}" for k in range(1, length + 1))
    return (
        f"WITH {', '.join(ctes)} SELECT {names}, count(*) AS units, "  # noqa: S608
        f"sum(count(*)) OVER () AS dropped FROM taken GROUP BY {names} "
        f"ORDER BY units DESC, {names} LIMIT {int(query.top)}"
    )


@dataclass(frozen=True, slots=True)
class DroppedPaths:
    """Where the visits (people) that stopped after a step went instead."""

    step: Goal
    after: int
    per: str
    dropped: int
    rows: list[tuple[list[str], int]]

    def as_dict(self, query: Query) -> dict[str, Any]:
        return {
            "range": query.range.as_dict(),
            "per": self.per,
            "after_step": self.after,
            "step": self.step.text,
            "dropped": self.dropped,
            "paths": [
                {
                    "pages": pages,
                    "count": count,
                    "share": round(count / self.dropped, 4) if self.dropped else None,
                }
                for pages, count in self.rows
            ],
        }


def dropped_paths_of(
    connection: duckdb.DuckDBPyConnection,
    query: Query,
    steps: Sequence[Goal],
    *,
    within: timedelta,
    per: str,
    after: int,
    length: int = 3,
    sessions: str | None = None,
) -> DroppedPaths:
    """The paths taken instead of step `after + 1` (`dropped_paths_select`), on a reading as
    `funnel_of` takes it."""
    use_visits(connection, query, sessions)
    everyone = Query(query.range, filters=query.filters, bots=query.bots, top=query.top)
    found = connection.execute(
        dropped_paths_select(steps, everyone, within=within, per=per, after=after, length=length)
    ).fetchall()
    rows = [(shown(tuple(row[:length]), before=False), int(row[length])) for row in found]
    dropped = int(found[0][-1]) if found else 0
    return DroppedPaths(steps[after - 1], after, per, dropped, rows)


def portable_sql(query: Query, steps: Sequence[Goal], *, within: timedelta, per: str) -> str:
    """The funnel as one statement over `page_views`, `custom_events` and `sessions` (Athena's
    tables and view)."""
    visits = visits_select(query, query.range)
    body = funnel_select(steps, query, within=within, per=per)
    return f"WITH visits AS ({visits}), {body.removeprefix('WITH ')}"
