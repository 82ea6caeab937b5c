"""Reading the S3 archive back: raw events and dead letters (gzip JSON lines)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clickstream.stores.archive_layout import (
    DEAD_LETTER_PREFIX,
    LINES_SUFFIX,
    RAW_PREFIX,
    hour_of,
    hour_partition,
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


HOURS_LISTED_TOGETHER: Final = 32
"""Hour partitions listed side by side: one LIST per hour, many at once, rather than a month's
keys page after page (173 pages of 1,000 for a month of four shards' minute objects)."""


def listed_by_hour(
    s3: Any, bucket: str, prefix: str, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """`listed(prefix, start_after=since's hour)`, in key order. What one page holds is
    listed as one page; more, the hours from where the first page ends to `until`'s are
    listed side by side, and what lies after `until`'s hour (a clock ahead) by one listing
    more."""
    first = s3.list_objects_v2(
        Bucket=bucket, Prefix=f"{prefix}/", StartAfter=hour_start_key(prefix, since)
    )
    entries: list[dict[str, Any]] = first.get("Contents", [])
    if not first.get("IsTruncated"):
        return entries
    cut = hour_of(entries[-1]["Key"]) or since
    before = hour_start_key(prefix, cut)
    kept = [entry for entry in entries if entry["Key"] < before]
    hours = []
    hour = cut.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour <= until:
        hours.append(hour)
        hour += timedelta(hours=1)
    with ThreadPoolExecutor(max_workers=HOURS_LISTED_TOGETHER) as pool:
        pages = list(
            pool.map(lambda at: listed(s3, bucket, f"{prefix}/{hour_partition(at)}/"), hours)
        )
    tail = listed(s3, bucket, f"{prefix}/", start_after=hour_start_key(prefix, hour))
    return kept + [entry for page in pages for entry in page] + tail


def listed_between(
    s3: Any, bucket: str, prefix: str, first: datetime, last: datetime
) -> list[dict[str, Any]]:
    """The objects under `prefix` in the hour partitions from `first`'s to `last`'s: one
    listing from `first`'s partition, page after page until a key passes `last`'s (a run of
    empty hours costs one LIST)."""
    end = hour_start_key(prefix, last + timedelta(hours=1))
    # Under the run's common partition (its month's, its day's): S3 looks at fewer keys.
    common = f"{prefix}/"
    for part, other in zip(
        hour_partition(first).split("/"), hour_partition(last).split("/"), strict=True
    ):
        if part != other:
            break
        common += f"{part}/"
    found: list[dict[str, Any]] = []
    request = {"Bucket": bucket, "Prefix": common, "StartAfter": hour_start_key(prefix, first)}
    while True:
        page = s3.list_objects_v2(**request)
        entries = page.get("Contents", [])
        found += [entry for entry in entries if entry["Key"] < end]
        if not page.get("IsTruncated") or (entries and entries[-1]["Key"] >= end):
            return found
        request["ContinuationToken"] = page["NextContinuationToken"]


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
