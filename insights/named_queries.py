"""Athena's named queries: the site owner's report, a goal, a funnel and paths, as the
template ships them (`python -m clickstream.tools.athena_views --write`).

Each is the statement `--sql` prints (`insights.report`, `insights.goals`,
`insights.funnels`, `insights.paths`), with its range and its pages as execution parameters
(`?`, in order: Athena's console asks for them, `StartQueryExecution` takes them as
`ExecutionParameters`): the range's start and end as `'2026-12-01 00:00:00'` (UTC), a page
as a LIKE pattern (`/signup`, `/blog/%`). The functional test runs each text in DuckDB with
the same parameters and finds the figures of `report`, `goals`, `funnel` and `paths`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from insights import funnels, goals, paths, report

START: Final = datetime(2000, 1, 1, tzinfo=UTC)
END: Final = datetime(2000, 1, 2, tzinfo=UTC)
"""Stand-ins for the range in the statements, replaced by parameters."""
PAGE: Final = "/CLICKSTREAMPAGE{}"
"""A stand-in for a page (no character a LIKE pattern escapes), replaced by a parameter."""
RANGE_PARAMETERS: Final = ("start (UTC, 'YYYY-MM-DD hh:mm:ss')", "end (UTC, exclusive)")


@dataclass(frozen=True, slots=True)
class NamedQuery:
    name: str
    description: str
    parameters: tuple[str, ...]
    """What each `?` stands for, in order."""
    sql: str


def _parameterized(sql: str, pages: int = 0) -> tuple[str, tuple[str, ...]]:
    """The statement with its stand-ins as `?`, and what each is, in the text's order."""
    stand_ins = {
        f"TIMESTAMP '{START.replace(tzinfo=None).isoformat(sep=' ')}'": RANGE_PARAMETERS[0],
        f"TIMESTAMP '{END.replace(tzinfo=None).isoformat(sep=' ')}'": RANGE_PARAMETERS[1],
        **{f"'{PAGE.format(n)}'": f"page {n} (a LIKE pattern)" for n in range(1, pages + 1)},
    }
    pattern = re.compile("|".join(re.escape(text) for text in stand_ins))
    order = tuple(stand_ins[found.group(0)] for found in pattern.finditer(sql))
    replaced = pattern.sub(
        lambda found: "CAST(? AS timestamp)" if found.group(0).startswith("TIMESTAMP") else "?",
        sql,
    )
    return replaced, order


def named_queries() -> list[NamedQuery]:
    span = report.Range(START, END, ZoneInfo("UTC"))
    found = []
    totals = report.Query(span)
    sql, order = _parameterized(report.portable_sql(totals))
    found.append(
        NamedQuery(
            "clickstream-report",
            "The site owner's totals over a range: visitors, visits, page views, bounce "
            "rate, visit duration (clickstream report --sql).",
            order,
            sql,
        )
    )
    for by in ("channel", "source", "page", "device_type", "country"):
        sql, order = _parameterized(
            report.portable_sql(report.Query(span, by=report.dimension(by), top=20))
        )
        found.append(
            NamedQuery(
                f"clickstream-report-by-{by.replace('_', '-')}",
                f"The site owner's figures over a range by {by.replace('_', ' ')}, top 20 "
                f"(clickstream report --by {by} --sql).",
                order,
                sql,
            )
        )
    sql, order = _parameterized(
        goals.portable_sql(report.Query(span), goals.parse_goal(PAGE.format(1))), pages=1
    )
    found.append(
        NamedQuery(
            "clickstream-goal-page",
            "A page goal over a range: the people and visits that viewed the page, its views, "
            "the conversion rate (clickstream goals --sql).",
            order,
            sql,
        )
    )
    steps = funnels.steps_of([PAGE.format(n) for n in (1, 2, 3)])
    sql, order = _parameterized(
        funnels.portable_sql(
            report.Query(span), steps, within=timedelta(days=1), per=funnels.Per.VISIT
        ),
        pages=3,
    )
    found.append(
        NamedQuery(
            "clickstream-funnel-3-pages",
            "A funnel of three pages per visit within a day: the visits reaching each step "
            "and the median seconds from the step before (clickstream funnel --sql).",
            order,
            sql,
        )
    )
    sql, order = _parameterized(
        paths.portable_sql(
            report.Query(span, top=20), goals.parse_goal(PAGE.format(1)), steps=3, before=False
        ),
        pages=1,
    )
    found.append(
        NamedQuery(
            "clickstream-paths-from-page",
            "The 20 most frequent sequences of three pages after a page within visits "
            "(clickstream paths --sql).",
            order,
            sql,
        )
    )
    return found
