"""SQL over the S3 archive with DuckDB: the Athena table's name, columns and partitions.

DuckDB reads S3 through its `httpfs` extension, which it would otherwise download from its
own site at run time. Here it comes from PyPI (`duckdb-extension-httpfs`, pinned to the
same version as `duckdb`), installed at set-up, and is loaded from that file; DuckDB checks
the extension's signature when it loads it, and automatic install and load are switched
off, so nothing is ever fetched at run time.

`RAW_EVENT_COLUMNS` are exactly the Glue table's columns, read with its partitions (year,
month, day, hour), so a query written for Athena runs here unchanged (the views themselves
are made by `insights.archive_views.connect`). Filters on the partitions prune objects by path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import duckdb_extension_httpfs

from clickstream.kernel.errors import InsightsError

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
    ("country", "VARCHAR"),
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
    # Trino's name for a JSON value as text, so one SQL text runs in both engines
    # (`insights.sessions_sql`).
    connection.execute(
        "CREATE MACRO json_extract_scalar(document, path) AS json_extract_string(document, path)"
    )
    return connection


def run_once(connection: duckdb.DuckDBPyConnection, statement: str) -> list[tuple[Any, ...]]:
    """One statement's rows on a connection made for it, closed after (DuckDB's errors
    raised as they are)."""
    try:
        return connection.execute(statement).fetchall()
    finally:
        connection.close()


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


def first_line(error: Exception) -> str:
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
        raise InsightsError(f"cannot read the archive: {first_line(exc)}") from None
    except duckdb.Error as exc:
        raise InsightsError(f"query failed: {first_line(exc)}") from None
