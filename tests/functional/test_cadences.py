"""Each output on its own cadence, and still exact: page-minutes written every few seconds,
sessions later, archive and checkpoint at the end of a commit window, on the local stack's
real tables and bucket (moto on loopback), through amazon_kclpy's protocol code.

The processor's clock moves one second per delivery, as KCL's polls do; a crash is the
daemon's lines ending without a shutdown, so whatever the processor had not written is lost
with it and the next owner replays from the last checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from clickstream.kernel import dynamo
from clickstream.local.stack import LocalStackState
from clickstream.stores.page_stats import is_rollup, page_minute_items, rollup_rows
from clickstream.tools.verify import verify
from consumer.core.pending import Cadences
from consumer.processor import ClickstreamProcessor
from producer.generator import TrafficProfile, generate
from producer.manifest import build_manifest
from tests.functional.test_processor import NOW, Harness, new_shard, traffic
from tests.support.protocol import ProtocolRecord, ScriptedDaemon, protocol_records

CADENCES = Cadences(live_seconds=2, item_seconds=5, commit_seconds=12)
PER_DELIVERY = 20


@pytest.fixture(scope="module")
def harness(local_stack: LocalStackState) -> Iterator[Harness]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        yield Harness(local_stack, pool)


class Clocked:
    """A processor whose clock moves one second with each delivery it reads."""

    def __init__(self, harness: Harness, **sinks: Any) -> None:
        self.now = 0.0
        self.processor = ClickstreamProcessor(
            sinks.pop("store", None) or harness.store(),
            harness.archive(),
            cadences=sinks.pop("cadences", CADENCES),
            checkpoint_backoff=harness.backoff,
            clock=lambda: self.now,
            **sinks,
        )

    def tick(self, action: dict[str, Any]) -> None:
        if action["action"] == "processRecords":
            self.now += 1.0

    def daemon(self, shard: str, checkpoint: str = "TRIM_HORIZON") -> ScriptedDaemon:
        return ScriptedDaemon(on_action=self.tick).initialize(shard, checkpoint)


def deliver(daemon: ScriptedDaemon, records: list[ProtocolRecord], size: int) -> ScriptedDaemon:
    for start in range(0, len(records), size):
        daemon.process(records[start : start + size])
    return daemon


def live_views(harness: Harness, shard: str) -> int:
    rollups = [
        item
        for item in dynamo.scan_table(harness.dynamodb, harness.tables.page_stats)
        if is_rollup(item) and item["shard_id"] == shard
    ]
    # (people's views and bots' apart: every page view is in one or the other)
    return sum(row["views"] + row["bot_views"] for item in rollups for row in rollup_rows(item))


def live_counts(harness: Harness, shard: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(minute, page) -> (views, clicks, sessions) as the shard's live rollups say."""
    return {
        (row["window"], row["page"]): (row["views"], row["clicks"], row["sessions"])
        for item in dynamo.scan_table(harness.dynamodb, harness.tables.page_stats)
        if is_rollup(item) and item["shard_id"] == shard
        for row in rollup_rows(item)
    }


def item_counts(harness: Harness, shard: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(minute, page) -> (views, clicks, sessions) as the shard's page-minute items say."""
    return {
        (str(item["window"]), str(item["page"])): (
            int(item["views"]),
            int(item["clicks"]),
            int(item["sessions"]),
        )
        for item in page_minute_items(
            dynamo.scan_table(harness.dynamodb, harness.tables.page_stats)
        )
        if item["shard_id"] == shard
    }


def idle(daemon: ScriptedDaemon, polls: int) -> ScriptedDaemon:
    """Polls that find nothing new (KCL calls the processor with no records)."""
    for _ in range(polls):
        daemon.process([])
    return daemon


def test_live_counters_lead_the_items_and_both_lead_the_checkpoint(harness: Harness) -> None:
    # GIVEN one delivery of traffic at t=1 s, then polls that find nothing new. (Each stage
    # runs the same processor on: its lines ending is a pause, not a crash.)
    records, manifest = traffic(seed=301, events=160)
    page_views = manifest.event_types["page_view"]
    shard = new_shard()
    clocked = Clocked(harness)
    daemon = idle(clocked.daemon(shard).process(records), 2)
    # WHEN the live cadence (2 s) has passed, but not the items' (5 s)
    daemon.run(clocked.processor)
    early = harness.results(shard, manifest)
    # THEN the live rollups hold every page view, and nothing else is written yet
    assert live_views(harness, shard) == page_views > 0
    assert early.page_items == []
    assert early.sessions == []
    assert early.archived == []
    assert daemon.checkpoints == []

    # WHEN the items' cadence has passed too (t=6 s), but not the commit window (12 s)
    idle(daemon, 3).run(clocked.processor)
    later = harness.results(shard, manifest)
    # THEN page-minute items and sessions hold every event, still nothing archived or
    # checkpointed
    assert (
        sum(int(item["views"]) + int(item.get("bot_views", 0)) for item in later.page_items)
        == page_views
    )
    assert sum(int(item["events"]) for item in later.sessions) == len(records)
    assert later.archived == []
    assert daemon.checkpoints == []

    # WHEN the window is 12 s old (t=13 s)
    idle(daemon, 7).run(clocked.processor)
    # THEN it is archived and checkpointed at its last record, and everything is exact
    assert daemon.checkpoints == [(str(records[-1].sequence_number), 0)]
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]


def test_a_commit_writes_everything_then_archives_then_checkpoints_exactly(
    harness: Harness,
) -> None:
    # GIVEN 30 deliveries: two commit windows and a part
    records, manifest = traffic(seed=302, events=600, malformed=6)
    shard = new_shard()
    clocked = Clocked(harness)
    daemon = deliver(clocked.daemon(shard), records, PER_DELIVERY).shutdown_requested()
    # WHEN the processor runs to its shutdown
    daemon.run(clocked.processor)
    # THEN it checkpointed when each window was 12 s old (the 13th delivery, opened at the
    # 1st; the 26th) and at shutdown, and every output equals the manifest
    assert daemon.checkpoints == [
        (str(records[13 * PER_DELIVERY - 1].sequence_number), 0),
        (str(records[26 * PER_DELIVERY - 1].sequence_number), 0),
        (str(records[-1].sequence_number), 0),
    ]
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]
    assert verdict.dead_letters == 6
    # AND the live counters, after the last commit, hold every page view too
    assert live_views(harness, shard) == manifest.event_types["page_view"]


@pytest.mark.parametrize("crash_after", [5, 13, 19])
def test_a_crash_mid_window_is_replayed_from_the_checkpoint_exactly(
    harness: Harness, crash_after: int
) -> None:
    # GIVEN a processor that dies after `crash_after` deliveries: page-minutes and some
    # sessions written past its last checkpoint, the rest of its window lost
    records, manifest = traffic(seed=303 + crash_after, events=500)
    shard = new_shard()
    first = Clocked(harness)
    cut = crash_after * PER_DELIVERY
    crashed = deliver(first.daemon(shard), records[:cut], PER_DELIVERY)
    crashed.run(first.processor)
    checkpoint = crashed.checkpoints[-1][0] if crashed.checkpoints else "TRIM_HORIZON"
    assert checkpoint is not None
    sequences = [str(record.sequence_number) for record in records]
    replay_from = sequences.index(checkpoint) + 1 if crashed.checkpoints else 0
    assert len(crashed.checkpoints) == (1 if crash_after >= 13 else 0)
    # WHEN the next owner replays from that checkpoint, in other delivery sizes, to the end
    second = Clocked(harness)
    replay = deliver(second.daemon(shard, checkpoint), records[replay_from:], 33)
    replay.shutdown_requested().run(second.processor)
    # THEN every counter, session and archived record is there once, and the live rollups
    # say what the page-minute items say
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]
    assert verdict.archived_events == len(records)
    assert live_counts(harness, shard) == item_counts(harness, shard)


def test_a_lease_lost_mid_window_writes_nothing_more_and_the_new_owner_is_exact(
    harness: Harness,
) -> None:
    # GIVEN a worker that wrote page-minutes and sessions ahead of its checkpoint, then lost
    # the lease (KCL gave the shard to another worker)
    records, manifest = traffic(seed=320, events=400)
    shard = new_shard()
    leaving = Clocked(harness)
    old = deliver(leaving.daemon(shard), records[:160], PER_DELIVERY).lease_lost()
    old.run(leaving.processor)
    assert old.checkpoints == []
    # WHEN the new owner takes the shard from the start (no checkpoint held) to the end
    arriving = Clocked(harness)
    new = deliver(arriving.daemon(shard), records, 45).shutdown_requested()
    new.run(arriving.processor)
    # THEN the outputs are exact: what the old owner wrote ahead is skipped, not recounted,
    # and the live rollups say what the page-minute items say
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]
    assert verdict.archived_events == len(records)
    assert live_counts(harness, shard) == item_counts(harness, shard)


def test_a_zombie_with_changes_waiting_is_fenced_at_its_next_write(harness: Harness) -> None:
    # GIVEN KCL's lease table naming "zombie", whose processor has changes waiting
    records, manifest = traffic(seed=321, events=300)
    shard = new_shard()
    leases = harness.lease_table()
    harness.set_lease_owner(leases, shard, "zombie")
    zombie = Clocked(harness, lease=harness.lease(leases, "zombie"))
    deliver(zombie.daemon(shard), records[:60], PER_DELIVERY).run(zombie.processor)
    # AND the lease moved to "owner", which processed everything
    harness.set_lease_owner(leases, shard, "owner")
    owner = Clocked(harness, lease=harness.lease(leases, "owner"))
    done = deliver(owner.daemon(shard), records, 50).shutdown_requested()
    done.run(owner.processor)
    before = harness.results(shard, manifest)
    # WHEN the zombie wakes up, its page-minutes and sessions long due
    zombie.now += 60
    late = deliver(ScriptedDaemon(on_action=zombie.tick), records[60:80], 20)
    late.shutdown_requested().run(zombie.processor)
    # THEN it wrote and checkpointed nothing
    assert late.checkpoints == []
    after = harness.results(shard, manifest)
    assert after == before
    verdict = verify(manifest, after)
    assert verdict.exact, verdict.problems[:10]
    assert live_counts(harness, shard) == item_counts(harness, shard)


def test_a_crash_just_after_items_went_out_leaves_no_rollup_behind_them(harness: Harness) -> None:
    # GIVEN rollups every 3 s and items every 5 s: at t=6 the items are due (changed since
    # t=1) while the rollups last went out at t=4 and changed since; a worker dies right
    # after that write, before its rollups' next turn, with the shard's traffic ending there
    # (no later record touches those page-minutes again)
    cadences = Cadences(live_seconds=3, item_seconds=5, commit_seconds=60)
    # Three pages, ten seconds of traffic inside one minute: every delivery changes each of
    # the three page-minutes, the last ones too.
    seed = 330
    minute = NOW.replace(second=0)
    generated, anomalies = generate(seed, minute, 6 * PER_DELIVERY, TrafficProfile(pages=3))
    records = protocol_records(generated)
    manifest = build_manifest(generated, anomalies, seed=seed, source="test")
    shard = new_shard()
    first = Clocked(harness, cadences=cadences)
    deliver(first.daemon(shard), records, PER_DELIVERY).run(first.processor)
    assert item_counts(harness, shard), "the items went out before the crash"
    # WHEN the next owner replays the shard (no checkpoint was taken)
    second = Clocked(harness, cadences=cadences)
    replay = deliver(second.daemon(shard), records, 40)
    replay.shutdown_requested().run(second.processor)
    # THEN the rollups hold what the items hold: the replay skips the records the items
    # already include, so a rollup written after its items would have missed them for good
    verdict = verify(manifest, harness.results(shard, manifest))
    assert verdict.exact, verdict.problems[:10]
    assert live_counts(harness, shard) == item_counts(harness, shard)
    assert live_views(harness, shard) == manifest.event_types["page_view"]
