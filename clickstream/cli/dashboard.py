"""`clickstream dashboard`: the live page over the workers' tables and the archive."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

from clickstream.cli.common import err, given, one_line_errors, tables_target
from clickstream.kernel.errors import ConfigurationError


@one_line_errors
def dashboard(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on [127.0.0.1]; others require a token."),
    ] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port [8050].")] = None,
) -> None:
    """Two web pages: the site owner's (visitors, visits, page views, bounce rate and visit
    duration over any range, compared, by source, page, device and country, filtered by a
    click; `/api/report` gives the same JSON) and the operator's at /operator (events per
    minute, top pages, active sessions, alerts, dead letters, shard lag, heatmaps). Reads
    the local stack, or the stack named by CLICKSTREAM_* settings with AWS credentials."""
    from insights import archive_views
    from insights.dashboard import Dashboard, Sources
    from insights.settings import DashboardSettings, is_loopback
    from insights.web import serve

    settings = DashboardSettings(**given(host=host, port=port))  # type: ignore[arg-type]
    token = settings.token.get_secret_value() if settings.token else None
    generated = token is None and not is_loopback(settings.host)
    if generated:
        token = secrets.token_urlsafe(24)
    target = tables_target()
    location = target.archive_location()
    if not target.outputs.stream_name:
        raise ConfigurationError("no stream: set CLICKSTREAM_STREAM_NAME (a stack output)")
    sources = Sources(
        stream_name=target.outputs.stream_name,
        page_stats_table=str(target.outputs.page_stats_table),
        alerts_table=target.outputs.alerts_table or None,
        lease_table=target.lease_table,
        archive_bucket=location.bucket,
        dynamodb=target.client("dynamodb"),
        kinesis=target.client("kinesis"),
        s3=target.client("s3"),
        duckdb=lambda since: archive_views.connect(location, since=since, enrich=False),
        reports=lambda since: archive_views.connect(location, since=since, raw_views=False),
    )
    shown_host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    url = f"http://{shown_host}:{settings.port}/"
    if generated:
        url += f"?token={token}"  # made here: the printed URL is the only way to know it
    elif token:
        # The operator's own token is never printed (terminals and CI logs keep what they show).
        url += "?token=<CLICKSTREAM_DASHBOARD_TOKEN>"
    err.print(f"dashboard at {url} (Ctrl-C stops it)", highlight=False, soft_wrap=True)
    serve(Dashboard(sources, settings), host=settings.host, port=settings.port, token=token)
