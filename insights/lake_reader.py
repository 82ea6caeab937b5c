"""The `events` view: the lake's Parquet where an hour is compacted, the raw archive where it
is not (or where objects came or changed after), each event once (`insights.lake.reading`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final

import duckdb

from clickstream.kernel.errors import InsightsError
from clickstream.stores.archive_layout import hour_of, start_of_day, start_of_hour
from insights import enriched, lake, sessions_sql
from insights.enriched import STORED_COLUMNS
from insights.lake_store import LakeStore, s3_client
from insights.sql import (
    HIVE_TYPES,
    PARTITIONS,
    RAW_EVENT_COLUMNS,
    ArchiveLocation,
    column_types,
    empty_select,
    first_line,
    quote,
)

EVENT_NAMES = ", ".join(f'"{name}"' for name, _ in RAW_EVENT_COLUMNS)
PARTITION_NAMES = ", ".join(PARTITIONS)
STORED_NAMES = ", ".join(name for name, _ in STORED_COLUMNS)


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
    written before a column was added (`country`, the enrichment columns: issue 40) gives it
    as NULL. The files are read by name and put together with an empty row of every column,
    by name."""
    listed = ", ".join(quote(path) for path in paths)
    return (
        f"(SELECT * FROM read_parquet([{listed}], hive_partitioning = true, "  # noqa: S608
        f"hive_types = {HIVE_TYPES}, union_by_name = true) "
        f"UNION ALL BY NAME {empty_select(RAW_EVENT_COLUMNS + STORED_COLUMNS)})"
    )


def _excluding(excluded_sources: frozenset[str]) -> str:
    if not excluded_sources:
        return ""
    names = ", ".join(quote(key) for key in sorted(excluded_sources))
    return f" WHERE {lake.SOURCE_COLUMN} NOT IN ({names})"


def parquet_select(
    paths: list[str], excluded_sources: frozenset[str], *, stored: bool = False
) -> str:
    """The files' rows (but those of `excluded_sources`), with their stored enrichment
    columns when `stored`."""
    extra = f", {STORED_NAMES}" if stored else ""
    return (
        f"SELECT {EVENT_NAMES}, {PARTITION_NAMES}{extra} "  # noqa: S608
        f"FROM {parquet_rows(paths)}{_excluding(excluded_sources)}"
    )


def unenriched_select(bucket: str, found: lake.LakeReading) -> str | None:
    """The rows whose enrichment columns are not stored (as this version computes them):
    the raw objects read, and the files compacted with another version."""
    parts = []
    if found.stale_parquet_files:
        paths = [f"s3://{bucket}/{key}" for key in found.stale_parquet_files]
        parts.append(parquet_select(paths, found.changed_sources))
    if found.raw_keys:
        parts.append(raw_select([f"s3://{bucket}/{key}" for key in found.raw_keys]))
    return " UNION ALL ".join(parts) if parts else None


def create_events_view(
    connection: duckdb.DuckDBPyConnection,
    archive: ArchiveLocation,
    s3: Any | None = None,
    *,
    since: datetime | None = None,
    raw: list[lake.RawObject] | None = None,
    enrich: bool = True,
    events: bool = True,
) -> lake.LakeReading:
    """`events` and `events_sources`, and with `enrich` `sessions` and the enrichment
    columns of `events` (docs/enrichment.md); with `since`, of the hours from `since`'s hour
    on. `raw`: those hours' raw objects, when the caller listed them already. Without
    `enrich` (the operator's dashboard, heatmaps, erasure: they read none of those columns),
    `events` has the archive's columns only."""
    store = LakeStore(s3 or s3_client(archive), archive.bucket)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The bot verdicts are listed while the archive's reading is put together.
        verdicts_listed = (
            pool.submit(
                store.verdict_keys,
                since=None if since is None else since - sessions_sql.SESSION_REACH,
            )
            if enrich
            else None
        )
        if raw is None and since is not None:
            found = month_reading(store, since)
        else:
            manifests = store.manifests(since=since)
            found = lake.reading(store.raw_objects() if raw is None else raw, manifests)
        verdicts = verdicts_listed.result() if verdicts_listed else []
    try:
        if enrich:
            enriched.register(connection)
            views = {
                sessions_sql.VERDICTS: verdicts_select(archive.bucket, verdicts),
                **parts_views(archive.bucket, found),
                "sessions": sessions_sql.sessions_from_parts("session_parts"),
                sessions_sql.IDENTITIES: sessions_sql.identities_select(),
                "persons": sessions_sql.persons_select(),
            }
            if events:
                views["events_stored"] = events_select(archive.bucket, found, enrich=True)
                views["events"] = enriched.events_select(
                    "SELECT * FROM events_stored", EVENT_NAMES, PARTITION_NAMES
                )
            for name, select in views.items():
                connection.execute(f"CREATE VIEW {name} AS {select}")
        else:
            connection.execute(f"CREATE VIEW events AS {events_select(archive.bucket, found)}")
        if events:
            connection.execute(f"CREATE VIEW events_sources AS {sources_select(found)}")
    except duckdb.IOException as exc:
        raise InsightsError(f"cannot read the archive: {first_line(exc)}") from None
    except duckdb.Error as exc:
        raise InsightsError(f"cannot read the lake: {first_line(exc)}") from None
    return found


def month_reading(store: LakeStore, since: datetime) -> lake.LakeReading:
    """What a reader reads of the hours from `since`'s, listing and fetching as little as
    exactness allows: the day rollups of days without late marks stand for their hours
    (their manifests not fetched, their raw objects not listed); of the other hours up to the
    last compacted one, the raw objects are listed only where the manifest cannot be trusted
    alone (none, compacted early, a late mark it does not hold: `lake.hours_to_list`); every
    raw object after it is listed. A compacted month: 30 rollups, a few hours' manifests, one
    listing of its last hours. The late marks, the rollups and the hours' manifests are
    listed side by side (on S3 each listing is a round trip; on an emulator, a scan of the
    bucket)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        marks_listed = pool.submit(store.late_marks, since=since)
        days_read = pool.submit(store.day_manifests, since=since)
        manifests_listed = pool.submit(store.manifest_keys, since=since)
        marks, day_manifests = marks_listed.result(), days_read.result()
        manifest_keys = manifests_listed.result()
    marked_days = {start_of_day(hour) for key, _ in marks if (hour := hour_of(key))}
    days = [day for day in day_manifests if day.current and day.day not in marked_days]
    rolled_days = frozenset(day.day for day in days)
    manifests = store.fetch_manifests(manifest_keys, rolled_up=rolled_days)
    covered = [start_of_hour(m.hour) for m in manifests] + [
        hour for day in days for hour in day.day_hours
    ]
    if not covered:
        return lake.reading(store.raw_objects(since=since), manifests)
    last = max(covered)
    hours = [
        hour
        for hour in lake.hours_between(start_of_hour(since), last)
        if start_of_day(hour) not in rolled_days
    ]
    raw = store.raw_objects_of(lake.hours_to_list(hours, manifests, marks), after=last)
    return lake.reading(raw, manifests, days)


def events_select(bucket: str, found: lake.LakeReading, *, enrich: bool = False) -> str:
    """Every event once with its own columns and partitions; with `enrich`, its time and
    its enrichment columns too (the landing ones per page view): the Parquet's stored ones,
    the others' computed when read (`insights.enriched`: its functions registered on the
    connection)."""
    parts = []
    if found.parquet_files:
        paths = [f"s3://{bucket}/{key}" for key in found.parquet_files]
        parts.append(parquet_select(paths, found.changed_sources, stored=enrich))
    unenriched = unenriched_select(bucket, found)
    if unenriched is not None and enrich:
        parts.append(
            f"SELECT {EVENT_NAMES}, {PARTITION_NAMES}, {STORED_NAMES} "  # noqa: S608
            f"FROM ({enriched.enriched_select(unenriched)})"
        )
    elif unenriched is not None:
        parts.append(unenriched)
    columns = RAW_EVENT_COLUMNS + STORED_COLUMNS if enrich else RAW_EVENT_COLUMNS
    rows = " UNION ALL ".join(parts) if parts else empty_select(columns)
    if not enrich:
        return rows
    return f"SELECT *, {enriched.EVENT_TIME} AS event_time FROM ({rows})"  # noqa: S608


PART_VIEWS: Final = {
    "sessions": "session_parts",
    "pages": "page_parts",
    "views": sessions_sql.PAGE_VIEWS,
}
"""The views of the hours' parts, by kind (custom events keep their kind's name)."""
HOUR_COLUMNS: Final = "year, month, day, hour"


def parts_views(bucket: str, found: lake.LakeReading) -> dict[str, str]:
    """`session_parts`, `page_parts`, `custom_events` and `page_views`
    (`insights.sessions_sql`): the parts compaction stored, of the hours where they hold every
    event read, and the others' computed from their events (`events_unparted`) one hour at a
    time, as compaction does."""
    views = {"events_unparted": events_select(bucket, found.without_parts(), enrich=True)}
    for kind in lake.PART_KINDS:
        columns = sessions_sql.PART_COLUMNS[kind]
        # Their columns and hour partitions, as Athena's tables of them have.
        names = ", ".join(name for name, _ in columns) + f", {HOUR_COLUMNS}"
        computed = sessions_sql.PART_SELECTS[kind]("events_unparted", HOUR_COLUMNS)
        select = f"SELECT {names} FROM ({computed})"  # noqa: S608
        stored = found.parts_of(kind)
        if stored:
            listed = ", ".join(quote(f"s3://{bucket}/{key}") for key in stored)
            select += (
                f" UNION ALL SELECT {names} FROM read_parquet([{listed}], "  # noqa: S608
                f"hive_partitioning = true, hive_types = {HIVE_TYPES})"
            )
        rolled = [key for part, key in found.day_part_files if part == kind]
        if rolled:  # the day rollups hold their hour columns
            listed = ", ".join(quote(f"s3://{bucket}/{key}") for key in rolled)
            select += (
                f" UNION ALL SELECT {names} FROM read_parquet([{listed}], "  # noqa: S608
                "hive_partitioning = false)"
            )
        views[PART_VIEWS.get(kind, kind)] = select
    return views


def verdicts_select(bucket: str, keys: list[str]) -> str:
    """`bot_verdicts`: the sessions the workers' bot rule judged, one row per object."""
    names = ", ".join(name for name, _ in sessions_sql.VERDICT_COLUMNS)
    if not keys:
        return f"SELECT {names} FROM ({empty_select(sessions_sql.VERDICT_COLUMNS)})"  # noqa: S608
    listed = ", ".join(quote(f"s3://{bucket}/{key}") for key in keys)
    return (
        f"SELECT {names} FROM read_json([{listed}], format = 'newline_delimited', "  # noqa: S608
        f"compression = 'gzip', columns = {column_types(sessions_sql.VERDICT_COLUMNS)}, "
        "hive_partitioning = false)"
    )


def sources_select(found: lake.LakeReading) -> str:
    """`events_sources`: what `events` reads, one row per object (kind 'parquet' or 'raw')."""
    rows = [("parquet", key) for key in found.all_parquet_files] + [
        ("raw", key) for key in found.raw_keys
    ]
    if not rows:
        return "SELECT CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS VARCHAR) AS key WHERE false"
    values = ", ".join(f"({quote(kind)}, {quote(key)})" for kind, key in rows)
    return f"SELECT * FROM (VALUES {values}) AS sources(kind, key)"  # noqa: S608
