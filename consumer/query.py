"""Reading the results back: page stats merged over shards, sessions, dead letters, progress.

Page stats are stored one item per (page, minute, shard); every reader here sums the shards'
items (exact, since a session is counted on one shard only). The pure merge functions are
separate from the reads so they are tested without AWS.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from consumer.batch import DEAD_LETTER_PREFIX, RAW_PREFIX
from consumer.dynamo import from_dynamo
from consumer.items import page_sort_key


@dataclass(frozen=True, slots=True)
class PageTotals:
    page: str
    views: int
    clicks: int
    sessions: int
    """Distinct sessions per minute, summed over the minutes shown."""
    minutes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_pages(items: Iterable[Mapping[str, Any]]) -> list[PageTotals]:
    """Sum per-shard page-minute items into one row per page, busiest first."""
    views: Counter[str] = Counter()
    clicks: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    minutes: dict[str, set[str]] = {}
    for item in items:
        page = str(item["page"])
        views[page] += int(item.get("views", 0))
        clicks[page] += int(item.get("clicks", 0))
        sessions[page] += int(item.get("sessions", 0))
        minutes.setdefault(page, set()).add(str(item["window"]))
    rows = [
        PageTotals(page, views[page], clicks[page], sessions[page], len(minutes[page]))
        for page in minutes
    ]
    return sorted(rows, key=lambda row: (-row.views, -row.clicks, row.page))


def merge_page_minutes(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """page -> minute -> {views, clicks, sessions}, shards summed (the manifest's shape)."""
    merged: dict[str, dict[str, dict[str, int]]] = {}
    for item in items:
        bucket = merged.setdefault(str(item["page"]), {}).setdefault(
            str(item["window"]), {"views": 0, "clicks": 0, "sessions": 0}
        )
        for field in ("views", "clicks", "sessions"):
            bucket[field] += int(item.get(field, 0))
    return merged


def scan_table(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += [from_dynamo(item) for item in page.get("Items", [])]
    return items


def query_items(client: Any, **arguments: Any) -> list[dict[str, Any]]:
    """Every item one DynamoDB Query matches, page after page, as plain Python values."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("query").paginate(**arguments):
        items += [from_dynamo(item) for item in page.get("Items", [])]
    return items


def page_items_for_minute(
    client: Any, table: str, minute: str, shard_ids: Iterable[str]
) -> list[dict[str, Any]]:
    """One query of the `by-window` index per shard (shards include closed ones)."""
    items: list[dict[str, Any]] = []
    for shard_id in shard_ids:
        items += query_items(
            client,
            TableName=table,
            IndexName="by-window",
            KeyConditionExpression="window_shard = :key",
            ExpressionAttributeValues={":key": {"S": page_sort_key(minute, shard_id)}},
        )
    return items


def shard_ids(kinesis: Any, stream: str, *, open_only: bool = False) -> list[str]:
    """The stream's shards; `open_only` leaves out those a reshard closed."""
    ids: list[str] = []
    for page in kinesis.get_paginator("list_shards").paginate(StreamName=stream):
        ids += [
            shard["ShardId"]
            for shard in page.get("Shards", [])
            if not open_only or "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})
        ]
    return ids


def session(client: Any, table: str, session_id: str) -> dict[str, Any] | None:
    response = client.get_item(
        TableName=table, Key={"session_id": {"S": session_id}}, ConsistentRead=True
    )
    item = response.get("Item")
    return None if item is None else from_dynamo(item)


def archived_lines(s3: Any, bucket: str, prefix: str) -> list[bytes]:
    """Every line of every gzip JSON-lines object under a prefix (tests, demo summary)."""
    lines: list[bytes] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for entry in page.get("Contents", []):
            lines += object_lines(s3, bucket, entry["Key"])
    return lines


def object_lines(s3: Any, bucket: str, key: str) -> list[bytes]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [line for line in gzip.decompress(body).split(b"\n") if line]


def archived_events(s3: Any, bucket: str) -> list[bytes]:
    return archived_lines(s3, bucket, RAW_PREFIX)


def dead_letters(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in archived_lines(s3, bucket, DEAD_LETTER_PREFIX)]


def lease_checkpoints(client: Any, lease_table: str) -> dict[str, str]:
    """shard id -> KCL's checkpoint (a sequence number, or TRIM_HORIZON / SHARD_END ...);
    empty while KCL has not created its lease table yet."""
    try:
        rows = scan_table(client, lease_table)
    except client.exceptions.ResourceNotFoundException:
        return {}
    return {
        str(item["leaseKey"]): str(item.get("checkpoint", ""))
        for item in rows
        if "leaseKey" in item
    }


def lease_owners(client: Any, lease_table: str) -> dict[str, str]:
    """shard id -> the worker holding its lease now (absent while unassigned)."""
    return {
        str(item["leaseKey"]): str(item["leaseOwner"])
        for item in scan_table(client, lease_table)
        if "leaseKey" in item and item.get("leaseOwner")
    }


def last_sequences(per_run: Iterable[Mapping[str, str] | None]) -> dict[str, str]:
    """The last sequence number written to each shard over several runs (their manifests'
    `last_sequence_per_shard`): where a consumer that read everything has checkpointed."""
    last: dict[str, str] = {}
    for run in per_run:
        for shard, sequence in (run or {}).items():
            last[shard] = max(last.get(shard, "0"), sequence, key=int)
    return last


def caught_up(checkpoints: Mapping[str, str], last_sequences: Mapping[str, str]) -> bool:
    """Whether every shard's checkpoint has reached the last sequence number written to it."""
    for shard_id, last in last_sequences.items():
        checkpoint = checkpoints.get(shard_id, "")
        if checkpoint == "SHARD_END":
            continue
        if not checkpoint.isdigit() or int(checkpoint) < int(last):
            return False
    return True


def alerts(
    client: Any, table: str, *, since: str | None = None, rules: Iterable[str]
) -> list[dict[str, Any]]:
    """Alerts of the given rules whose window is `since` (a minute) or later, oldest first.

    One query per rule: the sort key starts with the window, so `since` is a key condition.
    """
    found: list[dict[str, Any]] = []
    for rule in rules:
        condition = "#rule = :rule"
        values: dict[str, Any] = {":rule": {"S": rule}}
        if since:
            condition += " AND window_subject >= :since"
            values[":since"] = {"S": since}
        found += query_items(
            client,
            TableName=table,
            KeyConditionExpression=condition,
            ExpressionAttributeNames={"#rule": "rule"},
            ExpressionAttributeValues=values,
        )
    return sorted(found, key=lambda item: (str(item["window"]), str(item["rule"])))
