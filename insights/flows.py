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
from insights.report import RequestError

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


def _one(params: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise RequestError(f"{name}: given more than once")
    return values[0] if values else default


def _whole(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    text = _one(params, name) or str(default)
    if not text.isdigit() or not low <= int(text) <= high:
        raise RequestError(f"{name}: a whole number from {low} to {high}")
    return int(text)


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
    within = funnels.window_of(_one(params, "within", "1d") or "1d")
    per = _one(params, "per", funnels.Per.VISIT)
    if per not in {funnels.Per.VISIT, funnels.Per.PERSON}:
        raise RequestError(f"per {per!r}: visit or person")
    dropped = _one(params, "dropped")
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
    length = _whole(params, "steps", 3, 1, paths.MAX_STEPS)
    return Asked(
        since,
        lambda connection: funnels.dropped_paths_of(
            connection, query, steps, within=within, per=per, after=int(dropped), length=length
        ).as_dict(query),
        live=_live(query),
    )


def _paths(params: dict[str, list[str]], now: datetime) -> Asked:
    query, _, _ = report.query_of(params, now)
    written = _one(params, "page")
    if not written:
        raise RequestError("page: which page's paths? (?page=/pricing)")
    page = parse_goal(written)
    paths.anchor_condition(page)  # an event is not a page: said now, before reading
    direction = _one(params, "direction", "after")
    if direction not in DIRECTIONS:
        raise RequestError(f"direction {direction!r}: after or before")
    steps = _whole(params, "steps", 3, 1, paths.MAX_STEPS)
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
    cohort = _one(params, "cohort", "week") or "week"
    if cohort not in retention.COHORTS:
        raise RequestError(f"cohort {cohort!r}: day, week or month")
    whole = retention.widened(query, cohort)
    return Asked(
        report.reading_start(whole, compare=False),
        lambda connection: retention.retention_of(connection, query, cohort, now).as_dict(query),
        live=_live(query),
    )


def _live(query: report.Query) -> bool:
    return query.range.end - query.range.start <= timedelta(hours=1)
