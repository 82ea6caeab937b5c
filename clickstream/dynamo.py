"""DynamoDB in one place: attribute-value JSON to plain Python values and back, and the
paginated reads (Query, Scan) every part of the project uses."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def plain(value: Any) -> Any:
    """Decimals as ints (when whole) or floats, sets as sorted lists, boto3's Binary as bytes,
    recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, set):
        return sorted(plain(item) for item in value)
    if isinstance(value, Binary):
        wrapped: Any = value  # boto3-stubs' Binary does not declare `value`, which boto3 sets
        return bytes(wrapped.value)
    return value


def from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: plain(_deserializer.deserialize(value)) for key, value in item.items()}


def to_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items()}


def query_items(client: Any, **arguments: Any) -> list[dict[str, Any]]:
    """Every item one DynamoDB Query matches, page after page, as plain Python values."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("query").paginate(**arguments):
        items += [from_dynamo(item) for item in page.get("Items", [])]
    return items


def scan_table(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += [from_dynamo(item) for item in page.get("Items", [])]
    return items
