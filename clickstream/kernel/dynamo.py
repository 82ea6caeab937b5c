"""DynamoDB in one place: attribute-value JSON to plain Python values and back, and the
paginated reads (Query, Scan, BatchGetItem) every part of the project uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from clickstream.kernel.logging import get_logger
from clickstream.kernel.retry import Backoff, TryAgain, call_with_retries

_serializer = TypeSerializer()
_log = get_logger(component="dynamodb")
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


READ_PAGE_ITEMS: Final = 100
"""Items a Query or Scan page asks for (its `Limit`). DynamoDB bills the items read, not the
pages, so smaller pages cost more round trips only. They keep each request short where
answering is slow: moto's server took 17 s to answer one 1 MB page of 1,093 session items
(about 8 ms an item, spent in its response serializer) on a 2-core CI machine, past the
clients' 10 s read timeout; and a timed-out request that is retried makes moto do the
work again while it still does the first."""

_PAGES: Final = {"PaginationConfig": {"PageSize": READ_PAGE_ITEMS}}


def query_items(client: Any, **arguments: Any) -> list[dict[str, Any]]:
    """Every item one DynamoDB Query matches, page after page (`READ_PAGE_ITEMS` a page), as
    plain Python values."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("query").paginate(**(_PAGES | arguments)):
        items += [from_dynamo(item) for item in page.get("Items", [])]
    return items


def scan_table(client: Any, table: str) -> list[dict[str, Any]]:
    """Every item of `table`, strongly consistent, `READ_PAGE_ITEMS` a page."""
    items: list[dict[str, Any]] = []
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True, **_PAGES)
    for page in pages:
        items += [from_dynamo(item) for item in page.get("Items", [])]
    return items


BATCH_GET_KEYS: Final = 100
READ_BACKOFF: Final = Backoff(
    base_seconds=0.05, cap_seconds=2.0, deadline_seconds=None, max_attempts=8
)
"""The readers' policy for keys DynamoDB leaves unprocessed and for throttles."""


def batch_get(
    client: Any,
    keys: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    consistent: bool = False,
    backoff: Backoff = READ_BACKOFF,
    log: Any = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The items of (table, key) pairs that exist, as (table, item) with plain values, 100
    keys a BatchGetItem. Keys DynamoDB did not get to (throttling, response size) come back
    unprocessed and are asked again, alone, by the retry policy (`GaveUp` when it ends)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for start in range(0, len(keys), BATCH_GET_KEYS):
        request: dict[str, Any] = {}
        for table, key in keys[start : start + BATCH_GET_KEYS]:
            entry = request.setdefault(table, {"Keys": [], "ConsistentRead": consistent})
            entry["Keys"].append(to_dynamo(key))

        def get_round() -> None:
            nonlocal request
            response = client.batch_get_item(RequestItems=request)
            for table, rows in response.get("Responses", {}).items():
                found.extend((table, from_dynamo(row)) for row in rows)
            request = response.get("UnprocessedKeys") or {}
            if request:
                left = sum(len(entry["Keys"]) for entry in request.values())
                raise TryAgain(f"{left} keys unprocessed")

        call_with_retries(
            get_round,
            what="dynamodb:BatchGetItem",
            backoff=backoff,
            log=log or _log,
        )
    return found


def get_items(
    client: Any, table: str, keys: Sequence[Mapping[str, Any]], *, consistent: bool = False
) -> list[dict[str, Any]]:
    """The items of `keys` in `table` that exist (`batch_get`), as plain values."""
    return [
        item for _, item in batch_get(client, [(table, key) for key in keys], consistent=consistent)
    ]
