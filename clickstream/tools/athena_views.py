"""Athena's `sessions` view and the tables of the hours' parts, as the template declares
them: `session_parts`, `page_parts`, `custom_events` and `page_views` (Glue tables over the symlinks
compaction writes per kind and hour, `lake/parts/<kind>/year=/…/symlink.txt`), and a Glue
table of type VIRTUAL_VIEW whose text is `insights.sessions_sql.sessions_from_parts` over
`session_parts`, the same SQL DuckDB's `sessions` view runs.
`python -m clickstream.tools.athena_views --write` writes the resources between their markers
in infra/cloudformation.yaml; a unit test holds them equal.

Athena reads a view's definition from the Glue table's `ViewOriginalText`: `/* Presto View:
<base64 of a JSON document> */`, the document holding the SQL, the catalog, the database and
the columns with their Trino types. The database is the stack's parameter, so the template
builds the document with `Fn::Sub` and encodes it with `Fn::Base64` at deploy time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Final

from clickstream.kernel.paths import DEFAULT_TEMPLATE
from insights.lake import PART_KINDS
from insights.named_queries import NamedQuery, named_queries
from insights.sessions_sql import (
    IDENTITIES,
    IDENTITY_COLUMNS,
    PART_COLUMNS,
    PERSON_COLUMNS,
    SESSION_COLUMNS,
    identities_select,
    persons_select,
    sessions_from_parts,
)

TEMPLATE: Final = DEFAULT_TEMPLATE
BEGIN: Final = "  # sessions view: begin (python -m clickstream.tools.athena_views --write)\n"
END: Final = "  # sessions view: end\n"
DATABASE_PLACEHOLDER: Final = "${GlueDatabaseName}"

TRINO_TYPES: Final = {
    "VARCHAR": "varchar",
    "TIMESTAMP": "timestamp",
    "DOUBLE": "double",
    "BIGINT": "bigint",
    "BOOLEAN": "boolean",
    "VARCHAR[]": "array(varchar)",
}
HIVE_TYPES: Final = {
    "VARCHAR": "string",
    "TIMESTAMP": "timestamp",
    "DOUBLE": "double",
    "BIGINT": "bigint",
    "BOOLEAN": "boolean",
    "VARCHAR[]": "array<string>",
}


def view_document(
    database: str,
    sql: str | None = None,
    columns: tuple[tuple[str, str], ...] = SESSION_COLUMNS,
) -> dict[str, object]:
    """The Presto view document Athena keeps for a view (`sessions` by default) in
    `database`."""
    return {
        "originalSql": sessions_from_parts("session_parts") if sql is None else sql,
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": [{"name": name, "type": TRINO_TYPES[kind]} for name, kind in columns],
    }


HOUR_PARTS: Final = ("year", "month", "day", "hour")
PARQUET_SERDE: Final = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PART_TABLES: Final = {
    "sessions": ("SessionPartsTable", "session_parts", "One row per session and hour"),
    "pages": ("PagePartsTable", "page_parts", "Each session's views per page path and hour"),
    "custom_events": ("CustomEventsTable", "custom_events", "The custom events, by hour"),
    "views": ("PageViewsTable", "page_views", "Each page view's time and path, by hour"),
}
"""Each kind of part: its template resource, its table's name, what a row is."""


def parts_table_text(kind: str) -> str:
    resource, name, what = PART_TABLES[kind]
    location = f"s3://${{ArchiveBucket}}/lake/parts/{kind}"
    projection = "".join(
        f"          projection.{part}.type: integer\n"
        f'          projection.{part}.range: "{bounds}"\n'
        + (f'          projection.{part}.digits: "2"\n' if part != "year" else "")
        for part, bounds in (
            ("year", "2020,2100"),
            ("month", "1,12"),
            ("day", "1,31"),
            ("hour", "0,23"),
        )
    )
    columns = "".join(
        f"            - {{Name: {column}, Type: {HIVE_TYPES[kind_of]}}}\n"
        for column, kind_of in PART_COLUMNS[kind]
    )
    return (
        f"  {resource}:\n"
        "    Type: AWS::Glue::Table\n"
        "    Properties:\n"
        "      CatalogId: !Ref AWS::AccountId\n"
        "      DatabaseName: !Ref ArchiveDatabase\n"
        "      TableInput:\n"
        f"        Name: {name}\n"
        f"        Description: {what} of the compacted hours (clickstream compact), what reports "
        "read (docs/reports.md).\n"
        "        TableType: EXTERNAL_TABLE\n"
        "        Parameters:\n"
        '          projection.enabled: "true"\n'
        + projection
        + f'          storage.location.template: !Sub "{location}/year=${{!year}}/month=${{!month}}'
        '/day=${!day}/hour=${!hour}"\n'
        "        PartitionKeys:\n"
        + "".join(
            f"          - {{Name: {part}, Type: int}}\n"
            for part in ("year", "month", "day", "hour")
        )
        + "        StorageDescriptor:\n"
        f'          Location: !Sub "{location}/"\n'
        "          InputFormat: org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat\n"
        "          OutputFormat: org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat\n"
        "          SerdeInfo:\n"
        f"            SerializationLibrary: {PARQUET_SERDE}\n"
        "          Columns:\n" + columns + "\n"
    )


def view_text(
    resource: str,
    name: str,
    description: str,
    sql: str | None,
    columns: tuple[tuple[str, str], ...],
) -> str:
    """A Glue table of type VIRTUAL_VIEW: Athena's view `name`."""
    document = json.dumps(view_document(DATABASE_PLACEHOLDER, sql, columns), separators=(",", ":"))
    listed = "".join(
        f"            - {{Name: {column}, Type: {HIVE_TYPES[kind]}}}\n" for column, kind in columns
    )
    return (
        f"  {resource}:\n"
        "    Type: AWS::Glue::Table\n"
        "    Properties:\n"
        "      CatalogId: !Ref AWS::AccountId\n"
        "      DatabaseName: !Ref ArchiveDatabase\n"
        "      TableInput:\n"
        f"        Name: {name}\n"
        f"        Description: {json.dumps(description)}\n"
        "        TableType: VIRTUAL_VIEW\n"
        "        Parameters:\n"
        '          presto_view: "true"\n'
        "          comment: Presto View\n"
        "        ViewExpandedText: /* Presto View */\n"
        "        ViewOriginalText:\n"
        "          Fn::Join:\n"
        '            - ""\n'
        '            - - "/* Presto View: "\n'
        f"              - Fn::Base64: !Sub {json.dumps(document)}\n"
        '              - " */"\n'
        "        StorageDescriptor:\n"
        "          SerdeInfo: {}\n"
        "          Columns:\n" + listed
    )


def resource_text() -> str:
    """The template's parts tables, its `sessions`, `identities` and `persons` views and the named
    queries, between their markers."""
    sessions = view_text(
        "SessionsView",
        "sessions",
        "One row per session of the lake (clickstream's sessions view, put together from "
        "session_parts; the hours not compacted yet are not in it).",
        None,
        SESSION_COLUMNS,
    )
    identities = view_text(
        "IdentitiesView",
        IDENTITIES,
        "The person map: an anonymous id (or an aliased id) and the user id it belongs to.",
        identities_select(),
        IDENTITY_COLUMNS,
    )
    persons = view_text(
        "PersonsView",
        "persons",
        "Each person known by a user id, the anonymous ids it joins, first and last seen.",
        persons_select(),
        PERSON_COLUMNS,
    )
    return (
        BEGIN
        + "".join(parts_table_text(kind) for kind in PART_KINDS)
        + sessions
        + identities
        + persons
        + "".join(named_query_text(q) for q in named_queries())
        + END
    )


def named_query_text(query: NamedQuery) -> str:
    """A named query's resource: its statement as a JSON string (a YAML scalar as it is)."""
    resource = "".join(part.capitalize() for part in query.name.split("-")) + "Query"
    parameters = "; ".join(f"{n}: {what}" for n, what in enumerate(query.parameters, start=1))
    description = f"{query.description} Parameters: {parameters}."
    return (
        f"  {resource}:\n"
        "    Type: AWS::Athena::NamedQuery\n"
        "    Properties:\n"
        f"      Name: {query.name}\n"
        "      Database: !Ref ArchiveDatabase\n"
        f"      Description: {json.dumps(description)}\n"
        f"      QueryString: {json.dumps(query.sql)}\n"
    )


def current_text(template: str) -> str:
    """What the template holds between the markers (empty: no markers)."""
    if BEGIN not in template or END not in template:
        return ""
    start = template.index(BEGIN)
    return template[start : template.index(END, start) + len(END)]


def write(path: Path = TEMPLATE) -> bool:
    """Rewrite the resource in the template; whether anything changed."""
    template = path.read_text()
    old = current_text(template)
    if not old:
        raise SystemExit(f"{path}: the sessions view's markers are missing")
    new = resource_text()
    if old == new:
        return False
    path.write_text(template.replace(old, new))
    return True


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m clickstream.tools.athena_views --write")
    sys.stderr.write("written\n" if write() else "up to date\n")
