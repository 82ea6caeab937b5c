"""The record processor through amazon_kclpy's protocol code (JSON lines, no daemon), writing
to the local stack's real DynamoDB tables and S3 bucket (moto on loopback).

Each test uses a shard id and a seed of its own, and reads back only that shard's items, so
tests share the session's stack without seeing each other's data.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clickstream.kernel import aws, dynamo
from clickstream.kernel.logging import get_logger
from clickstream.kernel.retry import Backoff
from clickstream.local.stack import LocalStackState
from clickstream.stores.page_stats import (
    ROLLUP_PAGE,
    MinuteRollup,
    PageMinuteState,
    page_minute_items,
)
from clickstream.stores.positions import Position
from clickstream.tools.verify import Results, verify
from consumer.core.aggregate import Changes
from consumer.core.pending import Cadences
from consumer.failures import EXIT_FLUSH_FAILED
from consumer.processor import ClickstreamProcessor
from consumer.sinks import DynamoStateStore, KclLeaseTable, S3Archive, SaveOutcome, Tables
from consumer.testing import PassThroughStore
from insights import archive
from producer.generator import TrafficProfile, generate
from producer.manifest import Manifest, build_manifest
from tests.support.protocol import ProtocolRecord, ScriptedDaemon, protocol_records

NOW = datetime.now(UTC).replace(microsecond=0)


class Harness:
    def __init__(self, state: LocalStackState, pool: ThreadPoolExecutor) -> None:
        self.state = state
        self.pool = pool
        self.dynamodb = aws.local_client("dynamodb", state.moto_endpoint, state.region)
        self.s3 = aws.local_client("s3", state.moto_endpoint, state.region)
        self.tables = Tables(
            sessions=state.outputs["SessionsTableName"],
            page_stats=state.outputs["PageStatsTableName"],
        )
        self.bucket = state.outputs["ArchiveBucketName"]
        self.backoff = Backoff(base_seconds=0.01, cap_seconds=0.05, deadline_seconds=2.0)

    def store(self) -> DynamoStateStore:
        return DynamoStateStore(
            self.dynamodb,
            self.tables,
            retention=timedelta(days=1),
            backoff=self.backoff,
            log=get_logger(component="test"),
            pool=self.pool,
        )

    def archive(self, bucket: str | None = None) -> S3Archive:
        return S3Archive(
            self.s3,
            bucket or self.bucket,
            backoff=self.backoff,
            log=get_logger(component="test"),
            pool=self.pool,
        )

    def lease_table(self) -> str:
        """A lease table shaped like KCL's (hash key leaseKey), for ownership tests."""
        name = f"leases-{uuid.uuid4().hex[:8]}"
        self.dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        return name

    def set_lease_owner(self, table: str, shard_id: str, owner: str) -> None:
        self.dynamodb.put_item(
            TableName=table, Item={"leaseKey": {"S": shard_id}, "leaseOwner": {"S": owner}}
        )

    def lease(self, table: str, worker_id: str) -> KclLeaseTable:
        return KclLeaseTable(
            self.dynamodb, table, worker_id, backoff=self.backoff, log=get_logger(component="test")
        )

    def processor(
        self,
        *,
        max_records: int = 10_000,
        store: Any = None,
        archive: Any = None,
        lease: KclLeaseTable | None = None,
    ) -> ClickstreamProcessor:
        return ClickstreamProcessor(
            store or self.store(),
            archive or self.archive(),
            lease=lease,
            cadences=Cadences.by_records(max_records),
            checkpoint_backoff=self.backoff,
        )

    def results(self, shard_id: str, manifest: Manifest) -> Results:
        sessions = [
            item
            for item in dynamo.scan_table(self.dynamodb, self.tables.sessions)
            if item["session_id"] in manifest.sessions
        ]
        pages = [
            item
            for item in page_minute_items(dynamo.scan_table(self.dynamodb, self.tables.page_stats))
            if item["shard_id"] == shard_id
        ]
        archived: list[bytes] = []
        letters: list[dict[str, Any]] = []
        listing = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        keys = [entry["Key"] for page in listing for entry in page.get("Contents", [])]
        for key in keys:
            if f"/{shard_id}-" not in key:
                continue
            lines = archive.object_lines(self.s3, self.bucket, key)
            if key.startswith("raw/"):
                archived += lines
            else:
                letters += [json.loads(line) for line in lines]
        return Results(sessions, pages, archived, letters)


@pytest.fixture(scope="module")
def harness(local_stack: LocalStackState) -> Any:
    with ThreadPoolExecutor(max_workers=8) as pool:
        yield Harness(local_stack, pool)


def new_shard() -> str:
    return f"shardId-{uuid.uuid4().hex[:12]}"


def traffic(seed: int, events: int, malformed: int = 0) -> tuple[list[ProtocolRecord], Manifest]:
    records, anomalies = generate(
        seed, NOW - timedelta(hours=2), events, TrafficProfile(malformed=malformed, bot_sessions=1)
    )
    return protocol_records(records), build_manifest(records, anomalies, seed=seed, source="test")


def test_checkpoints_only_what_was_flushed_and_counts_exactly(harness: Harness) -> None:
    # GIVEN 300 records (some malformed) in three deliveries, and a flush every 150 records
    records, manifest = traffic(seed=101, events=290, malformed=10)
    shard = new_shard()
    daemon = ScriptedDaemon().initialize(shard)
    daemon.process(records[:100]).process(records[100:200]).process(records[200:])
    daemon.shutdown_requested()

    # WHEN the processor runs through the protocol
    daemon.run(harness.processor(max_records=150))

    # THEN it checkpointed after the flush at record 200 and at shutdown at record 300, never
    # at the unflushed third delivery, and everything equals the manifest
    assert daemon.checkpoints == [
        (str(records[199].sequence_number), 0),
        (str(records[299].sequence_number), 0),
    ]
    assert daemon.statuses == [
        "initialize",
        "processRecords",
        "processRecords",
        "processRecords",
        "shutdownRequested",
    ]
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]
    assert verdict.dead_letters == 10


def test_a_replay_after_a_lost_checkpoint_counts_and_archives_nothing_twice(
    harness: Harness,
) -> None:
    # GIVEN a shard flushed twice, the second checkpoint refused (the lease moved on)
    records, manifest = traffic(seed=102, events=400)
    shard = new_shard()
    first = ScriptedDaemon().initialize(shard).process(records[:200]).process(records[200:])
    first.checkpoint_errors.extend([None, "ShutdownException"])
    first.run(harness.processor(max_records=200))
    assert [sequence for sequence, _ in first.checkpoints] == [
        str(records[199].sequence_number),
        str(records[399].sequence_number),
    ]

    # WHEN the next owner replays from the last checkpoint that held, in other batch sizes
    replay = ScriptedDaemon().initialize(shard, str(records[199].sequence_number))
    for start in range(200, 400, 70):
        replay.process(records[start : start + 70])
    replay.shutdown_requested()
    replay.run(harness.processor(max_records=90))

    # THEN counters and archive hold every record once
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]
    assert verdict.archived_events == 400


class _FailsHalfway(PassThroughStore):
    """A store whose save writes only half of a flush's items and then fails for good."""

    def save(self, changes: Changes, now: datetime) -> SaveOutcome:
        half = Changes(changes.sessions[: len(changes.sessions) // 2], changes.pages[::2])
        self.store.save(half, now)
        from clickstream.kernel.retry import GaveUp

        raise GaveUp("dynamodb:PutItem", 1, RuntimeError("AccessDeniedException"))


def test_a_flush_that_dies_halfway_is_finished_by_the_replay_exactly(harness: Harness) -> None:
    # GIVEN a first flush that succeeded, then a flush that wrote half its items and failed
    records, manifest = traffic(seed=103, events=300)
    shard = new_shard()
    good = ScriptedDaemon().initialize(shard).process(records[:150])
    good.shutdown_requested()
    good.run(harness.processor(max_records=1000))
    failing = ScriptedDaemon().initialize(shard, str(records[149].sequence_number))
    failing.process(records[150:])
    with pytest.raises(SystemExit) as stopped:
        failing.run(harness.processor(max_records=100, store=_FailsHalfway(harness.store())))

    # THEN the processor stopped on purpose without checkpointing past its last flush
    assert stopped.value.code == EXIT_FLUSH_FAILED
    assert failing.checkpoints == []

    # WHEN the shard restarts from its checkpoint
    retry = ScriptedDaemon().initialize(shard, str(records[149].sequence_number))
    retry.process(records[150:]).shutdown_requested()
    retry.run(harness.processor(max_records=1000))

    # THEN the half-written items are caught up, none counted twice
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]


def test_lease_lost_writes_nothing_and_does_not_checkpoint(harness: Harness) -> None:
    records, manifest = traffic(seed=104, events=120)
    shard = new_shard()
    daemon = ScriptedDaemon().initialize(shard).process(records).lease_lost()

    daemon.run(harness.processor(max_records=1000))

    assert daemon.checkpoints == []
    found = harness.results(shard, manifest)
    assert found.sessions == []
    assert found.page_items == []
    assert found.archived == []


def test_a_zombie_whose_lease_moved_writes_nothing(harness: Harness) -> None:
    # GIVEN KCL's lease table saying worker "zombie" holds the shard, and its processor
    # buffering records and then pausing
    records, manifest = traffic(seed=105, events=200)
    shard = new_shard()
    leases = harness.lease_table()
    harness.set_lease_owner(leases, shard, "zombie")
    zombie_processor = harness.processor(max_records=1000, lease=harness.lease(leases, "zombie"))
    ScriptedDaemon().initialize(shard).process(records[:100]).run(zombie_processor)
    # AND the lease moved to "owner", which processed everything and flushed
    harness.set_lease_owner(leases, shard, "owner")
    owner = ScriptedDaemon().initialize(shard).process(records).shutdown_requested()
    owner.run(harness.processor(max_records=1000, lease=harness.lease(leases, "owner")))
    before = harness.results(shard, manifest)

    # WHEN the zombie wakes up and flushes
    late = ScriptedDaemon().shutdown_requested()
    late.run(zombie_processor)

    # THEN it wrote nothing (state and archive are the owner's) and did not checkpoint
    assert late.checkpoints == []
    after = harness.results(shard, manifest)
    assert after == before
    verdict = verify(manifest, after)
    assert verdict.exact, verdict.problems[:10]


def test_the_position_guard_refuses_state_older_than_stored(harness: Harness) -> None:
    # GIVEN a processor that flushed records 1-50 (its cache now holds their state) and
    # buffered 51-100 (no lease check: the position guard alone is under test)
    records, manifest = traffic(seed=109, events=200)
    shard = new_shard()
    stale_processor = harness.processor(max_records=50)
    ScriptedDaemon().initialize(shard).process(records[:50]).process(records[50:99]).run(
        stale_processor
    )
    # AND another processor of the same shard went on to record 200 and flushed
    owner = ScriptedDaemon().initialize(shard, str(records[49].sequence_number))
    owner.process(records[50:]).shutdown_requested()
    owner.run(harness.processor(max_records=1000))
    before = harness.results(shard, manifest)

    # WHEN the stale processor flushes what it buffered
    late = ScriptedDaemon().process(records[99:100])
    late.run(stale_processor)

    # THEN DynamoDB refused its older state; no archive object, no checkpoint
    assert late.checkpoints == []
    after = harness.results(shard, manifest)
    assert after == before
    verdict = verify(manifest, after)
    assert verdict.exact, verdict.problems[:10]


class _PutOrder:
    """A DynamoDB client that notes when each put of the page-stats table starts and ends."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_item(self, **kwargs: Any) -> Any:
        kind = "rollup" if kwargs["Item"]["page"]["S"] == ROLLUP_PAGE else "item"
        with self._lock:
            self.events.append(("start", kind))
        try:
            return self._client.put_item(**kwargs)
        finally:
            with self._lock:
                self.events.append(("end", kind))


def test_a_save_stores_its_rollups_before_it_sends_any_page_minute_item(
    harness: Harness,
) -> None:
    # GIVEN a save of four page-minutes and their minute's rollup, on eight threads
    shard = new_shard()
    minute = NOW.strftime("%Y-%m-%dT%H:%M")
    pages = [
        PageMinuteState(f"/order/{n}", minute, shard, Position(10 + n), 1, 0, 1) for n in range(4)
    ]
    rollup = MinuteRollup(minute, shard)
    for page in pages:
        rollup.update(page, Position(13))
    client = _PutOrder(harness.dynamodb)
    store = DynamoStateStore(
        client,
        harness.tables,
        retention=timedelta(days=1),
        backoff=harness.backoff,
        log=get_logger(component="test"),
        pool=harness.pool,
    )
    # WHEN it is written
    outcome = store.save(Changes([], pages, rollups=[rollup]), NOW)
    # THEN all five are written, the rollup's put ending before any item's starts: a worker
    # stopped between them leaves a rollup ahead of its items, never behind them
    assert outcome.written == 5
    rollup_ended = client.events.index(("end", "rollup"))
    first_item = client.events.index(("start", "item"))
    assert rollup_ended < first_item, client.events


def test_kpl_sub_records_checkpoint_with_their_sub_sequence_number(harness: Harness) -> None:
    # GIVEN user records de-aggregated by KCL: one sequence number, sub-sequence 0..n
    records, manifest = traffic(seed=106, events=60)
    aggregate_sequence = records[0].sequence_number
    for index, record in enumerate(records):
        record.sequence_number, record.sub_sequence_number = aggregate_sequence, index
    shard = new_shard()
    daemon = ScriptedDaemon().initialize(shard)
    daemon.process(records[:40]).process(records[40:]).shutdown_requested()

    daemon.run(harness.processor(max_records=40))

    assert daemon.checkpoints == [(str(aggregate_sequence), 39), (str(aggregate_sequence), 59)]
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]


def test_a_missing_bucket_stops_the_processor_without_a_checkpoint(harness: Harness) -> None:
    records, _ = traffic(seed=107, events=30)
    daemon = ScriptedDaemon().initialize(new_shard()).process(records).shutdown_requested()

    with pytest.raises(SystemExit) as stopped:
        daemon.run(harness.processor(archive=harness.archive("no-such-bucket-here")))

    assert stopped.value.code == EXIT_FLUSH_FAILED
    assert daemon.checkpoints == []


def test_a_throttled_checkpoint_is_retried(harness: Harness) -> None:
    records, _ = traffic(seed=108, events=20)
    daemon = ScriptedDaemon().initialize(new_shard()).process(records).shutdown_requested()
    daemon.checkpoint_errors.extend(["ThrottlingException", "ThrottlingException"])

    daemon.run(harness.processor())

    assert len(daemon.checkpoints) == 3
    assert len(set(daemon.checkpoints)) == 1


def test_shard_end_flushes_and_checkpoints_the_end_of_the_shard(harness: Harness) -> None:
    records, manifest = traffic(seed=110, events=80)
    shard = new_shard()
    daemon = ScriptedDaemon().initialize(shard).process(records).shard_ended()

    daemon.run(harness.processor(max_records=1000))

    # KCL needs a checkpoint without a sequence number (SHARD_END) to start the children
    assert daemon.checkpoints == [(None, None)]
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]
