"""`clickstream retention`: people by the period of their first visit, and the share that came
back in each later period (`insights.retention`; definitions in docs/reports.md)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, one_line_errors, out, print_json
from clickstream.cli.ranges import Filters, From, Site, To, Zone, query_of
from clickstream.cli.sql import archive_location


@one_line_errors
def retention(
    cohort: Annotated[str, typer.Option(help="The period: day, week (from Monday) or month.")] = (
        "week"
    ),
    since: Annotated[
        str | None, typer.Option(help="The range back from now: 30d, 8w. Default 8w.")
    ] = None,
    start: From = None,
    end: To = None,
    filters: Filters = None,
    site: Site = None,
    tz: Zone = "UTC",
    as_sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead (Athena runs it too).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """People by the period of their first visit in the range (widened back to its first
    period's start), and how many of them came back in each later period. Reads the lake's
    session parts, not the events."""
    from insights import archive_views
    from insights import report as reports
    from insights import retention as cohorts

    cohorts.cohort_of(cohort)
    now = datetime.now(UTC)  # the last period is partial when it holds now
    query = query_of(
        since=since, start=start, end=end, tz=tz, filters=filters, site=site,
        default_since="8w",
    )  # fmt: skip
    if as_sql:
        sys.stdout.write(cohorts.portable_sql(query, cohort) + "\n")
        return
    whole = cohorts.widened(query, cohort)
    connection = archive_views.connect(
        archive_location(), since=reports.reading_start(whole, compare=False), raw_views=False
    )
    shown = cohorts.retention_of(connection, query, cohort, now).as_dict(query)
    if as_json:
        print_json(shown)
        return
    _print(shown)


def _print(shown: dict[str, Any]) -> None:
    rows = shown["cohorts"]
    table = Table(title=f"people by the {shown['range']['cohort']} of their first visit")
    table.add_column("cohort")
    table.add_column("people", justify="right")
    for k in range(len(rows)):
        table.add_column(str(k), justify="right")
    for row in rows:
        shares = ["-" if p["share"] is None else f"{p['share']:.0%}" for p in row["periods"]]
        table.add_row(row["cohort"], f"{row['people']:,}", *shares)
    out.print(table)
    if shown["last_period_partial"]:
        out.print("the last period is not over yet")
