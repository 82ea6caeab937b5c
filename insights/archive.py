"""Reading the S3 archive back: raw events and dead letters (gzip JSON lines)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from clickstream.stores.archive_layout import (
    DEAD_LETTER_PREFIX,
    LINES_SUFFIX,
    RAW_PREFIX,
    hour_start_key,
    lines_of,
)


def listed(
    s3: Any, bucket: str, prefix: str, *, start_after: str | None = None
) -> list[dict[str, Any]]:
    """Every object under a prefix, as ListObjectsV2 describes it (Key, ETag, Size, ...);
    with `start_after`, only the keys after it: S3 lists keys in byte order, which is time
    order for the archive's zero-padded partitions, so a partition's path there skips every
    earlier hour without listing it."""
    found: list[dict[str, Any]] = []
    after = {"StartAfter": start_after} if start_after else {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **after):
        found += page.get("Contents", [])
    return found


def jsonl_keys_from_hour(s3: Any, bucket: str, prefix: str, since: datetime) -> list[str]:
    """The JSON-lines objects under `prefix` from `since`'s hour partition on."""
    return [
        entry["Key"]
        for entry in listed(s3, bucket, f"{prefix}/", start_after=hour_start_key(prefix, since))
        if entry["Key"].endswith(LINES_SUFFIX)
    ]


def listed_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [entry["Key"] for entry in listed(s3, bucket, prefix)]


def archived_lines(s3: Any, bucket: str, prefix: str) -> list[bytes]:
    """Every line of every gzip JSON-lines object under a prefix (tests, demo summary)."""
    lines: list[bytes] = []
    for key in listed_keys(s3, bucket, prefix + "/"):
        lines += object_lines(s3, bucket, key)
    return lines


def object_lines(s3: Any, bucket: str, key: str) -> list[bytes]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return lines_of(body)


def archived_events(s3: Any, bucket: str) -> list[bytes]:
    return archived_lines(s3, bucket, RAW_PREFIX)


def dead_letters(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in archived_lines(s3, bucket, DEAD_LETTER_PREFIX)]
