"""Athena's `sessions` view, as the template declares it: a Glue table of type VIRTUAL_VIEW
whose text is `insights.sessions_sql.sessions_select` over the lake's `events` table, the same
SQL DuckDB's `sessions` view runs. `python -m clickstream.tools.athena_views --write` writes
the resource between its markers in infra/cloudformation.yaml; a unit test holds them equal.

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
from insights.sessions_sql import SESSION_COLUMNS, sessions_select

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
}
HIVE_TYPES: Final = {
    "VARCHAR": "string",
    "TIMESTAMP": "timestamp",
    "DOUBLE": "double",
    "BIGINT": "bigint",
    "BOOLEAN": "boolean",
}


def view_document(database: str) -> dict[str, object]:
    """The Presto view document Athena keeps for `sessions` in `database`."""
    return {
        "originalSql": sessions_select("events"),
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": [{"name": name, "type": TRINO_TYPES[kind]} for name, kind in SESSION_COLUMNS],
    }


def resource_text() -> str:
    """The template's `SessionsView` resource, between its markers."""
    document = json.dumps(view_document(DATABASE_PLACEHOLDER), separators=(",", ":"))
    columns = "".join(
        f"            - {{Name: {name}, Type: {HIVE_TYPES[kind]}}}\n"
        for name, kind in SESSION_COLUMNS
    )
    return (
        BEGIN + "  SessionsView:\n"
        "    Type: AWS::Glue::Table\n"
        "    Properties:\n"
        "      CatalogId: !Ref AWS::AccountId\n"
        "      DatabaseName: !Ref ArchiveDatabase\n"
        "      TableInput:\n"
        "        Name: sessions\n"
        "        Description: One row per session of the lake's events (clickstream's sessions "
        "view; the hours not compacted yet are not in it).\n"
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
        "          Columns:\n" + columns + END
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
