"""Real traffic with the real KCL daemon: what our generator never sends, and KCL 3 lease moves.

- Long tracking URLs, a 2,000-character path, a crawler of 2,500 distinct pages, 200 events
  re-sent with their own ids, then ordinary traffic on the same shards: no worker stops and
  everything is exact (pages under their page keys, duplicates once).
- A lease moved by KCL 3's own lease assignment when a worker joins: the old owner is told
  it lost the lease (no graceful handoff: off by default), the new owner replays from the
  checkpoint, and everything is exact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clickstream.kernel import aws, dynamo
from clickstream.kernel.events import ClickEvent, EventType
from clickstream.kernel.pagekey import MAX_PAGE_KEY_BYTES
from clickstream.local.workers import LocalWorker
from clickstream.stores.alerts import AlertsTable
from clickstream.stores.limits import MAX_ITEM_BYTES, item_size
from clickstream.stores.sessions import SessionsTable
from consumer.pipeline import LEASE_LOST
from insights import query
from producer.batching import batches
from producer.generator import Record, TrafficProfile, generate
from producer.manifest import Manifest, build_manifest
from producer.run import outgoing
from producer.sender import PutRecordsSender
from tests.support import e2e as support
from tests.support.e2e import E2EStack

pytestmark = pytest.mark.e2e

SHARDS = 2
NOW = datetime.now(UTC).replace(microsecond=0)
CRAWL_GAP = timedelta(seconds=0.2)
FENCED = "fenced: this worker no longer owns the shard; dropping its state"


@pytest.fixture
def e2e(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[E2EStack]:
    with support.cli_stack(
        tmp_path / "state", SHARDS, f"t{abs(hash(request.node.name)) % 10_000}"
    ) as s:
        yield s


def send(e2e: E2EStack, records: list[Record], source: str) -> Manifest:
    """PutRecords these records (partition key = session id) and their manifest."""
    kinesis = aws.local_client(
        "kinesis", e2e.state.kinesis_endpoint, e2e.state.region, max_attempts=1, timeout_seconds=60
    )
    sender = PutRecordsSender(kinesis, e2e.state.outputs["StreamName"])
    for batch in batches(outgoing(record) for record in records):
        sender.send(batch)
    manifest = build_manifest(records, [], seed=None, source=source)
    manifest.last_sequence_per_shard = {k: str(v) for k, v in sender.stats.last_sequence.items()}
    return manifest


def page_view(session: str, n: int, page: str, at: datetime) -> ClickEvent:
    return ClickEvent(
        event_id=f"{session}-{n}", type=EventType.PAGE_VIEW, session_id=session, page=page,
        timestamp=at, user_agent="Mozilla/5.0 (compatible; Crawly/2.1)",
    )  # fmt: skip


def log_lines(path: Path, event: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith("{") and f'"event": "{event}"' in line
    ]


def test_long_urls_a_crawler_and_resent_events_never_stop_a_shard(
    e2e: E2EStack, tmp_path: Path
) -> None:
    start = NOW - timedelta(minutes=40)
    logs = tmp_path / "logs"
    workers = [LocalWorker(name, logs / f"{name}.log").start() for name in ("rt-a", "rt-b")]
    # GIVEN a 1,500-character tracking URL, a 2,000-character path, a crawler session of
    # 2,500 page views over 2,500 distinct 120-character paths
    tracking = ("https://Shop.Example.com/pricing?" + "&".join(
        f"utm_{n}={'campaign' * 3}" for n in range(80)
    ))[:1500]  # fmt: skip
    long_path = "/docs/" + "deep/" * 398 + "end"
    hostile: list[Record] = [
        page_view("visitor-1", 1, tracking, start),
        page_view("visitor-2", 1, long_path[:2000], start + timedelta(seconds=1)),
    ]
    hostile += [
        page_view(
            "crawler-1", n, f"/catalog/{n:05d}/" + "x" * 105, start + timedelta(seconds=n / 5)
        )
        for n in range(2_500)
    ]
    # AND 1,000 ordinary events, 200 of them re-sent with their own event ids
    ordinary, _ = generate(31, start + timedelta(minutes=2), 1_000, TrafficProfile())
    resent = [record for record in ordinary if isinstance(record, ClickEvent)][::5][:200]
    first = send(e2e, [*hostile, *ordinary, *resent], "hostile")
    # AND then ordinary traffic on the same shards
    path = tmp_path / "m.json"
    producer = support.produce_in_background(
        support.produce_args(path, seed=32, events=3_000, malformed=30, start=start, rate=500)
    )

    # WHEN the workers have read it all
    manifest = support.drain(e2e, producer, path, [first], workers)

    # THEN no worker stopped on any of it
    for worker in workers:
        text = worker.log_path.read_text(errors="replace")
        assert "flush failed" not in text, worker.log_tail()
        assert "unexpected failure" not in text, worker.log_tail()
        assert support.stopped_gracefully(worker.log_path), worker.log_tail()
    # AND everything is exact: the long URLs under their page keys, the re-sent events once
    assert first.duplicates == 200
    verdict = e2e.verify([first, manifest])
    assert verdict.exact, verdict.problems[:10]
    assert verdict.archived_events == first.events + manifest.events
    pages = {
        row.page
        for row in query.merge_pages(dynamo.scan_table(e2e.dynamodb, e2e.names["page_stats_table"]))
    }
    assert "shop.example.com/pricing" in pages
    long_keys = [page for page in pages if page.startswith("/docs/deep/")]
    assert len(long_keys) == 1
    assert len(long_keys[0].encode()) <= MAX_PAGE_KEY_BYTES
    # AND the crawler is stored within DynamoDB's limits and flagged by the bot rule
    crawler = SessionsTable(e2e.dynamodb, e2e.names["sessions_table"]).readable("crawler-1")
    assert crawler is not None
    assert crawler["events"] == 2_500
    assert crawler["distinct_pages_exact"] is False
    raw = e2e.dynamodb.get_item(
        TableName=e2e.names["sessions_table"], Key={"session_id": {"S": "crawler-1"}}
    )["Item"]
    assert item_size(raw) < MAX_ITEM_BYTES / 4
    alerts = AlertsTable(e2e.dynamodb, e2e.state.outputs["AlertsTableName"]).alerts(
        rules=["bot_session"]
    )
    assert "crawler-1" in {alert["subject"] for alert in alerts}


HANDOFF = "Initiated graceful lease handoff"
"""What KCL 3's lease assignment logs when it starts a graceful handoff (off by default)."""


def first_shard_processed(worker: LocalWorker, timeout: float) -> str:
    """The first shard the worker's record processors were started on."""
    deadline = time.monotonic() + timeout
    while not (started := log_lines(worker.log_path, "initialized")):
        assert worker.running, worker.log_tail()
        assert time.monotonic() < deadline, f"{worker.worker_id} got no shard within {timeout} s"
        time.sleep(1)
    return str(started[0]["shard_id"])


def test_a_lease_moved_to_a_joining_worker_is_replayed_from_its_checkpoint_exactly(
    e2e: E2EStack, tmp_path: Path
) -> None:
    # GIVEN one worker holding both leases and processing traffic
    logs = tmp_path / "logs"
    old = LocalWorker("mv-a", logs / "mv-a.log").start()
    warm_path = tmp_path / "warm.json"
    warm_args = support.produce_args(
        warm_path, seed=41, events=400, malformed=4, start=NOW - timedelta(hours=1)
    )
    warm = support.finish(support.produce_in_background(warm_args), warm_path)
    e2e.wait_caught_up([warm], [old])
    path = tmp_path / "m.json"
    producer = support.produce_in_background(
        support.produce_args(
            path, seed=42, events=6_000, malformed=60, start=NOW - timedelta(minutes=30), rate=300
        )
    )
    # WHEN a second worker joins and KCL 3's lease assignment moves a lease to it (a plain
    # move: the graceful handoff is off by default, see docs/kcl.md)
    new = LocalWorker("mv-b", logs / "mv-b.log").start()
    shard_id = first_shard_processed(new, timeout=180)
    manifest = support.drain(e2e, producer, path, [warm], [old, new])

    # THEN KCL started no graceful handoff (the setting took effect), the old owner was told
    # its lease was lost (or found it out itself: fenced) and wrote nothing more of the shard
    kcl_logs = "".join(log.read_text(errors="replace") for log in logs.glob("*.log"))
    assert HANDOFF not in kcl_logs
    told = [
        entry
        for event in (LEASE_LOST, FENCED)
        for entry in log_lines(old.log_path, event)
        if entry["shard_id"] == shard_id
    ]
    assert told, old.log_tail()
    # AND the new owner replayed from the checkpoint, and the counts are exact
    verdict = e2e.verify([warm, manifest])
    assert verdict.exact, verdict.problems[:10]
