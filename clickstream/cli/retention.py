"""`clickstream retention`: people by the period of their first visit, and the share that came
back in each later period (`insights.retention`; definitions in docs/reports.md)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, one_line_errors, out, print_json
from clickstream.cli.sql import archive_location


@one_line_errors
def retention(
    cohort: Annotated[str, typer.Option(help="The period: day, week (from Monday) or month.")] = (
        "week"
    ),
    since: Annotated[
        str | None,
        typer.Option(help="The range back from now: 30d, 8w. Default 8w."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Start: an ISO 8601 date or time (in --tz without offset)."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="End: an ISO date (that day included) or time. Default now."),
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="DIM=VALUE, repeatable, as for `report`."),
    ] = None,
    site: Annotated[str | None, typer.Option(help="Only the visits to this host.")] = None,
    tz: Annotated[
        str,
        typer.Option(
            envvar="CLICKSTREAM_SITE_TIME_ZONE",
            help="The zone periods are counted in (the site's).",
        ),
    ] = "UTC",
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

    if cohort not in cohorts.COHORTS:
        raise reports.RequestError(f"--cohort {cohort!r}: day, week or month")
    now = datetime.now(UTC)
    query = reports.query_from(
        now, tz=tz, since=since or (None if start else "8w"), start=start, end=end,
        filters=filters or [], site=site,
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
