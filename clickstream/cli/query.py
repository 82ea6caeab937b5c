"""`clickstream query ...`: the workers' results, as tables or `--json`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from clickstream.cli.common import (
    JsonFlag,
    one_line_errors,
    out,
    print_json,
    span_back,
    tables_target,
)
from clickstream.kernel.errors import ConfigurationError

app = typer.Typer(help="Read the workers' results: pages and sessions.", no_args_is_help=True)

_MINUTE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"


@app.command("pages")
@one_line_errors
def query_pages(
    minute: Annotated[
        str | None,
        typer.Option(help="One minute, e.g. 2026-11-23T10:05 (UTC); all minutes when unset."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many pages to list.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Top pages by views, summed over the shards' items (one minute, or all of them)."""
    from clickstream.stores.page_stats import PageStatsTable
    from insights import query

    target = tables_target()
    dynamodb, page_stats = target.client("dynamodb"), str(target.outputs.page_stats_table)
    if minute is not None:
        if not re.fullmatch(_MINUTE, minute):
            raise ConfigurationError(f"--minute {minute!r}: expected YYYY-MM-DDTHH:MM (UTC)")
        # The minute's live rollups (current within seconds), completed from the page-minute
        # items where a crowded shard's rollup lists only its busiest pages.
        items = PageStatsTable(dynamodb, page_stats).minute_rows(minute)
    else:
        items = PageStatsTable(dynamodb, page_stats).page_minute_items()
    rows = query.merge_pages(items)[:top]
    if as_json:
        print_json({"minute": minute, "pages": [row.as_dict() for row in rows]})
        return
    table = Table(title=f"top pages ({minute or 'all minutes'})")
    for column in ("page", "views", "clicks", "sessions/min (sum)", "minutes", "bot views"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for row in rows:
        table.add_row(
            row.page,
            str(row.views),
            str(row.clicks),
            str(row.sessions),
            str(row.minutes),
            str(row.bot_views),
        )
    out.print(table)


@app.command("session")
@one_line_errors
def query_session(
    session_id: Annotated[str, typer.Argument(help="The session id.")], as_json: JsonFlag = False
) -> None:
    """One session's totals: events, views, clicks, pages, entry and exit, duration, and
    what its landing and agent say (source, medium, channel, country, device, bounce)."""
    from clickstream.stores.sessions import SessionsTable

    target = tables_target()
    target.require("sessions_table")
    sessions = str(target.outputs.sessions_table)
    found = SessionsTable(target.client("dynamodb"), sessions).readable(session_id)
    if found is None:
        raise ConfigurationError(f"no session {session_id!r} in {sessions}")
    if as_json:
        print_json(found)
        return
    table = Table(title=f"session {session_id}")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key in sorted(found):
        table.add_row(key, str(found[key]))
    out.print(table)


def since_minute(since: str | None, now: datetime) -> str | None:
    """`--since`: a minute (2026-11-23T10:05) or a span back from now (90m, 6h, 2d)."""
    from clickstream.kernel.events import minute_key

    if since is None:
        return None
    if re.fullmatch(_MINUTE, since):
        return since
    start = span_back(since, now)
    if start is None:
        raise ConfigurationError(
            f"--since {since!r}: expected a minute (YYYY-MM-DDTHH:MM, UTC) "
            "or a span like 90m, 6h, 2d"
        )
    return minute_key(start)


@app.command("alerts")
@one_line_errors
def query_alerts(
    since: Annotated[
        str | None,
        typer.Option(help="Only alerts from this minute (YYYY-MM-DDTHH:MM, UTC) or span (6h) on."),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(help="Only this rule (repeatable): page_spike, page_drop, bot_session."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Anomaly alerts, oldest first: rule, window, subject, observed value against the baseline
    or threshold."""
    from clickstream.stores.alerts import AlertsTable, Rule

    known = [member.value for member in Rule]
    unknown = [name for name in rule or [] if name not in known]
    if unknown:
        raise ConfigurationError(f"--rule {unknown[0]!r}: expected one of {', '.join(known)}")
    target = tables_target()
    if not target.outputs.alerts_table:
        raise ConfigurationError("no alerts table: set CLICKSTREAM_ALERTS_TABLE (a stack output)")
    rows = AlertsTable(target.client("dynamodb"), target.outputs.alerts_table).alerts(
        since=since_minute(since, datetime.now(UTC)),
        rules=rule or known,
    )
    if as_json:
        print_json({"since": since, "alerts": rows})
        return
    table = Table(title=f"alerts ({len(rows)})")
    for column in ("window", "rule", "subject", "observed", "baseline", "threshold", "details"):
        table.add_column(column, no_wrap=column in ("window", "rule"), overflow="fold")
    for row in rows:
        details = row.get("details", {})
        table.add_row(
            str(row["window"]),
            str(row["rule"]),
            str(row["subject"]),
            str(row["observed"]),
            str(row.get("baseline", "")),
            str(row["threshold"]),
            ", ".join(f"{key}={value}" for key, value in sorted(details.items())),
        )
    out.print(table)
