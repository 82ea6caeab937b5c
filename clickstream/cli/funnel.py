"""`clickstream funnel`: how many visits or people took steps in order, where they dropped off
(`insights.funnels`; definitions in docs/reports.md, Funnels)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, one_line_errors, out, print_json
from clickstream.cli.goals import GOAL_HELP
from clickstream.cli.ranges import Bots, Filters, From, Since, Site, To, Zone, query_of
from clickstream.cli.sql import archive_location


@one_line_errors
def funnel(
    steps: Annotated[list[str], typer.Argument(help=f"2 to 8 steps, in order, each {GOAL_HELP}.")],
    since: Since = None,
    start: From = None,
    end: To = None,
    within: Annotated[
        str, typer.Option(help="The last step within this of the first: 30m, 1d, 7d.")
    ] = "1d",
    per: Annotated[
        str, typer.Option(help="Count visits (visit) or people across their visits (person).")
    ] = "visit",
    by: Annotated[
        str | None,
        typer.Option(help="Break down by a visit's dimension: source, channel, device_type, …"),
    ] = None,
    filters: Filters = None,
    site: Site = None,
    top: Annotated[int, typer.Option(min=1, max=1000, help="Values of the breakdown.")] = 10,
    tz: Zone = "UTC",
    bots: Bots = False,
    as_sql: Annotated[
        bool, typer.Option("--sql", help="Print the funnel's SQL instead (Athena runs it too).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Of the visits that began in the range (or the people who made them), how many reached
    each step in order, other events between allowed, the last within --within of the first;
    each step's share of the first and of the previous, and the median time from the
    previous. Reads the range's events (a day before it too)."""
    from insights import archive_views, funnels
    from insights import report as reports

    funnels.per_of(per)
    chosen = funnels.steps_of(steps)
    window = funnels.window_of(within)
    query = query_of(
        since=since, start=start, end=end, tz=tz, filters=filters, site=site, bots=bots,
        by=by, top=top,
    )  # fmt: skip
    if as_sql:
        sys.stdout.write(funnels.portable_sql(query, chosen, within=window, per=per) + "\n")
        return
    connection = archive_views.connect(
        archive_location(),
        since=reports.reading_start(query, compare=False),
        raw_views=False,
    )
    found = funnels.funnel_of(connection, query, chosen, within=window, per=per).as_dict(query)
    if as_json:
        print_json(found)
        return
    _print(found, f"{per}s, within {within}")
    for value, rows in found.get("by", {}).items():
        _print({"steps": rows, "range": found["range"]}, f"{by} = {value}")


def _print(found: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for name in ("step", "count", "of first", "of previous", "median s from previous"):
        table.add_column(name, justify="left" if name == "step" else "right", overflow="fold")
    for row in found["steps"]:
        table.add_row(
            row["step"],
            f"{row['count']:,}",
            _share(row["conversion_from_first"]),
            _share(row["conversion_from_previous"]),
            "-" if row["median_seconds_from_previous"] is None else
            f"{row['median_seconds_from_previous']:,.1f}",
        )  # fmt: skip
    out.print(table)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
