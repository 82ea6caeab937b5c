"""The site owner's view's funnel, paths and retention requests (`/api/funnel`, `/api/paths`,
`/api/retention`): their query parameters read into what to compute, the reading it needs,
and the answer, the same JSON as `clickstream funnel`, `paths` and `retention --json`.

Each takes the report's parameters for the range, filters, site, zone and bots
(`insights.report.query_of`) and its own:

- funnel: `step` (2 to 8, in order, each a goal's form), `within` (1d), `per` (visit or
  person), `by` (a visit's dimension), and `dropped=K` for where the visits (people) that
  reached step K and no further went instead (`insights.funnels.dropped_paths_of`);
- paths: `page` and `direction` (`after` or `before` it), `steps` (3);
- retention: `cohort` (day, week or month), over 8 weeks unless a range is given.

Each reads the lake's parts (funnels and paths its page views and custom events, retention
its sessions), so the dashboard's kept reading serves them all (`insights.readings`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import duckdb

from insights import funnels, paths, report, retention
from insights.goals import parse_goal
from insights.report import RequestError, one_value, whole_number

KINDS: Final = ("funnel", "paths", "retention")
DIRECTIONS: Final = ("after", "before")


@dataclass(frozen=True, slots=True)
class Asked:
    """A request read: the first hour its reading must hold, and the answer on such a
    reading."""

    since: datetime
    answer: Callable[[duckdb.DuckDBPyConnection], dict[str, Any]]
    live: bool = False
    """A range of an hour or less: its answer grows older fast."""


def asked_of(kind: str, params: dict[str, list[str]], now: datetime) -> Asked:
    """What a request of `kind` asks (its errors: `RequestError`, naming the parameter)."""
    if kind == "funnel":
        return _funnel(params, now)
    if kind == "paths":
        return _paths(params, now)
    if kind == "retention":
        return _retention(params, now)
    raise RequestError(f"{kind!r}: one of {', '.join(KINDS)}")


def _funnel(params: dict[str, list[str]], now: datetime) -> Asked:
    query, _, _ = report.query_of(params, now)
    steps = funnels.steps_of(params.get("step", []))
    within = funnels.window_of(one_value(params, "within") or "1d")
    per = funnels.per_of(one_value(params, "per") or funnels.Per.VISIT, "per")
    dropped = one_value(params, "dropped")
    since = report.reading_start(query, compare=False)
    if dropped is None:
        return Asked(
            since,
            lambda connection: funnels.funnel_of(
                connection, query, steps, within=within, per=per
            ).as_dict(query),
            live=_live(query),
        )
    if not dropped.isdigit():
        raise RequestError(f"dropped {dropped!r}: a step's number")
    length = whole_number(params, "steps", default=3, low=1, high=paths.MAX_STEPS)
    return Asked(
        since,
        lambda connection: funnels.dropped_paths_of(
            connection, query, steps, within=within, per=per, after=int(dropped), length=length
        ).as_dict(query),
        live=_live(query),
    )


def _paths(params: dict[str, list[str]], now: datetime) -> Asked:
    query, _, _ = report.query_of(params, now)
    written = one_value(params, "page")
    if not written:
        raise RequestError("page: which page's paths? (?page=/pricing)")
    page = parse_goal(written)
    paths.anchor_condition(page)  # an event is not a page: said now, before reading
    direction = one_value(params, "direction") or "after"
    if direction not in DIRECTIONS:
        raise RequestError(f"direction {direction!r}: after or before")
    steps = whole_number(params, "steps", default=3, low=1, high=paths.MAX_STEPS)
    return Asked(
        report.reading_start(query, compare=False),
        lambda connection: paths.paths_of(
            connection, query, page, steps=steps, before=direction == "before"
        ).as_dict(query),
        live=_live(query),
    )


def _retention(params: dict[str, list[str]], now: datetime) -> Asked:
    ranged = any(name in params for name in ("since", "from", "to"))
    query, _, _ = report.query_of(params if ranged else {**params, "since": ["8w"]}, now)
    cohort = retention.cohort_of(one_value(params, "cohort") or "week", "cohort")
    whole = retention.widened(query, cohort)
    return Asked(
        report.reading_start(whole, compare=False),
        lambda connection: retention.retention_of(connection, query, cohort, now).as_dict(query),
        live=_live(query),
    )


def _live(query: report.Query) -> bool:
    return query.range.end - query.range.start <= timedelta(hours=1)
