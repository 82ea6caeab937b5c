"""The live dashboard's reads: the archive's new objects, page-stats minutes, shard lag.

Each reader keeps what it read and asks again only for what may have changed: an archive
object is fetched again only when its ETag changes (a LIST of the window's hour partitions
per refresh finds the new and the rewritten ones); a page-stats minute is re-queried often
while young and rarely once settled. The figures are computed by the pure functions of
`insights.live`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from botocore.exceptions import ClientError

from clickstream.kernel.aws import shard_ids
from clickstream.kernel.events import minute_key
from clickstream.stores.archive_layout import DEAD_LETTER_PREFIX, RAW_PREFIX, partition_path
from clickstream.stores.page_stats import (
    PageStatsTable,
    hidden_rows,
    minute_rollups,
    rollups_for_minute,
)
from insights import live, progress
from insights.archive import object_lines

T = TypeVar("T")
READ_THREADS = 8
"""Archive objects fetched at once (the S3 client's pool holds 10 connections)."""


class ArchiveTail:
    """The archive objects of the last window: raw ones tallied, dead letters per reason.

    Each tally is kept with the ETag of the object it was read from, and the object read
    again once its ETag changes. A key is written again by a replay, and not always with the
    same bytes: a worker that archived a window and then lost its lease before checkpointing
    leaves the new owner to replay from the older checkpoint, and the new owner's first
    window, starting at the same record, is rarely the same length (KCL's batches and the
    cadences differ). A tally kept by key alone undercounted those objects for good."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._raw: dict[str, _Read[live.RawTally]] = {}
        self._dead: dict[str, _Read[Counter[tuple[str, str]]]] = {}

    def refresh(self, now: datetime, window: timedelta) -> None:
        hours = live.hours_covering(now - window, now)
        self._raw = self._read_changed(RAW_PREFIX, hours, self._raw, live.tally_raw)
        self._dead = self._read_changed(
            DEAD_LETTER_PREFIX, hours, self._dead, live.tally_dead_letters
        )

    def raw_tallies(self) -> list[live.RawTally]:
        return [read.tally for read in self._raw.values()]

    def dead_letters(self, since: datetime) -> Counter[str]:
        """Dead letters per reason that arrived from `since`'s minute on."""
        first = minute_key(since)
        reasons: Counter[str] = Counter()
        for read in self._dead.values():
            for (minute, reason), count in read.tally.items():
                if minute >= first:
                    reasons[reason] += count
        return reasons

    def _read_changed(
        self,
        prefix: str,
        hours: Iterable[datetime],
        kept: dict[str, _Read[T]],
        tally: Callable[[list[bytes]], T],
    ) -> dict[str, _Read[T]]:
        """The objects of these hours' partitions: those kept whose ETag is unchanged, the
        new and the rewritten ones read; objects of hours that left the window are dropped."""
        now_kept: dict[str, _Read[T]] = {}
        to_read: list[tuple[str, str]] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for hour in hours:
            partition = partition_path(prefix, hour) + "/"
            for page in paginator.paginate(Bucket=self._bucket, Prefix=partition):
                for entry in page.get("Contents", []):
                    key, etag = str(entry["Key"]), str(entry.get("ETag", ""))
                    known = kept.get(key)
                    if known is not None and known.etag == etag:
                        now_kept[key] = known
                    else:
                        to_read.append((key, etag))

        # If the object changes again between the LIST and the GET, the tally is of the newer
        # bytes under the older ETag: the next refresh reads it once more, nothing is lost.
        def read(key: str) -> T:
            return tally(object_lines(self._s3, self._bucket, key))

        # A dashboard opened on a busy hour has thousands of objects to read once: in
        # parallel, as S3 serves them best.
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            tallies = pool.map(read, [key for key, _ in to_read])
            for (key, etag), counted in zip(to_read, tallies, strict=True):
                now_kept[key] = _Read(etag, counted)
        return now_kept


@dataclass(frozen=True, slots=True)
class _Read(Generic[T]):
    """An archive object's tally and the ETag of the bytes it was read from."""

    etag: str
    tally: T


class PageMinutes:
    """The window's minutes' live page counters (every shard's rollup of a minute: one Query
    per minute, `consumer.core.rollup`), re-read on the cadence `live.minutes_to_read`
    sets."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        fresh_for: timedelta,
        settled_after: timedelta = timedelta(minutes=3),
        settled_per_refresh: int = 6,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._fresh_for = fresh_for
        self._settled_after = settled_after
        self._settled_per_refresh = settled_per_refresh
        self._items: dict[str, list[dict[str, Any]]] = {}
        self._truncated: dict[str, dict[tuple[str, str], frozenset[str]]] = {}
        """Minute -> its truncated rollups (`MinuteRollups.truncated`)."""
        self._read_at: dict[str, datetime] = {}

    def refresh(self, now: datetime, minutes: list[str]) -> None:
        due = live.minutes_to_read(
            self._read_at,
            minutes,
            now,
            fresh_for=self._fresh_for,
            settled_after=self._settled_after,
            settled_per_refresh=self._settled_per_refresh,
        )
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            found = pool.map(
                lambda minute: rollups_for_minute(self._dynamodb, self._table, minute),
                due,
            )
            for minute, rollups in zip(due, found, strict=True):
                read = minute_rollups(rollups)
                self._items[minute], self._truncated[minute] = read.rows, read.truncated
                self._read_at[minute] = now
        wanted = set(minutes)
        for minute in [m for m in self._items if m not in wanted]:
            del self._items[minute]
            del self._truncated[minute]
            del self._read_at[minute]

    def items(self) -> list[dict[str, Any]]:
        return [item for minute in sorted(self._items) for item in self._items[minute]]

    def hidden_rows(self, pages: Iterable[str]) -> list[dict[str, Any]]:
        """These pages' counts that truncated rollups leave out (`rollup.hidden_rows`), from
        their page-minute items: one Query per page over the minutes whose rollups are
        truncated, none at all while every rollup lists all its pages."""
        listed = {key: shown for keyed in self._truncated.values() for key, shown in keyed.items()}
        if not listed:
            return []
        first, last = min(minute for minute, _ in listed), max(minute for minute, _ in listed)
        table = PageStatsTable(self._dynamodb, self._table)
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            found = pool.map(
                lambda page: table.page_items_between(page, first, last),
                pages,
            )
            return hidden_rows((item for items in found for item in items), listed)


def shard_lags(kinesis: Any, dynamodb: Any, stream: str, lease_table: str) -> list[live.ShardLag]:
    """Each shard's checkpoint (KCL's lease table) against the stream: one GetRecords of one
    record just after it, whose `MillisBehindLatest` says how far the newest record is."""
    leases = progress.leases(dynamodb, lease_table)

    def lag_of(shard: str) -> live.ShardLag:
        lease = leases.get(shard)
        checkpoint = str(lease["checkpoint"]) if lease and "checkpoint" in lease else None
        owner = str(lease["leaseOwner"]) if lease and lease.get("leaseOwner") else None
        behind: int | None = None
        has_records = False
        if checkpoint is not None and checkpoint != "SHARD_END":
            try:
                behind, has_records = _read_after(kinesis, stream, shard, checkpoint)
            except ClientError:
                behind = None  # throttled or trimmed: said as "unknown", tried next time
        state = live.shard_state(checkpoint, behind, has_records)
        return live.ShardLag(shard, owner, checkpoint, behind, state)

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return list(pool.map(lag_of, shard_ids(kinesis, stream)))


def _read_after(kinesis: Any, stream: str, shard: str, checkpoint: str) -> tuple[int, bool]:
    if checkpoint.isdigit():
        position = {
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": checkpoint,
        }
    else:  # TRIM_HORIZON or LATEST: nothing processed yet
        position = {"ShardIteratorType": checkpoint}
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, **position)
    answer = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=1)
    return int(answer.get("MillisBehindLatest", 0)), bool(answer.get("Records"))
