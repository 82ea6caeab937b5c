"""`clickstream compact`: closed hours of the raw archive into the Parquet lake (docs/lake.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clickstream.cli.common import (
    JsonFlag,
    err,
    one_line_errors,
    out,
    print_json,
    progress_bar,
    since_time,
)
from clickstream.cli.sql import archive_location
from clickstream.kernel.errors import ConfigurationError, InsightsError
from clickstream.kernel.timestamps import from_iso
from clickstream.stores import archive_layout as layout

if TYPE_CHECKING:
    from insights.lake import HourResult


def parse_hour(text: str) -> datetime:
    """`--hour 2026-12-04T10` (UTC), or any ISO 8601 time within the hour."""
    try:
        moment = from_iso(text if len(text) > 13 else text + ":00")
    except ValueError:
        raise ConfigurationError(
            f"--hour {text!r}: expected an hour like 2026-12-04T10 (UTC)"
        ) from None
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@one_line_errors
def compact(
    hour: Annotated[
        list[str] | None,
        typer.Option(
            help="An hour to compact, e.g. 2026-12-04T10 (UTC), closed or not; repeatable. "
            "Default: every closed hour of --since."
        ),
    ] = None,
    since: Annotated[
        str, typer.Option(help="The closed hours from then: 90m, 48h, 31d or ISO 8601.")
    ] = "48h",
    include_open: Annotated[
        bool,
        typer.Option(
            "--include-open",
            help="With --since, also the hours not closed yet (compacted again as their "
            "objects come).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Closed hours of the raw archive become Parquet under events/ (sorted by session and
    time), each published by a manifest written last: the `events` view of `clickstream
    sql` and Athena's `events` table read them. Hours already up to date are left as they
    are; late or rewritten raw objects are folded in, and the hours the workers marked late
    are compacted again whatever their age. Safe to run again, or twice at once."""
    from insights import lake
    from insights.compaction import Compactor
    from insights.lake_store import s3_client
    from insights.settings import LakeSettings

    location = archive_location()
    compactor = Compactor(s3_client(location), location, LakeSettings())
    now = datetime.now(UTC)
    if hour:
        hours = sorted({parse_hour(text) for text in hour})
    else:
        every = lake.hours_between(since_time(since, now), now)
        # And any hour the workers archived into late, however old (its late marks).
        every = sorted(set(every) | set(compactor.marked_hours()))
        hours = [h for h in every if include_open or compactor.closed(h)]
    results = []
    with progress_bar("compacting {task.description}", quiet=as_json) as progress:
        task = progress.add_task("", total=len(hours))
        for each in hours:
            progress.update(task, description=f"{each:%Y-%m-%dT%H}")
            try:
                results.append(compactor.compact(each))
            except InsightsError as exc:
                # One hour that cannot be compacted now (an object gone mid-read, a manifest
                # that does not parse) does not keep the others from it; the exit says so.
                results.append(lake.HourResult(each, "failed", notes=[str(exc)]))
            progress.advance(task)
    # Then the rollups of those hours' days (those settled: the others wait).
    rollups = []
    for day in sorted({layout.start_of_day(each) for each in hours}):
        try:
            rollups.append(compactor.roll_up(day))
        except InsightsError as exc:
            rollups.append(lake.HourResult(day, "failed", notes=[str(exc)]))
    found = [result.as_dict() for result in results]
    days = [{**result.as_dict(), "day": f"{result.hour:%Y-%m-%d}"} for result in rollups]
    if as_json:
        print_json({"hours": found, "days": days})
        raise typer.Exit(exit_code(results + rollups))
    table = Table(title=f"{len(hours)} hours")
    for column in ("hour", "outcome", "events", "raw objects", "files", "MB", "s", "swept"):
        table.add_column(column, justify="left" if column in {"hour", "outcome"} else "right")
    for row in found:
        table.add_row(
            str(row["hour"]),
            str(row["outcome"]),
            f"{row['events']:,}",
            f"{row['raw_objects']:,}",
            str(row["files"]),
            f"{int(str(row['bytes'])) / 1e6:.1f}",
            f"{row['seconds']:.1f}",
            str(row["swept"]),
        )
    out.print(table)
    if rollups:
        rolled = Table(title=f"{len(rollups)} day rollups")
        for column in ("day", "outcome", "parts MB", "s"):
            rolled.add_column(column, justify="left" if column in {"day", "outcome"} else "right")
        for result in rollups:
            rolled.add_row(
                f"{result.hour:%Y-%m-%d}",
                result.outcome,
                f"{result.parts_bytes / 1e6:.1f}",
                f"{result.seconds:.1f}",
            )
        out.print(rolled)
    for result in results:
        for note in result.notes:
            err.print(f"{result.hour:%Y-%m-%dT%H}: {note}", highlight=False)
    for result in rollups:
        for note in result.notes:
            err.print(f"{result.hour:%Y-%m-%d}: {note}", highlight=False)
    raise typer.Exit(exit_code(results + rollups))


def exit_code(results: list[HourResult]) -> int:
    """1 when an hour failed, 2 when one was too slow to publish, else 0."""
    outcomes = {result.outcome for result in results}
    return 1 if "failed" in outcomes else 2 if "too slow" in outcomes else 0
