"""The lake on the emulator's S3: closed hours compacted into Parquet exactly once, whatever
arrives late, is rewritten, expires, dies mid-way or runs twice at once; checked through the
`events` view against the producer's manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clickstream.kernel import aws
from clickstream.kernel.events import ClickEvent, EventType
from clickstream.kernel.pagekey import page_key
from clickstream.local.stack import LocalStackState
from clickstream.stores import archive_layout as layout
from clickstream.stores.positions import Position
from consumer.core.batch import archive_objects
from consumer.core.positioned import PositionedEvent
from insights import archive_views, lake, sql
from insights.compaction import Compactor
from insights.lake_store import LakeStore
from insights.settings import LakeSettings
from producer.manifest import Manifest
from tests.support.archive import put_objects, seed_hours, shard_name
from tests.support.manifest_gate import ManifestGate

START = datetime(2026, 11, 20, 9, 58, 30, tzinfo=UTC)
"""Seeded traffic from here runs about 2.5 minutes: into hour 10."""
HOURS = [datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC)]
SETTINGS = LakeSettings(memory_limit="256MB", threads=1)


@dataclass
class Lake:
    s3: Any
    location: sql.ArchiveLocation
    manifest: Manifest
    per_shard: list[list[PositionedEvent]]
    endpoint: str

    @property
    def store(self) -> LakeStore:
        return LakeStore(self.s3, self.location.bucket)

    def compactor(self, clock: datetime | None = None) -> Compactor:
        at = clock or datetime.now(UTC)
        return Compactor(self.s3, self.location, SETTINGS, clock=lambda: at)

    def compact_all(self, clock: datetime | None = None) -> list[lake.HourResult]:
        compactor = self.compactor(clock)
        return [compactor.compact(hour) for hour in HOURS]

    def events(self) -> tuple[int, int, Counter[tuple[str, str]]]:
        """Events in the `events` view, distinct (session, id) pairs, and per page and type."""
        connection = archive_views.connect(self.location, self.s3)
        _, [(count, distinct)] = sql.run(
            connection, "SELECT count(*), count(DISTINCT (session_id, event_id)) FROM events"
        )
        _, rows = sql.run(connection, "SELECT page, type, count(*) FROM events GROUP BY ALL")
        found: Counter[tuple[str, str]] = Counter()
        for page, kind, n in rows:
            found[(page_key(page), kind)] += n
        return count, distinct, found

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.location.bucket, Prefix=prefix)
        return sorted(entry["Key"] for entry in listed.get("Contents", []))


def expected(manifest: Manifest) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for page, minutes in manifest.pages.items():
        for truth in minutes.values():
            counts[(page, "page_view")] += truth.all_views
            counts[(page, "click")] += truth.all_clicks
    return +counts


def views_and_clicks(found: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return +Counter({key: n for key, n in found.items() if key[1] in {"page_view", "click"}})


@pytest.fixture
def seeded(local_stack: LocalStackState) -> Lake:
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"laketest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    manifest, per_shard = seed_hours(s3, bucket, seed=11, start=START, count=3000)
    location = sql.ArchiveLocation(
        bucket, local_stack.region, "test", "test", endpoint_url=local_stack.moto_endpoint
    )
    return Lake(s3, location, manifest, per_shard, local_stack.moto_endpoint)


def assert_exact(seeded: Lake, extra: int = 0) -> None:
    count, distinct, found = seeded.events()
    assert count == distinct == seeded.manifest.events + extra
    if not extra:
        assert views_and_clicks(found) == expected(seeded.manifest)


def test_compacted_hours_hold_exactly_the_manifests_events_in_parquet(seeded: Lake) -> None:
    # GIVEN two closed hours of raw objects from two shards
    raw_before = seeded.keys("raw/")
    # WHEN both are compacted
    results = seeded.compact_all()
    # THEN each hour is one Parquet file named by its manifest, and the view reads only them
    assert [r.outcome for r in results] == ["compacted", "compacted"]
    assert sum(r.events for r in results) == seeded.manifest.events
    assert all(r.files == 1 for r in results)
    reading = lake.reading(seeded.store.raw_objects(), seeded.store.manifests())
    assert reading.raw_keys == ()
    assert reading.compacted_hours == 2
    assert_exact(seeded)
    # AND the raw archive is untouched, Athena's symlinks name the published files
    assert seeded.keys("raw/") == raw_before
    for hour in HOURS:
        manifest, _ = seeded.store.manifest(hour)
        assert manifest is not None
        assert seeded.store.symlink(hour) == lake.symlink_text(seeded.location.bucket, manifest)
        assert {s.key for s in manifest.sources} == {o.key for o in seeded.store.raw_objects(hour)}
    # AND the rows are sorted by session, then time
    connection = archive_views.connect(seeded.location, seeded.s3)
    files = ", ".join(
        sql.quote(f"s3://{seeded.location.bucket}/{k}") for k in reading.parquet_files
    )
    _, rows = sql.run(
        connection, f"SELECT session_id, timestamp, event_id FROM read_parquet([{files}])"
    )
    first_hour = [r for r in rows[: results[0].events]]
    assert first_hour == sorted(first_hour)


def test_running_again_changes_nothing(seeded: Lake) -> None:
    seeded.compact_all()
    before = {
        key: seeded.s3.head_object(Bucket=seeded.location.bucket, Key=key)["ETag"]
        for key in seeded.keys("")
    }
    results = seeded.compact_all()
    assert [r.outcome for r in results] == ["up to date", "up to date"]
    after = {
        key: seeded.s3.head_object(Bucket=seeded.location.bucket, Key=key)["ETag"]
        for key in seeded.keys("")
    }
    assert after == before
    assert_exact(seeded)


def late_events(seeded: Lake, count: int, first: int = 0) -> list[PositionedEvent]:
    """New events of hour 9 from a shard's later positions: a late object."""
    late = []
    for n in range(first, first + count):
        event = ClickEvent(
            event_id=f"late-{n}",
            type=EventType.PAGE_VIEW,
            session_id=f"s-late-{n}",
            page="/late",
            timestamp=HOURS[0] + timedelta(minutes=20, seconds=n),
        )
        late.append(PositionedEvent(Position(10_000_000 + n), event, event.to_record(), ""))
    return late


def test_a_late_object_is_read_at_once_and_folded_in_by_the_next_run(seeded: Lake) -> None:
    seeded.compact_all()
    first, _ = seeded.store.manifest(HOURS[0])
    # GIVEN an object of hour 9 that arrives after the hour was compacted
    put_objects(seeded.s3, seeded.location.bucket, shard_name(0), late_events(seeded, 7))
    # THEN the view has its events at once (from the raw object), each once
    assert_exact(seeded, extra=7)
    # WHEN compaction runs again: hour 9 gets a new generation with them, hour 10 is left
    results = seeded.compact_all()
    assert [r.outcome for r in results] == ["compacted", "up to date"]
    reading = lake.reading(seeded.store.raw_objects(), seeded.store.manifests())
    assert reading.raw_keys == ()
    assert_exact(seeded, extra=7)
    # AND the replaced generation stays for queries that began before, then is swept
    assert first is not None
    old = first.stored_keys  # its events and its parts
    assert len(old) == len(first.files) + len(lake.PART_KINDS)
    assert set(old) <= set(seeded.keys("events/"))
    later = datetime.now(UTC) + timedelta(minutes=SETTINGS.grace_minutes + 1)
    swept = seeded.compactor(later).compact(HOURS[0])
    assert swept.outcome == "up to date"
    assert swept.swept == len(old)
    assert not set(old) & set(seeded.keys("events/"))
    assert_exact(seeded, extra=7)


def test_a_replay_that_rewrites_an_object_after_compaction_counts_each_event_once(
    seeded: Lake,
) -> None:
    seeded.compact_all()
    # GIVEN a replay after a lease move: shard 0's first object of hour 9 rewritten with the
    # first half of its records (the new owner flushed sooner), the rest under a new key
    events = [e for e in seeded.per_shard[0][:400] if e.event.timestamp < HOURS[1]]
    half = len(events) // 2
    put_objects(seeded.s3, seeded.location.bucket, shard_name(0), events[:half])
    put_objects(seeded.s3, seeded.location.bucket, shard_name(0), events[half:])
    # THEN the view reads the rewritten and the new object, not the Parquet rows of the old
    reading = lake.reading(seeded.store.raw_objects(), seeded.store.manifests())
    assert len(reading.changed_sources) == 1
    assert len(reading.raw_keys) == 2
    assert_exact(seeded)
    # AND after the next compaction, from Parquet alone
    assert [r.outcome for r in seeded.compact_all()] == ["compacted", "up to date"]
    assert_exact(seeded)


def test_rows_of_expired_raw_objects_are_kept_through_later_compactions(seeded: Lake) -> None:
    seeded.compact_all()
    # GIVEN hour 9's raw objects of shard 1 expired (the lifecycle rule) after compaction
    expired = [o.key for o in seeded.store.raw_objects(HOURS[0]) if shard_name(1) in o.key]
    seeded.store.delete(expired)
    assert_exact(seeded)
    # WHEN a late object makes the hour compact again
    put_objects(seeded.s3, seeded.location.bucket, shard_name(0), late_events(seeded, 3))
    result = seeded.compactor().compact(HOURS[0])
    # THEN the new generation carries the expired objects' rows, and a third one still does
    assert result.outcome == "compacted"
    assert_exact(seeded, extra=3)
    put_objects(seeded.s3, seeded.location.bucket, shard_name(1), late_events(seeded, 1, first=100))
    assert seeded.compactor().compact(HOURS[0]).outcome == "compacted"
    assert_exact(seeded, extra=4)


def compact_process(
    seeded: Lake, endpoint: str, *hours: datetime, options: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CLICKSTREAM_ARCHIVE_BUCKET": seeded.location.bucket,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": seeded.location.region,
        "CLICKSTREAM_LAKE_MEMORY_LIMIT": "256MB",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clickstream.cli",
            "compact",
            *[f"--hour={hour:%Y-%m-%dT%H}" for hour in hours],
            *options,
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.fixture
def gate(seeded: Lake) -> Iterator[ManifestGate]:
    with ManifestGate(seeded.endpoint) as proxy:
        yield proxy


def test_a_compaction_killed_between_writing_and_publishing_leaves_each_event_once(
    seeded: Lake, gate: ManifestGate
) -> None:
    seeded.compact_all()
    put_objects(seeded.s3, seeded.location.bucket, shard_name(0), late_events(seeded, 5))
    # GIVEN a compaction of hour 9 that wrote its new generation and is about to publish it
    process = compact_process(seeded, gate.endpoint, HOURS[0])
    try:
        gate.wait_for_held(1)
        written = seeded.keys(layout.lake_prefix(HOURS[0]))
        # WHEN it is killed with SIGKILL right there
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        gate.drop_all()
    assert process.returncode == -signal.SIGKILL
    # THEN its files are there but named by no manifest, and every event is read once
    first, _ = seeded.store.manifest(HOURS[0])
    assert first is not None
    orphans = set(written) - set(first.stored_keys)
    assert orphans
    assert_exact(seeded, extra=5)
    # AND the run after it publishes, and sweeps the orphans once they are old
    assert seeded.compactor().compact(HOURS[0]).outcome == "compacted"
    assert_exact(seeded, extra=5)
    later = datetime.now(UTC) + timedelta(minutes=SETTINGS.grace_minutes + 1)
    seeded.compactor(later).compact(HOURS[0])
    assert not orphans & set(seeded.keys("events/"))
    assert_exact(seeded, extra=5)


def test_two_compactions_of_one_hour_at_once_publish_once(seeded: Lake, gate: ManifestGate) -> None:
    # GIVEN two compactions of hour 9 that both wrote their generation
    processes = [compact_process(seeded, gate.endpoint, HOURS[0]) for _ in range(2)]
    try:
        gate.wait_for_held(2)
        # WHEN their manifests reach S3 one after the other
        gate.release_one()
        gate.release_one()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    # THEN one published, the other lost the race and deleted its own files
    outcomes = sorted(json.loads(out)["hours"][0]["outcome"] for out, _ in outputs)
    assert outcomes == ["compacted", "lost race"], [err.decode()[-2000:] for _, err in outputs]
    manifest, _ = seeded.store.manifest(HOURS[0])
    assert manifest is not None
    assert set(seeded.keys(layout.lake_prefix(HOURS[0]))) == set(manifest.stored_keys)
    assert_exact(seeded)


def test_the_events_view_of_an_archive_never_compacted_is_the_raw_archive(seeded: Lake) -> None:
    reading = lake.reading(seeded.store.raw_objects(), seeded.store.manifests())
    assert reading.compacted_hours == 0
    assert reading.raw_only_hours == 2
    assert_exact(seeded)


def test_an_hour_with_no_raw_objects_is_empty(seeded: Lake) -> None:
    # (an empty bucket's views: tests/functional/test_sql.py)
    empty_hour = HOURS[0] - timedelta(hours=5)
    assert seeded.compactor().compact(empty_hour).outcome == "empty"
    assert seeded.keys(layout.lake_prefix(empty_hour)) == []


def test_an_hour_that_cannot_be_compacted_does_not_stop_the_others(seeded: Lake) -> None:
    # GIVEN hour 9's manifest overwritten with something that is not one
    seeded.s3.put_object(
        Bucket=seeded.location.bucket, Key=layout.manifest_key(HOURS[0]), Body=b"{not json"
    )
    # WHEN both hours are compacted in one run
    process = compact_process(seeded, seeded.endpoint, HOURS[0], HOURS[1])
    output, errors = process.communicate(timeout=120)
    # THEN hour 10 is compacted, hour 9 is reported failed with why, and the exit says so
    assert process.returncode == 1, errors.decode()[-2000:]
    outcomes = {row["hour"]: row for row in json.loads(output)["hours"]}
    assert outcomes["2026-11-20T10"]["outcome"] == "compacted"
    assert outcomes["2026-11-20T09"]["outcome"] == "failed"
    assert "does not parse" in outcomes["2026-11-20T09"]["notes"][0]


def test_compact_folds_in_a_marked_hour_however_old_and_rolls_its_day_up(seeded: Lake) -> None:
    seeded.compact_all()
    # GIVEN an object archived late into hour 9 (weeks ago), marked as the workers mark it
    late = late_events(seeded, 5)
    objects = archive_objects(shard_name(0), late, [])
    for item in objects:
        stored = seeded.s3.put_object(Bucket=seeded.location.bucket, Key=item.key, Body=item.body)
        mark = layout.late_mark_key(item.key, stored["ETag"])
        seeded.s3.put_object(Bucket=seeded.location.bucket, Key=mark, Body=b"")
    # WHEN the scheduled compaction runs over the last hour only
    process = compact_process(seeded, seeded.endpoint, options=("--since", "1h"))
    output, errors = process.communicate(timeout=180)
    assert process.returncode == 0, errors.decode()[-2000:]
    found = json.loads(output)
    # THEN hour 9 is compacted again with the late events, its mark cleared, and its day
    # rolled up (hour 10 is compacted: the day has no hour with events left out)
    hours = {row["hour"]: row for row in found["hours"]}
    assert hours["2026-11-20T09"]["outcome"] == "compacted"
    assert hours["2026-11-20T09"]["marks_cleared"] == len(objects)
    assert seeded.store.late_marks(HOURS[0]) == []
    assert {d["day"]: d["outcome"] for d in found["days"]}["2026-11-20"] == "rolled up"
    assert_exact(seeded, extra=5)


def test_listing_hours_side_by_side_gives_what_one_listing_gives(
    local_stack: LocalStackState,
) -> None:
    from insights.archive import listed, listed_by_hour

    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"listing-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    # GIVEN more objects than one page holds, over 30 hours, one hour empty, one before the
    # range, and two hours past the listing's end (a clock ahead)
    first = datetime(2026, 11, 20, 0, tzinfo=UTC)
    hours = [first + timedelta(hours=n) for n in range(-1, 33) if n != 7]
    keys = [f"{layout.raw_prefix(hour)}shard-{n:04d}.jsonl.gz" for hour in hours for n in range(36)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))
    until = first + timedelta(hours=29, minutes=30)
    # WHEN listed from the first hour page after page, and hour by hour side by side
    one = listed(s3, bucket, "raw/", start_after=layout.hour_start_key("raw", first))
    side = listed_by_hour(s3, bucket, "raw", first, until)
    # THEN both give every key from the first hour on, in order, the later hours too
    assert len(one) > 1000
    assert [entry["Key"] for entry in side] == [entry["Key"] for entry in one]
    assert [entry["Key"] for entry in one] == sorted(
        k for k in keys if k >= layout.raw_prefix(first)
    )
    # AND a listing that fits one page is that page
    small = listed_by_hour(s3, bucket, "raw", first + timedelta(hours=31), until)
    assert [e["Key"] for e in small] == [
        k for k in keys if k >= layout.raw_prefix(first + timedelta(hours=31))
    ]
