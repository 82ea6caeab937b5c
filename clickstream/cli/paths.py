"""`clickstream paths`: the most frequent sequences of pages after or before a page within
visits (`insights.paths`; definitions in docs/reports.md, Paths)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, one_line_errors, out, print_json
from clickstream.cli.ranges import Bots, Filters, Since, Site, Zone, query_of
from clickstream.cli.sql import archive_location

PAGE_HELP = "a path (/pricing; * any characters: /blog/*) or a host and path (example.com/x)"


@one_line_errors
def paths(
    start_page: Annotated[
        str | None, typer.Option("--from", help=f"The pages after this one: {PAGE_HELP}.")
    ] = None,
    end_page: Annotated[
        str | None, typer.Option("--to", help=f"The pages before this one: {PAGE_HELP}.")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, max=6, help="Pages in each path.")] = 3,
    since: Since = None,
    range_start: Annotated[
        str | None, typer.Option("--range-from", help="Start: an ISO 8601 date or time.")
    ] = None,
    range_end: Annotated[
        str | None, typer.Option("--range-to", help="End: an ISO date (included) or time.")
    ] = None,
    filters: Filters = None,
    site: Site = None,
    top: Annotated[int, typer.Option(min=1, max=1000, help="Paths shown.")] = 10,
    tz: Zone = "UTC",
    bots: Bots = False,
    as_sql: Annotated[
        bool, typer.Option("--sql", help="Print the paths' SQL instead (Athena runs it too).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The most frequent sequences of --steps pages after --from (or before --to) in the
    visits that began in the range that viewed it, from their first view of it, with how
    many visits took each and how many had left at each step. A page viewed again at once
    counts once. Reads the range's events."""
    from insights import archive_views
    from insights import paths as found_paths
    from insights import report as reports
    from insights.goals import parse_goal

    if (start_page is None) == (end_page is None):
        raise reports.RequestError("give --from PAGE or --to PAGE (one of them)")
    page = parse_goal(start_page or end_page or "")
    before = end_page is not None
    found_paths.anchor_condition(page)
    query = query_of(
        since=since, start=range_start, end=range_end, tz=tz, filters=filters, site=site,
        bots=bots, top=top,
    )  # fmt: skip
    if as_sql:
        statement = found_paths.portable_sql(query, page, steps=steps, before=before)
        sys.stdout.write(statement + "\n")
        return
    connection = archive_views.connect(
        archive_location(),
        since=reports.reading_start(query, compare=False),
        raw_views=False,
    )
    body = found_paths.paths_of(connection, query, page, steps=steps, before=before)
    shown = body.as_dict(query)
    if as_json:
        print_json(shown)
        return
    _print(shown)


def _print(shown: dict[str, Any]) -> None:
    anchor = shown.get("from") or shown.get("to")
    direction = "after" if "from" in shown else "before"
    table = Table(title=f"{shown['visits']:,} visits viewed {anchor}: the pages {direction}")
    table.add_column("path", overflow="fold")
    table.add_column("visits", justify="right")
    table.add_column("share", justify="right")
    for path in shown["paths"]:
        pages = " → ".join(path["pages"])
        share = "-" if path["share"] is None else f"{path['share']:.1%}"
        table.add_row(pages, f"{path['visits']:,}", share)
    out.print(table)
