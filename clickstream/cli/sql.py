"""`clickstream sql "SELECT ..."`: SQL over the archive (DuckDB), the Athena table's names."""

from __future__ import annotations

import csv
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
)

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
    """The archive named by CLICKSTREAM_ARCHIVE_BUCKET (boto3's credentials), else the
    running local stack's."""
    from clickstream.cli.target import stack_target

    return stack_target("archive_bucket", "archive").archive_location()
