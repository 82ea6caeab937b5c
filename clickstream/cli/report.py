"""`clickstream report`: the site owner's figures over any range, by a dimension, filtered,
compared (`insights.report`; definitions in docs/reports.md)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, one_line_errors, out, print_json
from clickstream.cli.ranges import Bots, Filters, From, Since, Site, To, Zone, query_of
from clickstream.cli.sql import archive_location

if TYPE_CHECKING:
    from insights.report import Query, Report

DIMENSION_HELP = (
    "page, entry_page, exit_page, source, medium, campaign, channel, referrer_host, "
    "device_type, browser, os, country, site, event, or property:KEY (custom events)"
)


@one_line_errors
def report(
    since: Since = None,
    start: From = None,
    end: To = None,
    by: Annotated[str | None, typer.Option(help=f"Break down by {DIMENSION_HELP}.")] = None,
    filters: Filters = None,
    compare: Annotated[
        bool, typer.Option(help="Also the range of equal length just before.")
    ] = False,
    site: Site = None,
    top: Annotated[int, typer.Option(min=1, max=1000, help="Rows of the breakdown.")] = 10,
    tz: Zone = "UTC",
    bots: Bots = False,
    as_sql: Annotated[
        bool,
        typer.Option(
            "--sql",
            help="Print the report's SQL instead (one statement; Athena runs it over the "
            "stack's tables of the lake's parts).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Visitors, visits, page views, views per visit, bounce rate and visit duration of the
    visits that began in the range, people's only; with --by, the same per value of a
    dimension (per page: visitors, visits and views of it; per event: how often). Reads the
    archive's hours from a day before the range: the lake's session parts where compacted,
    the raw events elsewhere."""
    from insights import archive_views
    from insights import report as reports

    query = query_of(
        since=since, start=start, end=end, tz=tz, filters=filters, site=site, bots=bots,
        by=by, top=top,
    )  # fmt: skip
    if as_sql:
        sys.stdout.write(reports.portable_sql(query) + "\n")
        return
    connection = archive_views.connect(
        archive_location(), since=reports.reading_start(query, compare=compare), raw_views=False
    )
    found = reports.report_of(connection, query, compare=compare)
    if as_json:
        print_json(found.as_dict(query))
        return
    _print(found, query)


FIGURES = ("visitors", "visits", "page_views", "views_per_visit", "bounce_rate", "visit_duration_s")


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "bounce_rate":
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _change(now: Any, before: Any) -> str:
    if not isinstance(now, int | float) or not isinstance(before, int | float) or not before:
        return ""
    return f" ({(now - before) / before:+.0%})"


def _print(found: Report, query: Query) -> None:
    body = found.as_dict(query)
    span = body["range"]
    title = f"{span['from']} to {span['to']}" + (" (bots)" if query.bots else "")
    totals = Table(title=title)
    for name in FIGURES:
        totals.add_column(name, justify="right")
    previous = body.get("previous", {}).get("totals", {})
    totals.add_row(
        *(
            _shown(name, body["totals"][name]) + _change(body["totals"][name], previous.get(name))
            for name in FIGURES
        )
    )
    out.print(totals)
    if query.by is None:
        return
    rows = Table(title=f"by {query.by.name}")
    names = [name for name in body["rows"][0] if name != "value"] if body["rows"] else []
    rows.add_column(query.by.name, overflow="fold")
    for name in names:
        rows.add_column(name, justify="right")
    for row in body["rows"]:
        rows.add_row(_shown("value", row["value"]), *(_shown(n, row[n]) for n in names))
    out.print(rows)
