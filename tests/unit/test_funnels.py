"""Funnels (`insights.funnels`): strict order, events between, steps repeated, the window's
edge, the start that gets furthest, per visit and per person, medians and breakdowns, over
hand-made events whose answer is counted by hand (DuckDB in memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest

from insights import funnels, report, sessions_sql

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
SPAN = report.Range(T0, T0 + timedelta(days=1), ZoneInfo("UTC"))
STEPS = ["/pricing", "/checkout", "event:Order[plan=pro]"]


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat(sep=" ")


Event = tuple[float, str, str, str | None]
"""(seconds after T0, type, page, properties)"""
VISITS: list[tuple[str, str, str, list[Event]]] = [
    # a: every step in order, others between: reaches 3 (pricing 0 s, checkout 60, order 90)
    ("a", "ann", "mobile", [(0, "page_view", "/pricing", None), (20, "page_view", "/about", None),
                            (60, "page_view", "https://x.com/checkout?step=1", None),
                            (90, "custom", "/checkout", '{"name": "Order", "plan": "pro"}')]),
    # b: pricing twice, checkout after the second; an order of another plan: reaches 2
    ("b", "bob", "desktop", [(0, "page_view", "/pricing", None),
                             (5, "page_view", "/pricing", None),
                             (30, "page_view", "/checkout", None),
                             (40, "custom", "/checkout", '{"name": "Order", "plan": "free"}')]),
    # c: checkout before pricing, then elsewhere: reaches 1
    ("c", "cy", "mobile", [(0, "page_view", "/checkout", None),
                           (10, "page_view", "/pricing", None),
                           (20, "page_view", "/about", None), (30, "page_view", "/about", None),
                           (40, "page_view", "/help", None)]),
    # d: checkout exactly at the window's edge (30 min): reaches 2
    ("d", "di", "mobile", [(0, "page_view", "/pricing", None),
                           (1800, "page_view", "/checkout", None)]),
    # e: checkout 1 s past the first start's window, inside a later start's: reaches 2 from the
    # later start (600 s -> 1801 s)
    ("e", "ed", "desktop", [(0, "page_view", "/pricing", None),
                            (600, "page_view", "/pricing", None),
                            (1801, "page_view", "/checkout", None)]),
    # f: checkout at the same instant as pricing: not after it: reaches 1
    ("f", "fay", "mobile", [(0, "page_view", "/pricing", None),
                            (0, "page_view", "/checkout", None)]),
    # g1, g2: one person on two devices: pricing on one, checkout on the other 2 min later
    ("g1", "gus", "mobile", [(0, "page_view", "/pricing", None)]),
    ("g2", "gus", "desktop", [(120, "page_view", "/checkout", None)]),
]  # fmt: skip


@pytest.fixture
def connection() -> duckdb.DuckDBPyConnection:
    found = duckdb.connect()
    found.execute("CREATE TABLE identities (id VARCHAR, person VARCHAR)")  # no one stitched
    found.execute(
        "CREATE MACRO json_extract_scalar(document, path) AS json_extract_string(document, path)"
    )
    visits = ", ".join(
        f"('{s}', '{who}', '{device}', TIMESTAMP '{at(min(e[0] for e in events))}', 'x.com', false)"
        for s, who, device, events in VISITS
    )
    found.execute(
        f"CREATE TABLE sessions AS SELECT * FROM (VALUES {visits}) "
        "AS v(session_id, anonymous_id, device_type, started_at, site, is_bot)"
    )
    found.execute(
        "CREATE VIEW sessions_with_ids AS SELECT *, CAST(NULL AS VARCHAR) AS user_id FROM sessions"
    )
    events = ", ".join(
        f"('{s}', '{s}-{n}', TIMESTAMP '{at(when)}', '{kind}', '{page}', "
        + ("NULL" if properties is None else f"'{properties}'")
        + ")"
        for s, _, _, evs in VISITS
        for n, (when, kind, page, properties) in enumerate(evs)
    )
    found.execute(
        f"CREATE TABLE events AS SELECT * FROM (VALUES {events}) "
        "AS e(session_id, event_id, event_time, type, page, properties)"
    )
    parts_of_events(found)
    return found


def parts_of_events(connection: duckdb.DuckDBPyConnection) -> None:
    """The lake's page views and custom events parts of `events`, as compaction writes them."""
    connection.execute(f"CREATE TABLE page_views AS {sessions_sql.page_views_select('events')}")
    connection.execute(
        f"CREATE TABLE custom_events AS {sessions_sql.custom_events_select('events')}"
    )


def run(
    connection: duckdb.DuckDBPyConnection,
    per: str,
    *,
    within: str = "30m",
    by: str | None = None,
) -> dict[str, object]:
    query = report.Query(SPAN, by=report.dimension(by) if by else None)
    found = funnels.funnel_of(
        connection,
        query,
        funnels.steps_of(STEPS),
        within=funnels.window_of(within),
        per=per,
        sessions="sessions_with_ids",
    )
    return found.as_dict(query)


def test_per_visit_each_visit_reaches_as_far_as_its_events_go_in_order(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    found = run(connection, funnels.Per.VISIT)
    steps = found["steps"]
    assert isinstance(steps, list)
    # pricing: all 8 visits but g2; checkout: a, b, d, e; order (plan pro): a
    assert [step["count"] for step in steps] == [7, 4, 1]
    assert [step["conversion_from_first"] for step in steps] == [
        1.0,
        round(4 / 7, 4),
        round(1 / 7, 4),
    ]
    assert [step["conversion_from_previous"] for step in steps] == [None, round(4 / 7, 4), 0.25]
    # from pricing to checkout: a 60 s, b 30 s (its first start), d 1800 s, e 1201 s (its later)
    assert steps[1]["median_seconds_from_previous"] == (60 + 1201) / 2
    assert steps[2]["median_seconds_from_previous"] == 30.0
    assert steps[0]["median_seconds_from_previous"] is None


def test_per_person_the_steps_may_be_taken_on_two_devices(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    found = run(connection, funnels.Per.PERSON)
    steps = found["steps"]
    assert isinstance(steps, list)
    # seven people; gus reaches checkout across his two visits
    assert [step["count"] for step in steps] == [7, 5, 1]


def test_a_longer_window_lets_the_first_start_count(connection: duckdb.DuckDBPyConnection) -> None:
    steps = run(connection, funnels.Per.VISIT, within="1h")["steps"]
    assert isinstance(steps, list)
    # e now reaches checkout from its first pricing: 1801 s
    assert steps[1]["count"] == 4
    assert steps[1]["median_seconds_from_previous"] == (60 + 1800) / 2


def test_a_breakdown_counts_each_value_apart(connection: duckdb.DuckDBPyConnection) -> None:
    found = run(connection, funnels.Per.VISIT, by="device_type")
    by = found["by"]
    assert isinstance(by, dict)
    assert [step["count"] for step in by["mobile"]] == [5, 2, 1]  # a, c, d, f, g1; a, d; a
    assert [step["count"] for step in by["desktop"]] == [2, 2, 0]  # b, e (g2 has no pricing)


@pytest.mark.parametrize(
    ("steps", "within", "said"),
    [
        (["/pricing"], "30m", "2 to 8 steps"),
        (["/pricing", "checkout"], "30m", "expected a path"),
        (["/pricing", "/checkout"], "30 minutes", "expected a length"),
        (["/pricing", "/checkout"], "0m", "expected a length"),
    ],
)
def test_a_wrong_funnel_is_one_clear_error(steps: list[str], within: str, said: str) -> None:
    def build() -> None:
        funnels.steps_of(steps)
        funnels.window_of(within)

    with pytest.raises(report.RequestError, match=said):
        build()


def test_per_person_a_second_device_counts_once_identified() -> None:
    """hal browses pricing on his phone, identifies there, then checks out on his laptop
    logged in: by the person map, one person who took both steps."""

    connection = duckdb.connect()
    connection.execute(
        "CREATE MACRO json_extract_scalar(document, path) AS json_extract_string(document, path)"
    )
    connection.execute(
        "CREATE TABLE session_parts AS SELECT * FROM (VALUES "
        f"('h1', 'hal-phone', NULL, TIMESTAMP '{at(0)}'), "
        f"('h2', 'hal-phone', 'hal', TIMESTAMP '{at(60)}'), "
        f"('h3', 'hal-laptop', 'hal', TIMESTAMP '{at(300)}')) "
        "AS p(session_id, anonymous_id, user_id, first_at)"
    )
    connection.execute(
        "CREATE TABLE events AS SELECT * FROM (VALUES "
        f"('e1', 'h1', TIMESTAMP '{at(0)}', 'page_view', '/pricing', CAST(NULL AS VARCHAR)), "
        f"('e2', 'h3', TIMESTAMP '{at(300)}', 'page_view', '/checkout', NULL)) "
        "AS e(event_id, session_id, event_time, type, page, properties)"
    )
    parts_of_events(connection)
    connection.execute(f"CREATE VIEW identities AS {sessions_sql.identities_select()}")
    connection.execute(
        "CREATE TABLE sessions AS SELECT session_id, anonymous_id, user_id, "
        "first_at AS started_at, false AS is_bot, 'x.com' AS site FROM session_parts"
    )
    query = report.Query(SPAN)
    steps = funnels.steps_of(["/pricing", "/checkout"])
    window = funnels.window_of("1h")
    person = funnels.funnel_of(
        connection, query, steps, within=window, per=funnels.Per.PERSON, sessions="sessions"
    )
    visit = funnels.funnel_of(
        connection, query, steps, within=window, per=funnels.Per.VISIT, sessions="sessions"
    )
    assert [row["count"] for row in person.rows] == [1, 1]
    assert person.rows[1]["median_seconds_from_previous"] == 300.0
    assert [row["count"] for row in visit.rows] == [1, 0]


def dropped(connection: duckdb.DuckDBPyConnection, per: str, after: int) -> dict[str, object]:
    query = report.Query(SPAN)
    return funnels.dropped_paths_of(
        connection,
        query,
        funnels.steps_of(STEPS),
        within=funnels.window_of("30m"),
        per=per,
        after=after,
        sessions="sessions_with_ids",
    ).as_dict(query)


def test_the_visits_that_stopped_after_a_step_and_the_pages_they_viewed_instead(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    # pricing but no checkout after it: c (then /about twice and /help), f (the checkout at
    # the same instant is not after), g1 (checkout on the other device)
    found = dropped(connection, funnels.Per.VISIT, 1)
    assert found["step"] == "/pricing"
    assert found["dropped"] == 3
    assert found["paths"] == [
        {"pages": ["(exit)"], "count": 2, "share": round(2 / 3, 4)},
        {"pages": ["/about", "/help", "(exit)"], "count": 1, "share": round(1 / 3, 4)},
    ]
    # checkout but no pro order: b, d, e; none viewed a page after it
    after_checkout = dropped(connection, funnels.Per.VISIT, 2)
    assert after_checkout["dropped"] == 3
    assert after_checkout["paths"] == [{"pages": ["(exit)"], "count": 3, "share": 1.0}]
    # per person, gus took the checkout on his second device: not dropped after pricing
    assert dropped(connection, funnels.Per.PERSON, 1)["dropped"] == 2


def test_a_drop_off_is_after_a_step_that_has_a_next_one(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    for after in (0, 3):
        with pytest.raises(report.RequestError, match="dropped"):
            dropped(connection, funnels.Per.VISIT, after)
