"""The lake's S3 edge: listing raw objects and generation files, reading and publishing
manifests (conditionally), symlinks and deletes. The decisions are `insights.lake`'s."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from clickstream.kernel.aws import object_or_none
from clickstream.kernel.errors import InsightsError
from clickstream.stores import archive_layout as layout
from insights import lake
from insights.archive import HOURS_LISTED_TOGETHER, listed, listed_between, listed_by_hour
from insights.sql import ArchiveLocation

LOST_RACE_CODES: Final = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})
"""S3's answers to a conditional put whose condition no longer holds: another compaction
published the hour first (412), or is publishing it at this moment (409)."""


class LakeError(InsightsError):
    """The lake cannot be read or compacted: a manifest that does not parse, a bucket refusing."""


def s3_client(location: ArchiveLocation) -> Any:
    return boto3.client(
        "s3",
        region_name=location.region,
        aws_access_key_id=location.access_key_id,
        aws_secret_access_key=location.secret_access_key,
        aws_session_token=location.session_token,
        endpoint_url=location.endpoint_url,
        # Listing hours side by side and reading manifests share the client's connections.
        config=Config(
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=HOURS_LISTED_TOGETHER,
        ),
    )


class LakeStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def _list(self, prefix: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """The objects under `prefix` (with `since`: of its hour partitions from `since`'s,
        the hours up to now listed side by side)."""
        if since is None:
            return listed(self._s3, self.bucket, prefix)
        return listed_by_hour(self._s3, self.bucket, prefix.rstrip("/"), since, datetime.now(UTC))

    def raw_objects(
        self, hour: datetime | None = None, *, since: datetime | None = None
    ) -> list[lake.RawObject]:
        """The raw archive's objects of one hour, of the hours from `since`'s, or of all."""
        prefix = layout.raw_prefix(hour) if hour else f"{layout.RAW_PREFIX}/"
        return [
            lake.RawObject(entry["Key"], entry["ETag"].strip('"'), entry["Size"])
            for entry in self._list(prefix, None if hour else since)
            if entry["Key"].endswith(layout.LINES_SUFFIX)
        ]

    def raw_objects_of(self, hours: list[datetime], *, after: datetime) -> list[lake.RawObject]:
        """The raw objects of `hours`, and of every hour after `after`'s (hours not compacted
        yet, a clock ahead): what a reader lists beside the manifests it trusts alone
        (`lake.hours_to_list`). Each run of consecutive hours is one listing, side by side."""
        runs: list[tuple[datetime, datetime]] = []
        for hour in sorted(h for h in hours if h <= after):
            if runs and runs[-1][1] + timedelta(hours=1) == hour:
                runs[-1] = (runs[-1][0], hour)
            else:
                runs.append((hour, hour))
        with ThreadPoolExecutor(max_workers=HOURS_LISTED_TOGETHER) as pool:
            pages = list(
                pool.map(
                    lambda run: listed_between(
                        self._s3, self.bucket, layout.RAW_PREFIX, run[0], run[1]
                    ),
                    runs,
                )
            )
        pages.append(self._list(f"{layout.RAW_PREFIX}/", after + timedelta(hours=1)))
        return [
            lake.RawObject(entry["Key"], entry["ETag"].strip('"'), entry["Size"])
            for page in pages
            for entry in page
            if entry["Key"].endswith(layout.LINES_SUFFIX)
        ]

    def late_marks(
        self,
        hour: datetime | None = None,
        *,
        since: datetime | None = None,
        day: datetime | None = None,
    ) -> list[tuple[str, str]]:
        """The workers' late marks (`archive_layout.late_mark_key`) as (raw key, ETag): of one
        hour, of one day, or of the hours from `since`'s."""
        prefix = (
            f"{layout.LATE_PREFIX}/{layout.hour_partition(hour)}/"
            if hour
            else f"{layout.LATE_PREFIX}/{layout.day_partition(day)}/"
            if day
            else None
        )
        entries = (
            self._list(prefix)
            if prefix
            else listed(
                self._s3,
                self.bucket,
                f"{layout.LATE_PREFIX}/",
                start_after=layout.hour_start_key(layout.LATE_PREFIX, since) if since else None,
            )
        )
        return [mark for entry in entries if (mark := layout.marked_object(entry["Key"]))]

    def clear_marks(self, marks: list[tuple[str, str]]) -> None:
        self.delete([layout.late_mark_key(key, etag) for key, etag in marks])

    def verdict_keys(self, *, since: datetime | None = None) -> list[str]:
        """The bot rule's verdict objects, or those of sessions started from `since`'s hour
        on (`archive_layout.verdict_key`)."""
        return [
            entry["Key"]
            for entry in self._list(f"{layout.VERDICT_PREFIX}/", since)
            if entry["Key"].endswith(layout.LINES_SUFFIX)
        ]

    def lake_files(self, hour: datetime) -> list[lake.StoredFile]:
        return [
            lake.StoredFile(entry["Key"], entry["LastModified"])
            for entry in self._list(layout.lake_prefix(hour))
        ]

    def generation_files(self, hour: datetime, generation: str) -> list[tuple[str, int]]:
        prefix = f"{layout.lake_prefix(hour)}{generation}/"
        return sorted((entry["Key"], entry["Size"]) for entry in self._list(prefix))

    def manifest(self, hour: datetime) -> tuple[lake.HourManifest | None, str | None]:
        """The hour's published manifest and its ETag (for the conditional put), or none."""
        answer = object_or_none(self._s3, self.bucket, layout.manifest_key(hour))
        if answer is None:
            return None, None
        return _parse(answer["Body"].read(), hour), answer["ETag"].strip('"')

    def manifests(
        self, *, since: datetime | None = None, rolled_up: frozenset[datetime] = frozenset()
    ) -> list[lake.HourManifest]:
        """Every published manifest (read side), or those of the hours from `since`'s,
        fetched side by side; none of the days in `rolled_up` (their rollups stand in)."""
        return self.fetch_manifests(self.manifest_keys(since=since), rolled_up=rolled_up)

    def manifest_keys(self, *, since: datetime | None = None) -> list[str]:
        """The published manifests' keys, or those of the hours from `since`'s."""
        return [
            entry["Key"]
            for entry in self._list(f"{layout.MANIFEST_PREFIX}/", since)
            if entry["Key"].endswith(layout.MANIFEST_NAME)
        ]

    def fetch_manifests(
        self, keys: list[str], *, rolled_up: frozenset[datetime] = frozenset()
    ) -> list[lake.HourManifest]:
        """These manifests (`manifest_keys`) but those of the days in `rolled_up`, fetched
        side by side."""
        keys = [key for key in keys if layout.day_of(key) not in rolled_up]

        def fetch(key: str) -> lake.HourManifest:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return _parse(body, layout.hour_of(key))

        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(fetch, keys))

    def publish(self, manifest: lake.HourManifest, replacing_etag: str | None) -> bool:
        """Put the manifest if the hour's manifest is still the one read (`replacing_etag`,
        or none at all): False when another compaction published first."""
        condition = {"IfMatch": replacing_etag} if replacing_etag else {"IfNoneMatch": "*"}
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=layout.manifest_key(manifest.hour),
                Body=manifest.model_dump_json(indent=1).encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if error.get("Code") in LOST_RACE_CODES or status in {"409", "412"}:
                return False
            raise
        return True

    def day_manifest(self, day: datetime) -> lake.DayManifest | None:
        answer = object_or_none(self._s3, self.bucket, layout.day_key(day, layout.MANIFEST_NAME))
        return None if answer is None else _parse_day(answer["Body"].read(), day)

    def day_manifests(self, *, since: datetime) -> list[lake.DayManifest]:
        """The day rollups of the days from `since`'s (one listing, fetched side by side)."""
        start = f"{layout.DAY_PREFIX}/{layout.day_partition(layout.start_of_day(since))}"
        keys = [
            entry["Key"]
            for entry in listed(self._s3, self.bucket, f"{layout.DAY_PREFIX}/", start_after=start)
            if entry["Key"].endswith(f"/{layout.MANIFEST_NAME}")
        ]

        def fetch(key: str) -> lake.DayManifest:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return _parse_day(body, layout.day_of(key))

        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(fetch, keys))

    def put_day_manifest(self, manifest: lake.DayManifest) -> None:
        self._s3.put_object(
            Bucket=self.bucket,
            Key=layout.day_key(manifest.day, layout.MANIFEST_NAME),
            Body=manifest.model_dump_json(indent=1).encode(),
            ContentType="application/json",
        )

    def withdraw_day(self, day: datetime) -> lake.DayManifest | None:
        """Delete the day's rollup manifest (before one of its hours is published again):
        the rollup it was, if any."""
        found = self.day_manifest(day)
        if found is not None:
            self._s3.delete_object(
                Bucket=self.bucket, Key=layout.day_key(day, layout.MANIFEST_NAME)
            )
        return found

    def day_files(self, day: datetime) -> list[lake.StoredFile]:
        return [
            lake.StoredFile(entry["Key"], entry["LastModified"])
            for entry in self._list(f"{layout.DAY_PREFIX}/{layout.day_partition(day)}/")
            if not entry["Key"].endswith(f"/{layout.MANIFEST_NAME}")
        ]

    def symlink(self, hour: datetime) -> str | None:
        answer = object_or_none(self._s3, self.bucket, layout.symlink_key(hour))
        return None if answer is None else str(answer["Body"].read().decode())

    def put_symlink(self, manifest: lake.HourManifest) -> None:
        """Athena's symlinks of the hour: its parts' first, its events' last (the one a
        later run compares with the manifest: when it is current, so are the others)."""
        for kind, part in manifest.parts.items():
            self._s3.put_object(
                Bucket=self.bucket,
                Key=layout.parts_symlink_key(kind, manifest.hour),
                Body=f"s3://{self.bucket}/{part.key}\n".encode(),
                ContentType="text/plain",
            )
        self._s3.put_object(
            Bucket=self.bucket,
            Key=layout.symlink_key(manifest.hour),
            Body=lake.symlink_text(self.bucket, manifest).encode(),
            ContentType="text/plain",
        )

    def size(self, key: str) -> int:
        return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            answer = self._s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise LakeError(f"cannot delete {first['Key']}: {first.get('Code')}")


def _parse(body: bytes, hour: datetime | None) -> lake.HourManifest:
    try:
        manifest = lake.HourManifest.model_validate(json.loads(body))
    except ValueError as exc:
        raise LakeError(f"the lake's manifest of {hour} does not parse: {exc}") from None
    if hour is not None and layout.start_of_hour(manifest.hour) != hour:
        raise LakeError(f"the lake's manifest under {hour} names the hour {manifest.hour}")
    return manifest


def _parse_day(body: bytes, day: datetime | None) -> lake.DayManifest:
    try:
        manifest = lake.DayManifest.model_validate(json.loads(body))
    except ValueError as exc:
        raise LakeError(f"the lake's rollup of {day} does not parse: {exc}") from None
    if day is not None and manifest.day != day:
        raise LakeError(f"the lake's rollup under {day} names the day {manifest.day}")
    return manifest
