"""The shared DynamoDB reads against moto's server on loopback: every item, in short pages."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from clickstream.kernel import aws, dynamo
from clickstream.local.stack import LocalStackState

ITEMS = 2 * dynamo.READ_PAGE_ITEMS + 37


@pytest.fixture
def table(local_stack: LocalStackState) -> Any:
    client = aws.local_client("dynamodb", local_stack.moto_endpoint, local_stack.region)
    name = f"reads-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "group", "KeyType": "HASH"},
            {"AttributeName": "n", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "group", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(ITEMS):
        client.put_item(
            TableName=name,
            Item=dynamo.to_dynamo({"group": f"g{n % 2}", "n": n, "blob": bytes([n % 256]) * 300}),
        )
    yield client, name
    client.delete_table(TableName=name)


def limits_asked(client: Any, operation: str) -> list[int | None]:
    """Records the `Limit` of every `operation` request the client sends."""
    asked: list[int | None] = []
    client.meta.events.register(
        f"provide-client-params.dynamodb.{operation}",
        lambda params, **_: asked.append(params.get("Limit")),
    )
    return asked


def test_a_scan_reads_every_item_once_in_pages_of_at_most_the_page_size(table: Any) -> None:
    # GIVEN a table of more items than two pages hold
    client, name = table
    asked = limits_asked(client, "Scan")
    # WHEN it is scanned
    items = dynamo.scan_table(client, name)
    # THEN every item comes once, with its values, through requests of at most a page each
    assert sorted(item["n"] for item in items) == list(range(ITEMS))
    assert all(item["blob"] == bytes([item["n"] % 256]) * 300 for item in items)
    assert asked == [dynamo.READ_PAGE_ITEMS] * 3


def test_a_query_reads_every_match_in_pages_of_at_most_the_page_size(table: Any) -> None:
    # GIVEN the same table, half its items in group g1
    client, name = table
    asked = limits_asked(client, "Query")
    condition = {
        "KeyConditionExpression": "#g = :g",
        "ExpressionAttributeNames": {"#g": "group"},
        "ExpressionAttributeValues": {":g": {"S": "g1"}},
    }
    # WHEN the group is queried
    matches = dynamo.query_items(client, TableName=name, **condition)
    # THEN every match comes, in key order, through requests of at most a page each
    assert [item["n"] for item in matches] == list(range(1, ITEMS, 2))
    assert asked == [dynamo.READ_PAGE_ITEMS] * 2
