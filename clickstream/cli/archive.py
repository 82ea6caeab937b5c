"""`clickstream archive check`: the raw archive's lines that a strict JSON reader refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from clickstream.cli.common import (
    JsonFlag,
    one_line_errors,
    out,
    print_json,
    progress_bar,
    since_time,
)

app = typer.Typer(help="The S3 archive itself: what a strict reader would refuse in it.")

FOUND_EXIT_CODE = 3
"""`check`'s exit code when some line is refused (0: none; 1: the check itself failed)."""


@app.command("check")
@one_line_errors
def check(
    since: Annotated[
        str | None,
        typer.Option(
            help="Only the hour partitions from then on (90m, 24h, 7d or ISO 8601). "
            "Default: the whole raw archive."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every line of the raw archive read with a strict JSON parser (the contract's rule:
    no NaN or Infinity, numbers within a double's range, no unpaired surrogate, nesting at
    most 64 deep): the objects holding lines it refuses, each with how many, the first
    few (line, reason, event and session ids) and every session id found, which
    `clickstream forget --session-id` takes. Exits 3 when it finds any, 0 when none."""
    from clickstream.cli.sql import archive_location
    from insights.lake_store import LakeStore, s3_client
    from insights.strictness import check_archive

    location = archive_location()
    s3 = s3_client(location)
    start = None if since is None else since_time(since, datetime.now(UTC))
    keys = [raw.key for raw in LakeStore(s3, location.bucket).raw_objects(since=start)]
    with progress_bar("reading the raw archive", quiet=as_json) as bar:
        task = bar.add_task("objects", total=len(keys))
        report = check_archive(s3, location.bucket, keys, lambda _: bar.advance(task))
    if as_json:
        print_json(report.as_dict())
    else:
        out.print(
            f"{report.objects_read:,} objects, {report.lines_read:,} lines read; "
            f"{report.lines_refused:,} lines refused in {len(report.refusing):,} "
            + ("object" if len(report.refusing) == 1 else "objects"),
            highlight=False,
        )
        if report.refusing:
            table = Table()
            for column in ("object", "line", "reason", "detail", "session id"):
                table.add_column(column, overflow="fold")
            for found in report.refusing:
                for sample in found.samples:
                    table.add_row(
                        found.key,
                        str(sample.line),
                        sample.reason,
                        sample.detail,
                        sample.session_id or "-",
                    )
            out.print(table)
    if report.refusing:
        raise typer.Exit(FOUND_EXIT_CODE)
