"""The local stack's moto speed-up (`clickstream.local.moto_server`) answers every DynamoDB
Query exactly as moto does without it: same items, same order, same pages, on the main
table and on an index, for string and number keys, with key conditions, filters, limits and
descending order. moto's own backend runs in this process (`mock_aws`); the same Query is
asked with moto's `Table.query` and with the patched one."""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.dynamodb.models.table import Table

from clickstream.local import moto_server

TABLE = "stats"


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "page", "AttributeType": "S"},
                {"AttributeName": "bucket", "AttributeType": "S"},
                {"AttributeName": "window", "AttributeType": "S"},
                {"AttributeName": "level", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "page", "KeyType": "HASH"},
                {"AttributeName": "bucket", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-window",
                    "KeySchema": [{"AttributeName": "window", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": "by-level",
                    "KeySchema": [
                        {"AttributeName": "level", "KeyType": "HASH"},
                        {"AttributeName": "page", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                },
            ],
        )
        yield client


SHORT = st.text(alphabet=string.ascii_lowercase[:4], min_size=0, max_size=2)
ITEMS = st.lists(
    st.fixed_dictionaries(
        {"page": SHORT.map(lambda s: "/" + s), "bucket": SHORT.map(lambda s: "b" + s)},
        optional={
            "window": st.sampled_from(["w", "a", "bc", "bcd"]),
            "level": st.sampled_from(["1", "1.0", "2", "10"]),
            "views": st.integers(0, 5).map(str),
        },
    ),
    max_size=40,
)


def put_all(client: Any, items: list[dict[str, str]]) -> None:
    scanned = client.scan(TableName=TABLE)["Items"]
    for old in scanned:
        client.delete_item(TableName=TABLE, Key={"page": old["page"], "bucket": old["bucket"]})
    for item in items:
        typed: dict[str, Any] = {
            key: {"N": value} if key in ("level", "views") else {"S": value}
            for key, value in item.items()
        }
        client.put_item(TableName=TABLE, Item=typed)


def queries() -> list[dict[str, Any]]:
    asked: list[dict[str, Any]] = []
    for page in ("/", "/a", "/ab", "/zz"):
        key = {":p": {"S": page}}
        asked += [
            {"KeyConditionExpression": "page = :p", "ExpressionAttributeValues": key},
            {
                "KeyConditionExpression": "page = :p AND begins_with(bucket, :b)",
                "ExpressionAttributeValues": {**key, ":b": {"S": "ba"}},
                "ScanIndexForward": False,
            },
            {
                "KeyConditionExpression": "page = :p",
                "FilterExpression": "#v > :v",
                "ExpressionAttributeNames": {"#v": "views"},
                "ExpressionAttributeValues": {**key, ":v": {"N": "2"}},
            },
        ]
    for window in ("w", "a", "bc", "d"):  # "bc" must not match "bcd"
        asked.append(
            {
                "IndexName": "by-window",
                "KeyConditionExpression": "#w = :w",
                "ExpressionAttributeNames": {"#w": "window"},
                "ExpressionAttributeValues": {":w": {"S": window}},
            }
        )
    for level in ("1", "1.00", "10"):  # numbers compare by value: 1 == 1.0 == 1.00
        asked.append(
            {
                "IndexName": "by-level",
                "KeyConditionExpression": "#l = :l",
                "ExpressionAttributeNames": {"#l": "level"},
                "ExpressionAttributeValues": {":l": {"N": level}},
            }
        )
    return asked


def answers(client: Any) -> list[list[list[dict[str, Any]]]]:
    """Every query's pages, asked three items a page."""
    pages_of_each = []
    for query in queries():
        pages = []
        for page in client.get_paginator("query").paginate(
            TableName=TABLE, PaginationConfig={"PageSize": 3}, **query
        ):
            pages.append(page["Items"])
        pages_of_each.append(pages)
    return pages_of_each


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=ITEMS)
def test_every_query_answers_as_moto_does(dynamodb: Any, items: list[dict[str, str]]) -> None:
    # GIVEN a table with items of a few hash keys, index keys and numeric levels
    put_all(dynamodb, items)
    moto_query = Table.query
    try:
        # WHEN the same queries are asked with moto's Query and with the narrowed one
        expected = answers(dynamodb)
        moto_server.install()
        assert Table.query is not moto_query
        got = answers(dynamodb)
    finally:
        Table.query = moto_query  # type: ignore[method-assign]
    # THEN every answer is the same, page by page
    assert got == expected


def test_the_narrowed_query_looks_at_the_queried_bucket_only(dynamodb: Any) -> None:
    # GIVEN a table of 300 items under 30 hash keys
    put_all(dynamodb, [{"page": f"/p{n % 30}", "bucket": f"b{n}"} for n in range(300)])
    moto_query = Table.query
    looked_at: list[int] = []
    original_all_items = moto_server._NarrowedTable.all_items

    def counting(self: Any) -> list[Any]:
        found = original_all_items(self)
        looked_at.append(len(found))
        return found

    try:
        moto_server.install()
        moto_server._NarrowedTable.all_items = counting  # type: ignore[method-assign]
        # WHEN one hash key is queried
        items = dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="page = :p",
            ExpressionAttributeValues={":p": {"S": "/p7"}},
        )["Items"]
    finally:
        Table.query = moto_query  # type: ignore[method-assign]
        moto_server._NarrowedTable.all_items = original_all_items  # type: ignore[method-assign]
    # THEN moto's query went over that key's 10 items, not the table's 300
    assert len(items) == 10
    assert looked_at == [10]
