"""Goals (`insights.goals`): their forms, their errors, and their figures' SQL over a few
hand-made visits, page parts and custom events (DuckDB in memory)."""

from __future__ import annotations

import duckdb
import pytest

from insights import goals, report
from insights.goals import Goal, parse_goal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/signup", Goal("/signup", path="/signup")),
        (" /blog/* ", Goal("/blog/*", path="/blog/*")),
        ("Example.com/signup", Goal("Example.com/signup", path="/signup", host="example.com")),
        (
            "https://shop.example.com",
            Goal("https://shop.example.com", path="/", host="shop.example.com"),
        ),
        ("event:Signed Up", Goal("event:Signed Up", event="Signed Up")),
        (
            "event:Signed Up[plan=pro]",
            Goal("event:Signed Up[plan=pro]", event="Signed Up", conditions=(("plan", "pro"),)),
        ),
        (
            "event:Order [plan = pro, seats=5]",
            Goal(
                "event:Order [plan = pro, seats=5]",
                event="Order",
                conditions=(("plan", "pro"), ("seats", "5")),
            ),
        ),
    ],
)
def test_the_forms_a_goal_takes(text: str, expected: Goal) -> None:
    assert parse_goal(text) == expected


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "expected a path"),
        ("signup page", "expected a path"),
        ("signup", "expected a path"),
        ("ftp://example.com/x", "expected a path"),
        ("event:", "expected event:NAME"),
        ("event:Order[plan]", "a condition is property=value"),
        ("event:Order[pl an=pro]", "a condition is property=value"),
        ("event:Order[plan=pro", "expected event:NAME"),
        ("/" + "a" * 600, "expected a path"),
    ],
)
def test_a_goal_that_does_not_parse_says_what_it_may_be(text: str, said: str) -> None:
    with pytest.raises(report.RequestError, match=said):
        parse_goal(text)


def test_a_path_pattern_matches_its_star_and_nothing_else_by_chance() -> None:
    assert goals.like_pattern("/blog/*") == "/blog/%"
    assert goals.like_pattern("/100%_off") == "/100\\%\\_off"


@pytest.fixture
def visits() -> duckdb.DuckDBPyConnection:
    """Five visits of four people on two sites; their pages and events."""
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE visits AS SELECT * FROM (VALUES "
        "('s1', 'ann', 'mobile', 'a.com'), ('s2', 'ann', 'desktop', 'a.com'), "
        "('s3', 'bob', 'mobile', 'a.com'), ('s4', 'cy', 'desktop', 'b.com'), "
        "('s5', 'di', 'mobile', 'a.com')) AS v(session_id, visitor, device_type, site)"
    )
    connection.execute(
        "CREATE TABLE page_parts AS SELECT * FROM (VALUES "
        "('s1', '/blog/one', 2), ('s1', '/signup', 1), ('s2', '/signup', 1), "
        "('s2', '/signup', 1), ('s3', '/blog/two', 1), ('s4', '/signup', 3), "
        "('s5', '/blog_x', 1)) AS p(session_id, page, views)"
    )
    connection.execute(
        "CREATE TABLE custom_events AS SELECT * FROM (VALUES "
        """('s1', 'Signed Up', '{"plan": "pro"}'), ('s3', 'Signed Up', '{"plan": "free"}'), """
        """('s3', 'Signed Up', '{"plan": "pro", "seats": 5}'), """
        """('s5', 'Order', '{"plan": "pro"}')) AS e(session_id, name, properties)"""
    )
    connection.execute(
        "CREATE MACRO json_extract_scalar(document, path) AS json_extract_string(document, path)"
    )
    return connection


def figures(
    connection: duckdb.DuckDBPyConnection, goal: str, by: str | None = None
) -> list[tuple[object, ...]]:
    dimension = report.dimension(by) if by else None
    return connection.execute(goals.goal_select(parse_goal(goal), dimension, 10)).fetchall()


def test_a_page_goal_counts_the_people_visits_and_views_that_reached_it(
    visits: duckdb.DuckDBPyConnection,
) -> None:
    # (value, all visitors, converted visitors, converted visits, conversions)
    assert figures(visits, "/signup") == [(None, 4, 2, 3, 6)]
    # a host: only that site's visits
    assert figures(visits, "a.com/signup") == [(None, 4, 1, 2, 3)]
    # a pattern: `*` is any characters, `_` only itself
    assert figures(visits, "/blog/*") == [(None, 4, 2, 2, 3)]
    assert figures(visits, "/blog_*") == [(None, 4, 1, 1, 1)]


def test_an_event_goal_with_conditions_and_a_breakdown(visits: duckdb.DuckDBPyConnection) -> None:
    assert figures(visits, "event:Signed Up") == [(None, 4, 2, 2, 3)]
    assert figures(visits, "event:Signed Up[plan=pro]") == [(None, 4, 2, 2, 2)]
    assert figures(visits, "event:Signed Up[plan=pro,seats=5]") == [(None, 4, 1, 1, 1)]
    # per device: each value's own visitors
    assert figures(visits, "/signup", "device_type") == [
        ("desktop", 2, 2, 2, 5),
        ("mobile", 3, 1, 1, 1),
    ]
    # per page: the visits that viewed it
    by_page = {row[0]: row[1:] for row in figures(visits, "event:Signed Up", "page")}
    assert by_page["/signup"] == (2, 1, 1, 1)  # ann (twice) and cy viewed it; ann signed up
    assert by_page["/blog/two"] == (1, 1, 1, 2)


def test_the_portable_statement_holds_the_visits_and_the_goal() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    span = report.Range(
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC), ZoneInfo("UTC")
    )
    sql = goals.portable_sql(report.Query(span), parse_goal("event:Order[plan=pro]"))
    assert sql.startswith("WITH visits AS (SELECT")
    assert "json_extract_scalar(properties, '$.plan') = 'pro'" in sql
