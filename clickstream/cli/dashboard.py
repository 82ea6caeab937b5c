"""`clickstream dashboard`: the live page over the workers' tables and the archive."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from clickstream.cli.common import err, given, one_line_errors, results_clients
from clickstream.cli.sql import archive_location
from clickstream.kernel.errors import ConfigurationError


@one_line_errors
def dashboard(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on [127.0.0.1]; others require a token."),
    ] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port [8050].")] = None,
) -> None:
    """A live web page: events per minute over the last hour, top pages, active sessions,
    alerts, dead letters by reason, each shard's lag, a page's heatmap and rage clicks. Reads
    the local stack, or the stack named by CLICKSTREAM_* settings with AWS credentials."""
    from clickstream.kernel import aws
    from insights import archive_views
    from insights.dashboard import Dashboard, Sources
    from insights.settings import DashboardSettings, is_loopback
    from insights.web import serve

    settings = DashboardSettings(**given(host=host, port=port))  # type: ignore[arg-type]
    token = settings.token.get_secret_value() if settings.token else None
    generated = token is None and not is_loopback(settings.host)
    if generated:
        token = secrets.token_urlsafe(24)
    dynamodb, kinesis, names = results_clients()
    location = archive_location()
    if not names["stream_name"]:
        raise ConfigurationError("no stream: set CLICKSTREAM_STREAM_NAME (a stack output)")
    sources = Sources(
        stream_name=names["stream_name"],
        page_stats_table=names["page_stats_table"],
        alerts_table=names["alerts_table"] or None,
        lease_table=os.environ.get("CLICKSTREAM_APPLICATION_NAME")
        or f"{names['stream_name']}-consumer",
        archive_bucket=location.bucket,
        dynamodb=dynamodb,
        kinesis=kinesis,
        s3=aws.client("s3"),
        duckdb=lambda since: archive_views.connect(location, since=since),
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
