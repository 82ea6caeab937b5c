"""`clickstream sql "SELECT ..."`: SQL over the archive (DuckDB), the Athena table's names."""

from __future__ import annotations

import csv
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clickstream.cli.common import (
    one_line_errors,
    out,
    print_json,
    since_time,
    use_local_stack_environment,
)
from clickstream.kernel.errors import ConfigurationError

if TYPE_CHECKING:
    from insights.sql import ArchiveLocation


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@one_line_errors
def sql(
    query: Annotated[
        str,
        typer.Argument(help="SQL over the views events, raw_events and dead_letters."),
    ],
    output: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.TABLE,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only the hour partitions from then on (90m, 24h, 7d or ISO 8601): the "
            "archive is listed from that hour rather than whole. Default: every hour."
        ),
    ] = None,
) -> None:
    """SQL over the S3 archive with DuckDB, with the Athena tables' names, columns and
    year/month/day/hour partitions: `events` (the lake: compacted hours from Parquet, the
    others from the raw archive, each event once), `raw_events` (the raw archive alone) and
    `dead_letters`; `events_sources` lists what `events` reads. Reads the local stack's
    bucket, or CLICKSTREAM_ARCHIVE_BUCKET with the default AWS credentials. `--since`
    narrows the views to recent hours, which opens a large archive in a fraction of the
    time (the hours before are neither listed nor read)."""
    from insights import archive_views
    from insights import sql as engine

    location = archive_location()
    start = None if since is None else since_time(since, datetime.now(UTC))
    columns, rows = engine.run(archive_views.connect(location, since=start), query)
    if output is Format.JSON:
        print_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif output is Format.CSV:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([engine.spreadsheet_safe(value) for value in row] for row in rows)
    else:
        table = Table()
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("" if value is None else str(value) for value in row))
        out.print(table)


def archive_location() -> ArchiveLocation:
    """The bucket to read and how: settings, else the running local stack."""
    import boto3

    from clickstream.local import state as local_stack
    from clickstream.local.settings import LocalStackSettings
    from insights.sql import ArchiveLocation

    if "CLICKSTREAM_ARCHIVE_BUCKET" not in os.environ:
        if local_stack.load_state(LocalStackSettings()) is None:
            raise ConfigurationError(
                "no archive to read: set CLICKSTREAM_ARCHIVE_BUCKET (the stack's "
                "ArchiveBucketName output) or start the local stack"
            )
        use_local_stack_environment()
    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise ConfigurationError("no AWS credentials found for the archive's bucket")
    frozen = credentials.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        raise ConfigurationError("the AWS credentials found have no key")
    return ArchiveLocation(
        bucket=os.environ["CLICKSTREAM_ARCHIVE_BUCKET"],
        region=session.region_name or "us-east-1",
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        session_token=frozen.token,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
    )
