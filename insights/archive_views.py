"""The archive's views on one DuckDB connection: `raw_events` and `dead_letters` over the raw
JSON lines (the Glue table's columns and partitions, `insights.sql`), and `events` over the
lake (`insights.lake_reader`: the compacted hours' Parquet and the raw objects no manifest
holds, each event once). What `clickstream sql`, the dashboard, heatmaps and erasure query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import duckdb

from clickstream.kernel.errors import InsightsError
from insights.archive import jsonl_keys_from_hour
from insights.lake_reader import create_events_view
from insights.lake_store import LakeStore, s3_client
from insights.sql import (
    DEAD_LETTER_COLUMNS,
    HIVE_TYPES,
    RAW_EVENT_COLUMNS,
    ArchiveLocation,
    column_types,
    empty_select,
    first_line,
    open_duckdb,
    quote,
)

VIEWS: Final = {
    "raw_events": ("raw", RAW_EVENT_COLUMNS),
    "dead_letters": ("dead-letter", DEAD_LETTER_COLUMNS),
}


def connect(
    archive: ArchiveLocation,
    s3: Any | None = None,
    *,
    since: datetime | None = None,
    enrich: bool = True,
    raw_views: bool = True,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the archive's views: `raw_events`, `dead_letters` and
    `events` (the lake: compacted hours from Parquet, the rest from the raw archive, each
    event once). Nothing is read for the first two until a query runs; `events` lists the
    raw archive and reads the hours' manifests now (`insights.lake`).

    With `since` (a dashboard's window, a heatmap's), the views hold only the hour
    partitions from `since`'s hour on, and only those are listed and their manifests read:
    opening costs the window's objects, not every object the archive keeps.

    With `enrich` (the default), `events` has the enrichment columns and `sessions` is there
    (`insights.enriched`): the user agents and landings of what is not compacted yet are read
    now. Without, `events` has the archive's own columns only (`lake_reader`).

    Without `raw_views` (reports, goals, funnels, paths, retention: they read the parts
    alone), no `raw_events`, `dead_letters` or `events`."""
    connection = open_duckdb(archive)
    raw = None
    keys_since: dict[str, list[str]] = {}
    if not raw_views:
        create_events_view(connection, archive, s3, since=since, enrich=enrich, events=False)
        return connection
    if since is not None:
        s3 = s3 or s3_client(archive)
        # The raw objects are listed once, for `raw_events` and for `events`' fold.
        raw = LakeStore(s3, archive.bucket).raw_objects(since=since)
        keys_since = {
            "raw_events": [obj.key for obj in raw],
            "dead_letters": jsonl_keys_from_hour(
                s3, archive.bucket, VIEWS["dead_letters"][0], since
            ),
        }
    for view, (prefix, columns) in VIEWS.items():
        if since is None:
            source = quote(f"s3://{archive.bucket}/{prefix}/year=*/month=*/day=*/hour=*/*.jsonl.gz")
        else:
            keys = keys_since[view]
            if not keys:
                connection.execute(f"CREATE VIEW {view} AS {empty_select(columns)}")
                continue
            source = "[" + ", ".join(quote(f"s3://{archive.bucket}/{key}") for key in keys) + "]"
        names = ", ".join(f'"{name}"' for name, _ in columns)
        # Only our own constants, the quoted bucket name and listed keys are spliced in.
        statement = (
            f"CREATE VIEW {view} AS SELECT {names}, year, month, day, hour FROM read_json("  # noqa: S608
            f"{source}, format = 'newline_delimited', compression = 'gzip', "
            f"columns = {column_types(columns)}, hive_partitioning = true, "
            f"hive_types = {HIVE_TYPES})"
        )
        try:
            connection.execute(statement)
        except duckdb.IOException as exc:
            # DuckDB lists the objects when the view is made: no objects yet (a new stack, no
            # dead letters) is an empty view with the same columns, anything else an error.
            if "No files found" not in str(exc):
                raise InsightsError(f"cannot read the archive: {first_line(exc)}") from None
            connection.execute(f"CREATE VIEW {view} AS {empty_select(columns)}")
    create_events_view(connection, archive, s3, since=since, raw=raw, enrich=enrich)
    return connection
