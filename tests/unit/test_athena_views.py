"""Athena's `sessions` view in the template is the SQL DuckDB's `sessions` view runs, over the
parts tables beside it."""

from __future__ import annotations

import json

from clickstream.kernel.paths import DEFAULT_TEMPLATE
from clickstream.local.template import load_template
from clickstream.tools import athena_views
from insights import lake
from insights.sessions_sql import PART_COLUMNS, SESSION_COLUMNS, sessions_from_parts


def test_the_template_holds_the_view_as_the_tool_writes_it() -> None:
    text = DEFAULT_TEMPLATE.read_text()
    assert athena_views.current_text(text) == athena_views.resource_text(), (
        "run python -m clickstream.tools.athena_views --write"
    )


def test_the_views_document_is_the_sessions_sql_over_the_lake_table() -> None:
    resource = load_template(DEFAULT_TEMPLATE)["Resources"]["SessionsView"]
    table = resource["Properties"]["TableInput"]
    assert (table["Name"], table["TableType"]) == ("sessions", "VIRTUAL_VIEW")
    prefix, encoded, suffix = table["ViewOriginalText"]["Fn::Join"][1]
    assert (prefix, suffix) == ("/* Presto View: ", " */")
    # (what CloudFormation encodes once Fn::Sub has named the stack's database)
    document = json.loads(
        encoded["Fn::Base64"]["Fn::Sub"].replace("${GlueDatabaseName}", "clickstream")
    )
    assert document["originalSql"] == sessions_from_parts("session_parts")
    assert document["schema"] == "clickstream"
    assert [c["name"] for c in document["columns"]] == [name for name, _ in SESSION_COLUMNS]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == [
        name for name, _ in SESSION_COLUMNS
    ]


def test_each_kind_of_part_has_its_table_over_its_symlinks() -> None:
    resources = load_template(DEFAULT_TEMPLATE)["Resources"]
    for kind in lake.PART_KINDS:
        resource_name, name, _ = athena_views.PART_TABLES[kind]
        table = resources[resource_name]["Properties"]["TableInput"]
        assert table["Name"] == name
        descriptor = table["StorageDescriptor"]
        assert descriptor["InputFormat"].endswith("SymlinkTextInputFormat")
        assert descriptor["Location"] == {"Fn::Sub": f"s3://${{ArchiveBucket}}/lake/parts/{kind}/"}
        assert [c["Name"] for c in descriptor["Columns"]] == [n for n, _ in PART_COLUMNS[kind]]
        assert [c["Name"] for c in table["PartitionKeys"]] == ["year", "month", "day", "hour"]
