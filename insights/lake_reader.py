"""The `events` view: the lake's Parquet where an hour is compacted, the raw archive where it
is not (or where objects came or changed after), each event once (`insights.lake.reading`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from clickstream.kernel.errors import InsightsError
from insights import lake
from insights.lake_store import LakeStore, s3_client
from insights.sql import (
    HIVE_TYPES,
    PARTITIONS,
    RAW_EVENT_COLUMNS,
    ArchiveLocation,
    column_types,
    empty_select,
    quote,
)

EVENT_NAMES = ", ".join(f'"{name}"' for name, _ in RAW_EVENT_COLUMNS)
PARTITION_NAMES = ", ".join(PARTITIONS)


def raw_select(paths: list[str], *, with_source: bool = False) -> str:
    """The raw objects' lines with the archive's columns (and the object each came from)."""
    listed = ", ".join(quote(path) for path in paths)
    source = f", regexp_replace(filename, '^s3://[^/]+/', '') AS {lake.SOURCE_COLUMN}"
    return (
        f"SELECT {EVENT_NAMES}, {PARTITION_NAMES}{source if with_source else ''} "  # noqa: S608
        f"FROM read_json([{listed}], format = 'newline_delimited', compression = 'gzip', "
        f"columns = {column_types(RAW_EVENT_COLUMNS)}, hive_partitioning = true, "
        f"hive_types = {HIVE_TYPES}{', filename = true' if with_source else ''})"
    )


def parquet_rows(paths: list[str]) -> str:
    """The lake's Parquet files as a table with every column of today's schema: a file
    written before a column was added (`country`, issue 40) gives it as NULL. The files are
    read by name and put together with an empty row of every column, by name."""
    listed = ", ".join(quote(path) for path in paths)
    return (
        f"(SELECT * FROM read_parquet([{listed}], hive_partitioning = true, "  # noqa: S608
        f"hive_types = {HIVE_TYPES}, union_by_name = true) "
        f"UNION ALL BY NAME {empty_select(RAW_EVENT_COLUMNS)})"
    )


def parquet_select(paths: list[str], excluded_sources: frozenset[str]) -> str:
    where = ""
    if excluded_sources:
        names = ", ".join(quote(key) for key in sorted(excluded_sources))
        where = f" WHERE {lake.SOURCE_COLUMN} NOT IN ({names})"
    return f"SELECT {EVENT_NAMES}, {PARTITION_NAMES} FROM {parquet_rows(paths)}{where}"  # noqa: S608


def events_select(bucket: str, found: lake.LakeReading) -> str:
    parts = []
    if found.parquet_files:
        paths = [f"s3://{bucket}/{key}" for key in found.parquet_files]
        parts.append(parquet_select(paths, found.changed_sources))
    if found.raw_keys:
        parts.append(raw_select([f"s3://{bucket}/{key}" for key in found.raw_keys]))
    if not parts:
        return empty_select(RAW_EVENT_COLUMNS)
    return " UNION ALL ".join(parts)


def create_events_view(
    connection: duckdb.DuckDBPyConnection,
    archive: ArchiveLocation,
    s3: Any | None = None,
    *,
    since: datetime | None = None,
    raw: list[lake.RawObject] | None = None,
) -> lake.LakeReading:
    """`events` and `events_sources`; with `since`, of the hours from `since`'s hour on.
    `raw`: those hours' raw objects, when the caller listed them already."""
    store = LakeStore(s3 or s3_client(archive), archive.bucket)
    if raw is None:
        raw = store.raw_objects(since=since)
    found = lake.reading(raw, store.manifests(since=since))
    try:
        connection.execute(f"CREATE VIEW events AS {events_select(archive.bucket, found)}")
        connection.execute(f"CREATE VIEW events_sources AS {sources_select(found)}")
    except duckdb.Error as exc:
        raise InsightsError(f"cannot read the lake: {str(exc).strip().splitlines()[0]}") from None
    return found


def sources_select(found: lake.LakeReading) -> str:
    """`events_sources`: what `events` reads, one row per object (kind 'parquet' or 'raw')."""
    rows = [("parquet", key) for key in found.parquet_files] + [
        ("raw", key) for key in found.raw_keys
    ]
    if not rows:
        return "SELECT CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS VARCHAR) AS key WHERE false"
    values = ", ".join(f"({quote(kind)}, {quote(key)})" for kind, key in rows)
    return f"SELECT * FROM (VALUES {values}) AS sources(kind, key)"  # noqa: S608
