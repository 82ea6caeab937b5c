"""Paths: the most frequent sequences of pages after (or before) a page within visits
(docs/reports.md, Paths).

A visit's **pages** are its page views' paths in time order, a page viewed again at once
(a reload, a sort or a filter on the same path) counted once. Its **anchor** is its first
view of the page asked for (a goal's page form: a path, a pattern, a path on one host).
`--from`: the `steps` pages after the anchor, `(exit)` where the visit ended before them;
`--to`: the `steps` pages before it, nearest last, `(entrance)` where the visit began
closer. Per sequence: the visits that took it and their share of the visits that viewed the
page; per step, how many visits had left (or had not yet arrived) by then.

One statement over the lake's `page_views` part and `visits`, as DuckDB and Athena both run
it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import duckdb

from insights.goals import Goal, like_pattern
from insights.report import Query, RequestError, use_visits, visits_select
from insights.sessions_sql import PAGE_VIEWS
from insights.sql import quote

EXIT: Final = "(exit)"
ENTRANCE: Final = "(entrance)"
MAX_STEPS: Final = 6


def anchor_condition(page: Goal) -> str:
    if page.path is None:
        raise RequestError(f"{page.text!r}: a path is a page (/pricing, /blog/*), not an event")
    condition = f"e.page LIKE {quote(like_pattern(page.path))} ESCAPE '\\'"
    if page.host is not None:
        condition += f" AND v.site = {quote(page.host)}"
    return condition


def changed_select(views: str, key: str) -> str:
    """`views`' rows (each with `page`, `event_time`, `event_id`) numbered `n` in time order
    per `key` (a visit, or a funnel's unit), a page viewed again at once counted once: only
    the views whose page differs from the view before (or that come first) are kept."""
    return (
        f"SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY event_time, event_id) AS n "  # noqa: S608
        f"FROM (SELECT *, lag(page) OVER (PARTITION BY {key} ORDER BY event_time, event_id) "
        f"AS before FROM {views}) WHERE before IS NULL OR before <> page"
    )


def taken_ctes(page: Goal, *, steps: int, before: bool, visits: str = "visits") -> str:
    """`WITH … taken AS (…)`: per visit that viewed the page, `p1`…`pN`, the k-th page
    after the anchor (before it, with `before`), NULL where the visit ended (began) first."""
    if not 1 <= steps <= MAX_STEPS:
        raise RequestError(f"--steps {steps}: from 1 to {MAX_STEPS}")
    # The visits' first views of the page; then only those visits' views are ordered (the
    # window functions sort what they are given: a month's views are millions). The page's
    # condition is written once: Athena's named query takes it as one parameter.
    firsts = (
        "SELECT session_id, event_time, event_id FROM (SELECT e.session_id, e.event_time, "  # noqa: S608
        "e.event_id, row_number() OVER (PARTITION BY e.session_id ORDER BY e.event_time, "
        f"e.event_id) AS k FROM {PAGE_VIEWS} e JOIN {visits} v ON v.session_id = e.session_id "
        f"WHERE {anchor_condition(page)}) WHERE k = 1"
    )
    viewed = (
        "SELECT e.session_id, e.event_time, e.event_id, e.page "  # noqa: S608
        f"FROM {PAGE_VIEWS} e JOIN firsts f ON f.session_id = e.session_id"
    )
    # A page viewed again at once is one step. A first view of the page is always kept (the
    # view before it was of another page).
    changed = changed_select("viewed", "session_id")
    anchors = (
        "SELECT c.session_id, c.n AS anchor FROM changed c JOIN firsts f "
        "ON f.session_id = c.session_id AND f.event_time = c.event_time "
        "AND f.event_id = c.event_id"
    )
    sign = "-" if before else "+"
    columns = ", ".join(
        f"max(CASE WHEN c.n = a.anchor {sign} {k} THEN c.page END) AS p{k}"
        for k in range(1, steps + 1)
    )
    taken = (
        f"SELECT a.session_id, {columns} FROM anchors a "  # noqa: S608
        "JOIN changed c ON c.session_id = a.session_id GROUP BY a.session_id"
    )
    return (
        f"WITH firsts AS ({firsts}), viewed AS ({viewed}), changed AS ({changed}), "
        f"anchors AS ({anchors}), taken AS ({taken})"
    )


def paths_select(page: Goal, *, steps: int, before: bool, top: int, visits: str = "visits") -> str:
    """The paths (`p1`…`pN`, `visits`), the most taken first."""
    names = ", ".join(f"p{k}" for k in range(1, steps + 1))
    return (
        f"{taken_ctes(page, steps=steps, before=before, visits=visits)} "  # noqa: S608
        f"SELECT {names}, count(*) AS visits FROM taken "
        f"GROUP BY {names} ORDER BY visits DESC, {names} LIMIT {int(top)}"
    )


def totals_select(page: Goal, *, steps: int, before: bool, visits: str = "visits") -> str:
    """How many visits viewed the page, and per step how many had left (not yet arrived)."""
    gone = ", ".join(
        f"count(*) FILTER (WHERE p{k} IS NULL) AS gone{k}" for k in range(1, steps + 1)
    )
    return (
        f"{taken_ctes(page, steps=steps, before=before, visits=visits)} "  # noqa: S608
        f"SELECT count(*) AS visits, {gone} FROM taken"
    )


def shown(pages: tuple[str | None, ...], *, before: bool) -> list[str]:
    """A path's pages as walked: up to where the visit ended (began), marked once."""
    walked: list[str] = []
    for page in pages:
        if page is None:
            walked.append(ENTRANCE if before else EXIT)
            break
        walked.append(page)
    return list(reversed(walked)) if before else walked


@dataclass(frozen=True, slots=True)
class Paths:
    page: Goal
    before: bool
    visits: int
    gone: list[int]
    rows: list[tuple[list[str], int]]
    """Each path's pages as walked, and its visits."""

    def as_dict(self, query: Query) -> dict[str, Any]:
        return {
            "range": query.range.as_dict(),
            "to" if self.before else "from": self.page.text,
            "visits": self.visits,
            "steps": [
                {"step": index, ("entered_after" if self.before else "exits"): gone}
                for index, gone in enumerate(self.gone, start=1)
            ],
            "paths": [
                {
                    "pages": pages,
                    "visits": count,
                    "share": round(count / self.visits, 4) if self.visits else None,
                }
                for pages, count in self.rows
            ],
        }


def paths_of(
    connection: duckdb.DuckDBPyConnection,
    query: Query,
    page: Goal,
    *,
    steps: int,
    before: bool,
    sessions: str | None = None,
) -> Paths:
    """The paths on a connection with the parts' views and `sessions` (`insights.archive_views`):
    the reading's sessions put together once (`report.prepare`) unless `sessions` names a
    relation to read instead."""
    use_visits(connection, query, sessions)
    total = connection.execute(totals_select(page, steps=steps, before=before)).fetchone()
    visits, *gone = total or (0,) * (steps + 1)
    found = connection.execute(
        paths_select(page, steps=steps, before=before, top=query.top)
    ).fetchall()
    rows = [(shown(tuple(row[:-1]), before=before), int(row[-1])) for row in found]
    return Paths(page, before, int(visits or 0), [int(g or 0) for g in gone], rows)


def portable_sql(query: Query, page: Goal, *, steps: int, before: bool) -> str:
    visits = visits_select(query, query.range)
    body = paths_select(page, steps=steps, before=before, top=query.top)
    return f"WITH visits AS ({visits}), {body.removeprefix('WITH ')}"
