"""Goals: what a site owner wants visits to do, and how many did (docs/goals.md).

A goal is written as text, the same in the CLI, the goals file and the dashboard:

- a **page**: a path (`/signup`), where `*` stands for any characters, slashes too
  (`/blog/*`: every page under `/blog/`); matched on the page's path whatever its site;
- a **page of one site**: the path after a host (`example.com/signup`, or a URL,
  `https://example.com/signup`): the path viewed in visits to that site (a visit's site is
  its first page's host: a visit stays on one site);
- a **custom event** by name (`event:Signed Up`), optionally with property conditions, each
  a property's value as text (`event:Signed Up[plan=pro]`, `event:Order[plan=pro,seats=5]`).

A visit **converted** when it viewed the page (or sent the event). Per goal: `visitors`, the
distinct people who converted (`insights.report`'s visitor); `visits` that converted;
`conversions`, the page's views or the events sent; `conversion_rate`, the converted
visitors over all the range's visitors (per breakdown value: over that value's visitors),
as Plausible counts it.

The SQL is one statement per goal over `sessions`, `page_parts` and `custom_events`: DuckDB
runs it over a reading, Athena over the stack's tables of the same parts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import duckdb

from insights.report import (
    PROPERTY_KEY,
    Dimension,
    Kind,
    Query,
    RequestError,
    use_visits,
    visits_select,
)
from insights.sql import quote

MAX_GOAL_LENGTH: Final = 512
EVENT_PREFIX: Final = "event:"
EVENT: Final = re.compile(r"event:([^\[\]]+?)\s*(?:\[([^\[\]]*)\])?")
"""`event:NAME` and its conditions in brackets."""
HOST: Final = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


class GoalError(RequestError):
    """A goal's text that does not parse: said with the forms it may take."""


FORMS: Final = (
    "a path (/signup, /blog/*), a host and path (example.com/signup), or "
    "event:NAME with optional [property=value,...]"
)


@dataclass(frozen=True, slots=True)
class Goal:
    text: str
    """As written: the goal's name in every answer."""
    path: str | None = None
    """A page goal's path pattern (`*`: any characters)."""
    host: str | None = None
    """A page goal's site, when it names one (lower case)."""
    event: str | None = None
    """A custom event goal's name."""
    conditions: tuple[tuple[str, str], ...] = ()
    """An event goal's property conditions: (key, value as text)."""

    @property
    def kind(self) -> Kind:
        return Kind.EVENT if self.event is not None else Kind.PAGE


def parse_goal(text: str) -> Goal:
    """A goal from its text; a `GoalError` saying what is wrong."""
    written = text.strip()
    if not written or len(written) > MAX_GOAL_LENGTH or not written.isprintable():
        raise GoalError(f"goal {text[:80]!r}: expected {FORMS}")
    if written.startswith(EVENT_PREFIX):
        return _event_goal(written)
    if written.startswith("/"):
        return Goal(written, path=written)
    address = urlsplit(written if "://" in written else f"//{written}")
    host = (address.hostname or "").lower()
    # A host has a dot (or is localhost): a bare word is a path written without its slash.
    named = "." in host or host == "localhost"
    if address.scheme not in {"", "http", "https"} or not named or not HOST.fullmatch(host):
        raise GoalError(f"goal {written!r}: expected {FORMS}")
    return Goal(written, path=address.path or "/", host=host)


def _event_goal(written: str) -> Goal:
    matched = EVENT.fullmatch(written)
    if matched is None or not matched.group(1).strip():
        raise GoalError(f"goal {written!r}: expected event:NAME or event:NAME[property=value]")
    conditions = []
    for condition in (matched.group(2) or "").split(","):
        if not condition.strip() and matched.group(2) is None:
            continue
        key, equals, value = condition.partition("=")
        if not equals or not PROPERTY_KEY.fullmatch(key.strip()):
            raise GoalError(
                f"goal {written!r}: a condition is property=value (a property's name is "
                f"letters, digits and _ . $ -), not {condition.strip()!r}"
            )
        conditions.append((key.strip(), value.strip()))
    return Goal(written, event=matched.group(1).strip(), conditions=tuple(conditions))


def like_pattern(path: str) -> str:
    """A path pattern as a LIKE pattern (escape `\\`): `*` any characters, the rest itself."""
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def converted_select(goal: Goal, visits: str = "visits") -> str:
    """The sessions that converted, each with its conversions (`session_id`, `conversions`)."""
    if goal.event is not None:
        conditions = [f"name = {quote(goal.event)}"] + [
            f"json_extract_scalar(properties, {quote('$.' + key)}) = {quote(value)}"
            for key, value in goal.conditions
        ]
        return (
            "SELECT session_id, count(*) AS conversions FROM custom_events "  # noqa: S608
            f"WHERE {' AND '.join(conditions)} GROUP BY session_id"
        )
    assert goal.path is not None
    conditions = [f"page LIKE {quote(like_pattern(goal.path))} ESCAPE '\\'"]
    if goal.host is not None:
        conditions.append(
            f"session_id IN (SELECT session_id FROM {visits} WHERE site = {quote(goal.host)})"  # noqa: S608
        )
    return (
        "SELECT session_id, sum(views) AS conversions FROM page_parts "  # noqa: S608
        f"WHERE {' AND '.join(conditions)} GROUP BY session_id"
    )


GOAL_FIGURES: Final = (
    "count(DISTINCT visitor) AS all_visitors, "
    "count(DISTINCT CASE WHEN conversions IS NOT NULL THEN visitor END) AS visitors, "
    "count(DISTINCT CASE WHEN conversions IS NOT NULL THEN session_id END) AS visits, "
    "coalesce(sum(conversions), 0) AS conversions"
)
"""A goal's figures over `valued` (the visits, each with its value and conversions)."""


def goal_select(goal: Goal, by: Dimension | None, top: int) -> str:
    """The goal's figures over `visits` (`insights.report.visits_select`), in total or per
    value of `by` (per page: the visits that viewed it; per event: that sent it)."""
    if by is None or by.kind is Kind.SESSION:
        value = "CAST(NULL AS VARCHAR)" if by is None else by.expression
        source = f"SELECT session_id, visitor, {value} AS value FROM visits"  # noqa: S608
    else:
        parts = "page_parts" if by.kind is Kind.PAGE else "custom_events"
        source = (
            "SELECT v.session_id, v.visitor, p.value FROM visits v "  # noqa: S608
            f"JOIN (SELECT DISTINCT session_id, {by.expression} AS value FROM {parts}) p "
            "ON p.session_id = v.session_id"
        )
    valued = (
        f"SELECT s.session_id, s.visitor, s.value, c.conversions FROM ({source}) s "  # noqa: S608
        f"LEFT JOIN ({converted_select(goal)}) c ON c.session_id = s.session_id"
    )
    grouped = f" GROUP BY value ORDER BY visitors DESC, value LIMIT {int(top)}" if by else ""
    value = "value" if by else "NULL AS value"
    return f"SELECT {value}, {GOAL_FIGURES} FROM ({valued}) AS valued{grouped}"  # noqa: S608


def portable_sql(query: Query, goal: Goal) -> str:
    """The goal's figures as one statement DuckDB and Athena both run over `sessions`,
    `page_parts` and `custom_events`."""
    visits = visits_select(query, query.range)
    return f"WITH visits AS ({visits}) {goal_select(goal, query.by, query.top)}"


@dataclass(frozen=True, slots=True)
class GoalFigures:
    value: str | None
    all_visitors: int
    visitors: int
    visits: int
    conversions: int

    def as_dict(self) -> dict[str, Any]:
        rate = self.visitors / self.all_visitors if self.all_visitors else None
        return {
            "visitors": self.visitors,
            "visits": self.visits,
            "conversions": self.conversions,
            "conversion_rate": None if rate is None else round(rate, 4),
        }


@dataclass(frozen=True, slots=True)
class GoalReport:
    goal: Goal
    totals: GoalFigures
    rows: list[GoalFigures]

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"goal": self.goal.text, **self.totals.as_dict()}
        if self.rows:
            found["rows"] = [{"value": row.value, **row.as_dict()} for row in self.rows]
        return found


def goals_of(
    connection: duckdb.DuckDBPyConnection, query: Query, goals: Sequence[Goal]
) -> list[GoalReport]:
    """Each goal's figures over the query's visits, on a reading (`insights.report`)."""
    use_visits(connection, query)
    found = []
    for goal in goals:
        (total,) = _figures(connection, goal_select(goal, None, 1))
        rows = _figures(connection, goal_select(goal, query.by, query.top)) if query.by else []
        found.append(GoalReport(goal, total, rows))
    return found


def _figures(connection: duckdb.DuckDBPyConnection, select: str) -> list[GoalFigures]:
    return [
        GoalFigures(
            None if value is None else str(value),
            int(every or 0),
            int(visitors or 0),
            int(visits or 0),
            int(conversions or 0),
        )
        for value, every, visitors, visits, conversions in connection.execute(select).fetchall()
    ]
