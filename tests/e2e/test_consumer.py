"""End to end with the real KCL MultiLangDaemon: workers, counters, archive, dead letters.

As a user runs it: `clickstream local up`, two `clickstream consume --local` workers,
`clickstream produce`; then the tables and the archive are compared with the producer's
manifest, which must hold exactly, through a graceful stop and restart and KPL input.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clickstream import aws
from clickstream.local import stack
from clickstream.local.settings import LocalStackSettings
from clickstream.local.stack import LocalStackState
from clickstream.verify import combine, read_results, verify
from consumer import query
from consumer.local_workers import LocalWorker, wait_until_caught_up
from producer.manifest import Manifest
from tests.support.stack import free_port

pytestmark = pytest.mark.e2e

SHARDS = 4
CATCH_UP_TIMEOUT = 420.0


def clickstream(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "clickstream.cli", *args],
        capture_output=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def consumer_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackState]:
    """A 4-shard local stack of its own; the CLI (and the workers) find it by these vars."""
    state_dir = tmp_path_factory.mktemp("consumer-stack")
    variables = {
        "CLICKSTREAM_LOCAL_STATE_DIR": str(state_dir),
        "CLICKSTREAM_LOCAL_MOTO_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_KINESIS_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_KINESIS_TLS_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_STACK_NAME": "e2econsumer",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        for name in ("CLICKSTREAM_STREAM_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
            patch.delenv(name, raising=False)
        up = clickstream("local", "up", "--shards", str(SHARDS))
        assert up.returncode == 0, up.stderr.decode()
        state = stack.load_state(LocalStackSettings())
        assert state is not None
        try:
            yield state
        finally:
            down = clickstream("local", "down")
            assert down.returncode == 0, down.stderr.decode()


def produce_args(
    manifest: Path, seed: int, events: int, malformed: int, start: datetime
) -> list[str]:
    return [
        "produce",
        "--events",
        str(events),
        "--seed",
        str(seed),
        "--malformed",
        str(malformed),
        "--bots",
        "2",
        "--start",
        start.strftime("%Y-%m-%dT%H:%M:%S"),
        "--manifest",
        str(manifest),
    ]


def test_two_workers_count_exactly_through_kpl_input_and_a_graceful_restart(
    consumer_stack: LocalStackState, tmp_path: Path
) -> None:
    environment = consumer_stack.environment()
    dynamodb = aws.local_client("dynamodb", consumer_stack.moto_endpoint, consumer_stack.region)
    s3 = aws.local_client("s3", consumer_stack.moto_endpoint, consumer_stack.region)
    names = {
        "sessions_table": environment["CLICKSTREAM_SESSIONS_TABLE"],
        "page_stats_table": environment["CLICKSTREAM_PAGE_STATS_TABLE"],
        "archive_bucket": environment["CLICKSTREAM_ARCHIVE_BUCKET"],
    }
    lease_table = f"{environment['CLICKSTREAM_STREAM_NAME']}-consumer"
    now = datetime.now(UTC).replace(microsecond=0)

    # GIVEN two workers, each its own `clickstream consume --local` process
    worker_a = LocalWorker("e2e-a", tmp_path / "a.log").start()
    worker_b = LocalWorker("e2e-b", tmp_path / "b.log").start()
    restarted: LocalWorker | None = None
    try:
        # WHEN 20,000 seeded events and 200 malformed records of every kind are produced
        first = clickstream(
            *produce_args(tmp_path / "m1.json", 11, 20_000, 200, now - timedelta(hours=3))
        )
        assert first.returncode == 0, first.stderr.decode()
        manifest_1 = Manifest.model_validate_json((tmp_path / "m1.json").read_text())
        assert manifest_1.last_sequence_per_shard
        assert len(manifest_1.last_sequence_per_shard) == SHARDS
        wait_until_caught_up(
            dynamodb,
            lease_table,
            manifest_1.last_sequence_per_shard,
            [worker_a, worker_b],
            timeout=CATCH_UP_TIMEOUT,
        )

        # THEN every counter, the archive and the dead letters equal the manifest
        verdict = verify(manifest_1, read_results(dynamodb, s3, names))
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

        # WHEN KPL-aggregated traffic flows and the worker holding the most leases (call it
        # A) is stopped with SIGTERM meanwhile
        owners = Counter(query.lease_owners(dynamodb, lease_table).values())
        if owners["e2e-b"] > owners["e2e-a"]:
            worker_a, worker_b = worker_b, worker_a
        stopped_id = worker_a.worker_id
        second_args = produce_args(tmp_path / "m2.json", 12, 4_000, 40, now - timedelta(hours=1))
        producer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clickstream.cli",
                *second_args,
                "--kpl-aggregate",
                "--rate",
                "200",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(8)
        assert worker_a.stop() == 0, worker_a.log_tail()
        assert "shutdown requested: flushed and checkpointed" in worker_a.log_path.read_text()
        _, producer_err = producer.communicate(timeout=300)
        assert producer.returncode == 0, producer_err.decode()
        manifest_2 = Manifest.model_validate_json((tmp_path / "m2.json").read_text())
        assert manifest_2.sent < manifest_2.total_records  # aggregates: fewer Kinesis records

        # AND worker A comes back under the same id
        restarted = LocalWorker(stopped_id, tmp_path / "restarted.log").start()
        last = {**manifest_1.last_sequence_per_shard, **(manifest_2.last_sequence_per_shard or {})}
        wait_until_caught_up(
            dynamodb, lease_table, last, [worker_b, restarted], timeout=CATCH_UP_TIMEOUT
        )

        # THEN both runs are counted exactly once: nothing lost at the stop, nothing replayed
        # twice after the restart, KPL user records counted like plain records
        both = combine([manifest_1, manifest_2])
        verdict = verify(both, read_results(dynamodb, s3, names))
        assert verdict.exact, verdict.problems[:10]
        assert verdict.archived_events == 24_000
        assert verdict.dead_letters == 240
    finally:
        for worker in (worker_a, worker_b, restarted):
            if worker is not None:
                worker.stop()
    for log in tmp_path.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name
