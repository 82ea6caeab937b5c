"""`clickstream goals`: the site's goals, and how many visits and people reached each over a
range (`insights.goals`; the forms and the figures in docs/reports.md, Goals)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, one_line_errors, out, print_json
from clickstream.cli.ranges import Bots, Filters, From, Since, Site, To, Zone, query_of
from clickstream.cli.report import DIMENSION_HELP
from clickstream.cli.sql import archive_location

GOAL_HELP = (
    "a path (/signup; * any characters: /blog/*), a host and path (example.com/signup), or "
    "event:NAME with optional [property=value,...]"
)


@one_line_errors
def goals(
    since: Since = None,
    start: From = None,
    end: To = None,
    by: Annotated[str | None, typer.Option(help=f"Break down by {DIMENSION_HELP}.")] = None,
    filters: Filters = None,
    site: Site = None,
    top: Annotated[int, typer.Option(min=1, max=1000, help="Rows of the breakdown.")] = 10,
    tz: Zone = "UTC",
    bots: Bots = False,
    goal: Annotated[
        list[str] | None,
        typer.Option(help=f"Report this goal instead of the saved ones, repeatable: {GOAL_HELP}."),
    ] = None,
    add: Annotated[
        list[str] | None,
        typer.Option(help="Save this goal (in the archive bucket), repeatable; then list them."),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option(help="Remove this saved goal, as written, repeatable; then list them."),
    ] = None,
    as_sql: Annotated[
        bool,
        typer.Option("--sql", help="Print each goal's SQL instead (Athena runs it too)."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Each goal's converted visitors, visits and conversions, and its conversion rate
    (converted visitors over the range's visitors), of the visits that began in the range;
    with --by, per value of a dimension. The goals are the saved ones (--add, --remove)
    unless --goal names others."""
    from insights import goals as goal_figures
    from insights import report as reports
    from insights.goals_store import GoalsFile
    from insights.lake_store import s3_client

    location = archive_location()
    if add or remove:
        saved = GoalsFile(s3_client(location), location.bucket)
        listed = saved.add(add) if add else saved.goals()
        listed = saved.remove(remove) if remove else listed
        if as_json:
            print_json({"goals": [found.text for found in listed]})
        else:
            out.print("\n".join(found.text for found in listed) or "no goals saved")
        return
    chosen = (
        [goal_figures.parse_goal(text) for text in goal]
        if goal
        else GoalsFile(s3_client(location), location.bucket).goals()
    )
    if not chosen:
        raise goal_figures.GoalError(f"no goals saved: add one with --add ({GOAL_HELP})")
    query = query_of(
        since=since, start=start, end=end, tz=tz, filters=filters, site=site, bots=bots,
        by=by, top=top,
    )  # fmt: skip
    if as_sql:
        for found in chosen:
            sys.stdout.write(goal_figures.portable_sql(query, found) + ";\n")
        return
    from insights import archive_views

    connection = archive_views.connect(
        location, since=reports.reading_start(query, compare=False), raw_views=False
    )
    figures = goal_figures.goals_of(connection, query, chosen)
    body = {
        "range": {**query.range.as_dict(), "by": by},
        "goals": [found.as_dict() for found in figures],
    }
    if as_json:
        print_json(body)
        return
    _print(body, by)


def _print(body: dict[str, Any], by: str | None) -> None:
    names = ("visitors", "visits", "conversions", "conversion_rate")
    span = body["range"]
    table = Table(title=f"goals, {span['from']} to {span['to']}")
    table.add_column("goal", overflow="fold")
    for name in names:
        table.add_column(name.replace("_", " "), justify="right")
    for found in body["goals"]:
        table.add_row(found["goal"], *(_shown(name, found[name]) for name in names))
    out.print(table)
    for found in body["goals"] if by else []:
        rows = Table(title=f"{found['goal']} by {by}")
        rows.add_column(str(by), overflow="fold")
        for name in names:
            rows.add_column(name.replace("_", " "), justify="right")
        for row in found.get("rows", []):
            rows.add_row(str(row["value"]), *(_shown(name, row[name]) for name in names))
        out.print(rows)


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if name == "conversion_rate" else f"{value:,}"
