"""Paths (`insights.paths`): the pages after and before a page within visits, a page viewed
again at once counted once, exits and entrances marked, over hand-made visits (DuckDB in
memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from insights import paths, report, sessions_sql
from insights.goals import parse_goal

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
SPAN = report.Range(T0, T0 + timedelta(days=1), ZoneInfo("UTC"))
VISITS = {
    "a": ["/", "/pricing", "/pricing", "/signup", "/done"],
    "b": ["/", "/pricing", "/signup", "/done", "/"],
    "c": ["/blog/x", "/pricing", "/about"],
    "d": ["/pricing"],
    "e": ["/", "/about"],
    "f": ["/pricing?plan=pro", "/", "/pricing", "/signup"],
}


@pytest.fixture
def connection() -> duckdb.DuckDBPyConnection:
    found = duckdb.connect()
    found.execute("CREATE TABLE identities (id VARCHAR, person VARCHAR)")  # no one stitched
    sessions = ", ".join(
        f"('{s}', 'p-{s}', TIMESTAMP '{T0.replace(tzinfo=None)}', 'x.com', false)" for s in VISITS
    )
    found.execute(
        f"CREATE TABLE sessions AS SELECT *, CAST(NULL AS VARCHAR) AS user_id FROM (VALUES "
        f"{sessions}) AS v(session_id, anonymous_id, started_at, site, is_bot)"
    )
    events = ", ".join(
        f"('{s}', 'e-{s}-{n}', TIMESTAMP '{(T0 + timedelta(seconds=n)).replace(tzinfo=None)}', "
        f"'page_view', 'https://x.com{page}')"
        for s, pages in VISITS.items()
        for n, page in enumerate(pages)
    )
    found.execute(
        f"CREATE TABLE events AS SELECT * FROM (VALUES {events}) "
        "AS e(session_id, event_id, event_time, type, page)"
    )
    # The lake's page views part of them, as compaction writes it.
    found.execute(f"CREATE TABLE page_views AS {sessions_sql.page_views_select('events')}")
    return found


def test_the_pages_after_a_page_with_exits(connection: duckdb.DuckDBPyConnection) -> None:
    query = report.Query(SPAN)
    found = paths.paths_of(
        connection, query, parse_goal("/pricing"), steps=2, before=False, sessions="sessions"
    ).as_dict(query)
    # a, b, c, d, f viewed /pricing; a's second view is a reload; f's first is its anchor
    assert found["visits"] == 5
    assert found["paths"] == [
        {"pages": ["/signup", "/done"], "visits": 2, "share": 0.4},
        {"pages": ["/", "/pricing"], "visits": 1, "share": 0.2},
        {"pages": ["/about", "(exit)"], "visits": 1, "share": 0.2},
        {"pages": ["(exit)"], "visits": 1, "share": 0.2},  # ties by their pages, exits last
    ]
    assert found["steps"] == [{"step": 1, "exits": 1}, {"step": 2, "exits": 2}]


def test_the_pages_before_a_page_with_entrances(connection: duckdb.DuckDBPyConnection) -> None:
    query = report.Query(SPAN)
    found = paths.paths_of(
        connection, query, parse_goal("/signup"), steps=2, before=True, sessions="sessions"
    ).as_dict(query)
    assert found["visits"] == 3
    assert found["paths"] == [
        {"pages": ["/", "/pricing"], "visits": 3, "share": 1.0},
    ]
    assert found["steps"] == [{"step": 1, "entered_after": 0}, {"step": 2, "entered_after": 0}]
    # a pattern: every page under /blog/; d entered at the page it is asked about
    blog = paths.paths_of(
        connection, query, parse_goal("/blog/*"), steps=1, before=True, sessions="sessions"
    ).as_dict(query)
    assert blog["paths"] == [{"pages": ["(entrance)"], "visits": 1, "share": 1.0}]


def test_an_event_is_not_a_page_and_steps_are_bounded() -> None:
    with pytest.raises(report.RequestError, match="not an event"):
        paths.anchor_condition(parse_goal("event:Order"))
    with pytest.raises(report.RequestError, match="--steps 9"):
        paths.taken_ctes(parse_goal("/"), steps=9, before=False)
