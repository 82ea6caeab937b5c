"""A page's clicked elements and scroll depth (`insights.elements`), over hand-made clicks and
depth reports whose figures are counted by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from insights.elements import DepthReport, ElementClick, element_rows, scroll_rows
from insights.heatmap import Click

T0 = datetime(2026, 12, 7, 10, tzinfo=UTC)


def clicked(
    session: str, seconds: float, selector: str, text: str, dead: bool | None
) -> ElementClick:
    at = T0 + timedelta(seconds=seconds)
    return ElementClick(Click(session, at, 100, 200, 1200, "/shop"), selector, text, dead)


def test_elements_count_clicks_visits_rage_and_dead_clicks() -> None:
    clicks = [
        clicked("a", 0, "button#buy", "Buy", False),
        clicked("a", 5, "button#buy", "Buy now", False),
        clicked("b", 0, "button#buy", "Buy", True),
        # c rages on a dead price tag: four clicks in half a second, one burst
        *(clicked("c", 0.1 * n, "div.card > span.price", "10 EUR", True) for n in range(4)),
        clicked("d", 0, "input#email", "", None),  # a field: never judged
    ]
    # 10 visits viewed the page
    rows = element_rows(clicks, page_visits=10)
    assert rows == [
        {"selector": "div.card > span.price", "text": "10 EUR", "clicks": 4, "visits": 1,
         "visit_share": 0.1, "rage_clicks": 1, "dead_clicks": 4},
        {"selector": "button#buy", "text": "Buy", "clicks": 3, "visits": 2,
         "visit_share": 0.2, "rage_clicks": 0, "dead_clicks": 1},
        {"selector": "input#email", "text": "", "clicks": 1, "visits": 1,
         "visit_share": 0.1, "rage_clicks": 0, "dead_clicks": 0},
    ]  # fmt: skip
    assert element_rows(clicks, page_visits=10, top=1)[0]["selector"] == "div.card > span.price"
    assert element_rows([], page_visits=0) == []


def test_scroll_depth_is_each_visits_deepest_view_per_viewport_class() -> None:
    reports = [
        DepthReport("a", 1400, 0.35),
        DepthReport("a", 1400, 0.92),  # a viewed the page twice: its deepest counts
        DepthReport("b", 1400, 0.5),
        DepthReport("c", 390, 1.0),
        DepthReport("d", 390, 0.09),
    ]
    found = scroll_rows(reports)
    assert set(found) == {"large", "small"}
    assert found["large"]["visits"] == 2
    assert found["large"]["reached"] == {
        "10%": 1.0, "20%": 1.0, "30%": 1.0, "40%": 1.0, "50%": 1.0,
        "60%": 0.5, "70%": 0.5, "80%": 0.5, "90%": 0.5, "100%": 0.0,
    }  # fmt: skip
    assert found["small"]["visits"] == 2
    assert found["small"]["reached"]["10%"] == 0.5  # d never saw a tenth
    assert found["small"]["reached"]["100%"] == 0.5
