"""The options every site owner's command shares (`report`, `goals`, `funnel`, `paths`,
`retention`): the range, the filters, the site, the zone, people or bots; and the query
they make (`insights.report.query_from`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from insights.report import Query

Since = Annotated[
    str | None,
    typer.Option(help="The range back from now: today, 30m, 24h, 7d, 8w. Default 7d."),
]
From = Annotated[
    str | None,
    typer.Option("--from", help="Start: an ISO 8601 date or time (in --tz without offset)."),
]
To = Annotated[
    str | None,
    typer.Option("--to", help="End: an ISO date (that day included) or time. Default now."),
]
Filters = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        help="DIM=VALUE, repeatable: visits with that value (a page: that viewed it; an "
        "event: that sent it). One dimension twice: either value.",
    ),
]
Site = Annotated[str | None, typer.Option(help="Only the visits to this host.")]
Zone = Annotated[
    str,
    typer.Option(
        envvar="CLICKSTREAM_SITE_TIME_ZONE", help="The zone days are counted in (the site's)."
    ),
]
Bots = Annotated[bool, typer.Option(help="The bots' visits instead of people's.")]


def query_of(
    *,
    since: str | None,
    start: str | None,
    end: str | None,
    tz: str,
    filters: list[str] | None,
    site: str | None,
    bots: bool = False,
    by: str | None = None,
    top: int = 10,
    default_since: str = "7d",
) -> Query:
    """The query these options make, now; no range at all is `default_since` back."""
    from insights import report

    return report.query_from(
        datetime.now(UTC),
        tz=tz,
        since=since or (None if start else default_since),
        start=start,
        end=end,
        by=by,
        filters=filters or [],
        site=site,
        bots=bots,
        top=top,
    )
