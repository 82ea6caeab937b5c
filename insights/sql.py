"""SQL over the S3 archive with DuckDB: the Athena table's name, columns and partitions.

DuckDB reads S3 through its `httpfs` extension, which it would otherwise download from its
own site at run time. Here it comes from PyPI (`duckdb-extension-httpfs`, pinned to the
same version as `duckdb`), installed at set-up, and is loaded from that file; DuckDB checks
the extension's signature when it loads it, and automatic install and load are switched
off, so nothing is ever fetched at run time.

`raw_events` has exactly the Glue table's columns and partitions (year, month, day, hour),
so a query written for Athena runs here unchanged; `dead_letters` is the same over the
dead-letter prefix (by arrival hour). Filters on the partitions prune objects by path.
`events` has the same columns over the lake (`insights.lake_reader`): the compacted hours'
Parquet and the raw objects no manifest holds, each event once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import duckdb

from clickstream.errors import InsightsError
from insights.archive import jsonl_keys_from_hour

RAW_EVENT_COLUMNS: Final = (
    ("event_id", "VARCHAR"),
    ("type", "VARCHAR"),
    ("session_id", "VARCHAR"),
    ("page", "VARCHAR"),
    ("timestamp", "VARCHAR"),
    ("anonymous_id", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("user_agent", "VARCHAR"),
    ("referrer", "VARCHAR"),
    ("x", "INTEGER"),
    ("y", "INTEGER"),
    ("viewport_width", "INTEGER"),
    ("viewport_height", "INTEGER"),
    ("properties", "VARCHAR"),
)
"""The Athena table `raw_events` of infra/cloudformation.yaml, in its order (a test compares)."""

DEAD_LETTER_COLUMNS: Final = (
    ("reason", "VARCHAR"),
    ("field", "VARCHAR"),
    ("detail", "VARCHAR"),
    ("shard_id", "VARCHAR"),
    ("sequence_number", "VARCHAR"),
    ("sub_sequence_number", "INTEGER"),
    ("partition_key", "VARCHAR"),
    ("arrival_time", "VARCHAR"),
    ("sha256", "VARCHAR"),
    ("data_base64", "VARCHAR"),
)

PARTITIONS: Final = ("year", "month", "day", "hour")
VIEWS: Final = {
    "raw_events": ("raw", RAW_EVENT_COLUMNS),
    "dead_letters": ("dead-letter", DEAD_LETTER_COLUMNS),
}


@dataclass(frozen=True)
class ArchiveLocation:
    """Where the archive is and how to reach it: real S3 (no endpoint) or an emulator."""

    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    endpoint_url: str | None = None


def httpfs_extension() -> Path:
    """The httpfs extension file installed from PyPI for this DuckDB version."""
    import duckdb_extension_httpfs

    version = duckdb.__version__
    found = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{version}"
    path = found / "httpfs.duckdb_extension"
    if not path.is_file():
        raise InsightsError(
            f"DuckDB's httpfs extension for DuckDB {version} is not installed at {path}: "
            "pin duckdb-extension-httpfs to the same version as duckdb"
        )
    return path


FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: visitors write user agents, pages and
    properties, and a text starting like a formula (`=HYPERLINK(...)`) would run as one
    (OWASP's CSV injection). Such text gets a leading `'`; numbers are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def open_duckdb(
    archive: ArchiveLocation, config: dict[str, str | int | bool] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reaches the archive's bucket, and no view yet."""
    connection = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            **(config or {}),
        }
    )
    connection.execute(f"LOAD {quote(str(httpfs_extension()))}")
    secret = [
        "TYPE s3",
        f"KEY_ID {quote(archive.access_key_id)}",
        f"SECRET {quote(archive.secret_access_key)}",
        f"REGION {quote(archive.region)}",
    ]
    if archive.session_token:
        secret.append(f"SESSION_TOKEN {quote(archive.session_token)}")
    if archive.endpoint_url:
        scheme, _, host = archive.endpoint_url.partition("://")
        secret += [
            f"ENDPOINT {quote(host.rstrip('/'))}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if scheme == 'https' else 'false'}",
        ]
    connection.execute(f"CREATE SECRET archive ({', '.join(secret)})")
    return connection


def run_once(connection: duckdb.DuckDBPyConnection, statement: str) -> list[tuple[Any, ...]]:
    """One statement's rows on a connection made for it, closed after (DuckDB's errors
    raised as they are)."""
    try:
        return connection.execute(statement).fetchall()
    finally:
        connection.close()


def connect(
    archive: ArchiveLocation, s3: Any | None = None, *, since: datetime | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the archive's views: `raw_events`, `dead_letters` and
    `events` (the lake: compacted hours from Parquet, the rest from the raw archive, each
    event once). Nothing is read for the first two until a query runs; `events` lists the
    raw archive and reads the hours' manifests now (`insights.lake`).

    With `since` (a dashboard's window, a heatmap's), the views hold only the hour
    partitions from `since`'s hour on, and only those are listed and their manifests read:
    opening costs the window's objects, not every object the archive keeps."""
    from insights.lake_reader import create_events_view
    from insights.lake_store import LakeStore, s3_client

    connection = open_duckdb(archive)
    raw = None
    keys_since: dict[str, list[str]] = {}
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
                raise InsightsError(f"cannot read the archive: {_first_line(exc)}") from None
            connection.execute(f"CREATE VIEW {view} AS {empty_select(columns)}")
    create_events_view(connection, archive, s3, since=since, raw=raw)
    return connection


def empty_select(columns: tuple[tuple[str, str], ...]) -> str:
    """A SELECT of no rows with the columns' names and types, and the hour partitions."""
    return (
        "SELECT "
        + ", ".join(f'CAST(NULL AS {kind}) AS "{name}"' for name, kind in columns)
        + ", "
        + ", ".join(f"CAST(NULL AS INTEGER) AS {name}" for name in PARTITIONS)
        + " WHERE false"
    )


def column_types(columns: tuple[tuple[str, str], ...]) -> str:
    """DuckDB's `columns = {...}` struct of read_json."""
    return "{" + ", ".join(f"{quote(name)}: {quote(kind)}" for name, kind in columns) + "}"


HIVE_TYPES: Final = "{" + ", ".join(f"{quote(name)}: 'INTEGER'" for name in PARTITIONS) + "}"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def run(
    connection: duckdb.DuckDBPyConnection, query: str
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of one query, or `InsightsError` in one line."""
    try:
        result = connection.execute(query)
        columns = [description[0] for description in result.description or []]
        return columns, result.fetchall()
    except duckdb.IOException as exc:
        raise InsightsError(f"cannot read the archive: {_first_line(exc)}") from None
    except duckdb.Error as exc:
        raise InsightsError(f"query failed: {_first_line(exc)}") from None
