"""Conditional writes of whole items, the way every store is written.

Items are written whole ("absolute state"), each carrying the position of the last record it
includes; the stores' write conditions refuse any write that would move that position
backwards, which is also what fences off a worker that lost its lease but still flushes (a
zombie). Equal positions are allowed: the same flush written twice (a retried put) is the
same item. An alert is written only where none is (raised once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from botocore.exceptions import ClientError

from clickstream.kernel.dynamo import to_dynamo
from clickstream.kernel.retry import Backoff, call_with_retries, error_code

WRITTEN: Final = "written"
REFUSED: Final = "refused"
"""The condition failed: the stored item is newer (or, for an alert, exists)."""
CONDITION_NAMES: Final = {"#position": "position", "#shard": "shard_id", "#rule": "rule"}


def put_guarded(
    client: Any,
    table: str,
    item: Mapping[str, Any],
    condition: str,
    values: Mapping[str, Any] | None,
    *,
    backoff: Backoff,
    log: Any,
) -> str:
    """Put `item` if `condition` holds: `WRITTEN`, `REFUSED`, or DynamoDB's reason for
    refusing the item as invalid (a ValidationException: retrying cannot fix it, and the
    caller dead-letters what made it); throttles and 5xx are retried by the policy."""
    names = {name: attr for name, attr in CONDITION_NAMES.items() if name in condition}
    request: dict[str, Any] = {
        "TableName": table,
        "Item": to_dynamo(item),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
    }
    if values:
        request["ExpressionAttributeValues"] = to_dynamo(values)

    def put() -> str:
        try:
            client.put_item(**request)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return REFUSED
            if error_code(exc) == "ValidationException":
                message = str(exc.response.get("Error", {}).get("Message", exc))
                return f"DynamoDB: {message}"[:300]
            raise
        return WRITTEN

    return call_with_retries(put, what=f"dynamodb:PutItem {table}", backoff=backoff, log=log)
