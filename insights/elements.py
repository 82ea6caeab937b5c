"""A page's clicked elements and scroll depth (issue 43, `clickstream heatmap PAGE --elements`
and `--scroll`). Pure but for `element_clicks` and `page_reads`, which read the archive.

What the tracker records (collector/static/clickstream.js, docs/collector.md): each click's
element as a stable `selector`, its visible `text` and `kind` (link, button, other), and
`dead` (true: nothing happened within a second; false: something did; absent: not judged);
each page view's deepest scroll as it is left, `max_depth` (the viewport's bottom over the
document's height), naming its view.

Per element (its selector; its text the one most clicks showed): `clicks`, `visits` (visits
that clicked it), `visit_share` (of the visits that viewed the page), `rage_clicks` (rage
bursts, `insights.heatmap.rage_clicks`, whose first click was on it) and `dead_clicks`. Per
viewport class, the share of the visits with a depth report that scrolled to each tenth of
the page (a visit's deepest view of it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from clickstream.kernel.timestamps import from_iso
from insights.heatmap import Click, page_rows, rage_clicks, width_class

TENTHS: Final = tuple(round(k / 10, 1) for k in range(1, 11))
NO_SELECTOR: Final = "(not recorded)"
"""Clicks sent without a selector (an older tracker, an SDK's click without one)."""


@dataclass(frozen=True, slots=True)
class ElementClick:
    click: Click
    selector: str
    text: str
    dead: bool | None


@dataclass(frozen=True, slots=True)
class DepthReport:
    session_id: str
    viewport_width: int | None
    depth: float


def element_rows(
    clicks: Iterable[ElementClick], page_visits: int, top: int = 20
) -> list[dict[str, Any]]:
    """The page's elements, the most clicked first (then by selector)."""
    mine = list(clicks)
    counted: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    visits: dict[str, set[str]] = {}
    texts: dict[str, Counter[str]] = {}
    for found in mine:
        counted[found.selector] += 1
        dead[found.selector] += found.dead is True
        visits.setdefault(found.selector, set()).add(found.click.session_id)
        texts.setdefault(found.selector, Counter())[found.text] += 1
    by_moment = {(f.click.session_id, f.click.at): f.selector for f in mine}
    rages: Counter[str] = Counter(
        by_moment[(rage.session_id, rage.started_at)]
        for rage in rage_clicks(f.click for f in mine)
        if (rage.session_id, rage.started_at) in by_moment
    )
    ranked = sorted(counted, key=lambda selector: (-counted[selector], selector))[:top]
    return [
        {
            "selector": selector,
            "text": texts[selector].most_common(1)[0][0],
            "clicks": counted[selector],
            "visits": len(visits[selector]),
            "visit_share": round(len(visits[selector]) / page_visits, 4) if page_visits else None,
            "rage_clicks": rages[selector],
            "dead_clicks": dead[selector],
        }
        for selector in ranked
    ]


def scroll_rows(reports: Iterable[DepthReport]) -> dict[str, dict[str, Any]]:
    """Per viewport class: the visits with a depth report, and the share of them whose
    deepest view of the page reached each tenth of it."""
    deepest: dict[tuple[str, str], float] = {}
    for report in reports:
        key = (width_class(report.viewport_width), report.session_id)
        deepest[key] = max(deepest.get(key, 0.0), report.depth)
    classes: dict[str, list[float]] = {}
    for (name, _), depth in deepest.items():
        classes.setdefault(name, []).append(depth)
    return {
        name: {
            "visits": len(depths),
            "reached": {
                f"{tenth:.0%}": round(sum(1 for d in depths if d >= tenth) / len(depths), 4)
                for tenth in TENTHS
            },
        }
        for name, depths in sorted(classes.items())
    }


def _properties(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        found = json.loads(value) if value else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def element_clicks(connection: Any, key: str, since: datetime) -> list[ElementClick]:
    found = []
    for session, at, page, _, width, x, y, properties in page_rows(
        connection, key, since, "click", ", x, y, properties"
    ):
        named = _properties(properties)
        dead = named.get("dead")
        found.append(
            ElementClick(
                Click(session, from_iso(at), x or 0, y or 0, width, page),
                str(named.get("selector") or NO_SELECTOR)[:200],
                str(named.get("text") or "")[:64],
                dead if isinstance(dead, bool) else None,
            )
        )
    return found


def page_reads(connection: Any, key: str, since: datetime) -> tuple[int, list[DepthReport]]:
    """The visits that viewed the page since `since`, and its page views' depth reports."""
    visits = {row[0] for row in page_rows(connection, key, since, "page_view")}
    reports = []
    for session, _, _, _, width, properties in page_rows(
        connection, key, since, "scroll", ", properties"
    ):
        depth = _properties(properties).get("max_depth")
        if isinstance(depth, int | float) and 0 <= depth <= 1:
            reports.append(DepthReport(session, width, float(depth)))
    return len(visits), reports
