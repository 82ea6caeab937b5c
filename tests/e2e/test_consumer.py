"""End to end with the real KCL MultiLangDaemon: workers, counters, archive, dead letters.

As a user runs it: `clickstream local up`, two `clickstream consume --local` workers,
`clickstream produce`; then the tables and the archive are compared with the producer's
manifest, which must hold exactly, through a graceful stop and restart and KPL input.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clickstream.local.workers import LocalWorker
from clickstream.tools.detection import unmatched, wait_for_alerts
from insights import progress
from tests.support.e2e import (
    E2EStack,
    cli_stack,
    finish,
    produce_args,
    produce_in_background,
    stopped_gracefully,
)

pytestmark = pytest.mark.e2e

SHARDS = 4


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[E2EStack]:
    with cli_stack(tmp_path / "state", SHARDS, "e2econsumer") as stack:
        yield stack


def test_two_workers_count_exactly_through_kpl_input_and_a_graceful_restart(
    e2e: E2EStack, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # GIVEN two workers, each its own `clickstream consume --local` process
    worker_a = LocalWorker("e2e-a", tmp_path / "a.log").start()
    worker_b = LocalWorker("e2e-b", tmp_path / "b.log").start()
    restarted: LocalWorker | None = None
    try:
        # WHEN 20,000 seeded events and 200 malformed records of every kind are produced,
        # over ~13 minutes of event time with a spike, a drop and a bot session injected
        path_1 = tmp_path / "m1.json"
        args_1 = produce_args(
            path_1,
            seed=11,
            events=20_000,
            malformed=200,
            start=now - timedelta(hours=3),
            extra=[
                "--sessions-per-minute",
                "100",
                "--spike",
                "/pricing@8x6",
                "--drop",
                "/search@10",
            ],
        )
        manifest_1 = finish(produce_in_background(args_1), path_1)
        assert len(manifest_1.last_sequence_per_shard or {}) == SHARDS
        e2e.wait_caught_up([manifest_1], [worker_a, worker_b])

        # THEN every counter, the archive and the dead letters equal the manifest
        verdict = e2e.verify([manifest_1])
        assert verdict.exact, verdict.problems[:10]
        assert verdict.archived_events == 20_000
        assert verdict.dead_letters == 200
        assert {m.expected_reason for m in manifest_1.malformed_records} >= {
            "not_utf8",
            "not_json",
            "not_object",
            "missing_field",
            "wrong_type",
            "timestamp_out_of_range",
        }
        # AND the workers raised an alert for each injected anomaly, in its window: the bot
        # from its shard's processor, the spike and the drop from the page watches
        assert {a.kind for a in manifest_1.anomalies} == {
            "bot_session",
            "traffic_spike",
            "traffic_drop",
        }
        table = e2e.state.outputs["AlertsTableName"]
        alerts = wait_for_alerts(e2e.dynamodb, table, manifest_1.anomalies, timeout=120)
        missed, unlabelled = unmatched(manifest_1.anomalies, alerts)
        assert missed == []
        assert len(unlabelled) <= 2, unlabelled

        # WHEN KPL-aggregated traffic flows and the worker holding the most leases (call it
        # A) is stopped with SIGTERM meanwhile
        owners = Counter(progress.lease_owners(e2e.dynamodb, e2e.lease_table).values())
        if owners["e2e-b"] > owners["e2e-a"]:
            worker_a, worker_b = worker_b, worker_a
        path_2 = tmp_path / "m2.json"
        args_2 = produce_args(
            path_2,
            seed=12,
            events=4_000,
            malformed=40,
            start=now - timedelta(hours=1),
            rate=200,
            extra=["--kpl-aggregate"],
        )
        producer = produce_in_background(args_2)
        time.sleep(8)
        assert worker_a.stop() == 0, worker_a.log_tail()
        assert stopped_gracefully(worker_a.log_path), worker_a.log_tail()
        manifest_2 = finish(producer, path_2)
        assert manifest_2.sent < manifest_2.total_records  # aggregates: fewer Kinesis records

        # AND worker A comes back under the same id
        restarted = LocalWorker(worker_a.worker_id, tmp_path / "restarted.log").start()
        e2e.wait_caught_up([manifest_1, manifest_2], [worker_b, restarted])

        # THEN both runs are counted exactly once: nothing lost at the stop, nothing replayed
        # twice after the restart, KPL user records counted like plain records
        verdict = e2e.verify([manifest_1, manifest_2])
        assert verdict.exact, verdict.problems[:10]
        assert verdict.archived_events == 24_000
        assert verdict.dead_letters == 240
    finally:
        for worker in (worker_a, worker_b, restarted):
            if worker is not None:
                worker.stop()
    for log in tmp_path.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name
