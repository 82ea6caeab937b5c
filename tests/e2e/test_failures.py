"""Exact under failure, with the real KCL daemon: crashes, lease moves, AWS faults.

Each scenario runs on a local stack of its own, produces seeded traffic while the failure
happens, waits until every shard is checkpointed at its last record, and then requires the
counters, the archive and the dead letters to equal the producer's manifest exactly.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clickstream.kernel import aws
from clickstream.local.workers import LocalWorker
from consumer.pipeline import LEASE_MOVED
from insights import progress
from producer.batching import OutgoingRecord, batches
from producer.manifest import MalformedTruth, Manifest, build_manifest
from producer.sender import PutRecordsSender
from tests.support.aws_fault_proxy import AwsFaultProxy
from tests.support.e2e import (
    E2EStack,
    cli_stack,
    drain,
    finish,
    produce_args,
    produce_in_background,
    stopped_gracefully,
)
from tests.support.gate_proxy import GateProxy

pytestmark = pytest.mark.e2e

SHARDS = 4
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def e2e(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[E2EStack]:
    with cli_stack(tmp_path / "state", SHARDS, f"f{abs(hash(request.node.name)) % 10_000}") as s:
        yield s


def warm_up(e2e: E2EStack, tmp_path: Path, workers: list[LocalWorker], seed: int) -> Manifest:
    """A small first run, consumed: the workers are past KCL's start-up (~40 s) and hold
    leases, so the failures that follow hit them while they work."""
    path = tmp_path / "warm-up.json"
    args = produce_args(path, seed=seed, events=400, malformed=4, start=START - timedelta(hours=1))
    manifest = finish(produce_in_background(args), path)
    e2e.wait_caught_up([manifest], workers)
    return manifest


def busiest(e2e: E2EStack, workers: dict[str, LocalWorker]) -> str:
    """The worker holding the most leases now."""
    owners = Counter(progress.lease_owners(e2e.dynamodb, e2e.lease_table).values())
    return max(sorted(workers), key=lambda name: owners[name])


def wait_until_processing(worker: LocalWorker, timeout: float = 90) -> None:
    """Until the worker runs at least one record processor (it holds a lease and works)."""
    deadline = time.monotonic() + timeout
    while '"event": "initialized"' not in worker.log_path.read_text(errors="replace"):
        assert worker.running, worker.log_tail()
        if time.monotonic() > deadline:
            raise AssertionError(f"{worker.worker_id} got no shard within {timeout} s")
        time.sleep(0.5)


def wait_until_receiving(worker: LocalWorker, timeout: float = 90) -> None:
    """Until one of the worker's processors has been given records (its debug log says so):
    a kill before that, while its processors are still starting, interrupts nothing."""
    deadline = time.monotonic() + timeout
    while '"event": "records received"' not in worker.log_path.read_text(errors="replace"):
        assert worker.running, worker.log_tail()
        if time.monotonic() > deadline:
            raise AssertionError(f"{worker.worker_id} was given no records within {timeout} s")
        time.sleep(0.5)


def kcl_leader(e2e: E2EStack) -> str:
    """The worker holding KCL 3's leader lock (it assigns leases)."""
    table = f"{e2e.lease_table}-CoordinatorState"
    item = e2e.dynamodb.get_item(TableName=table, Key={"key": {"S": "Leader"}}, ConsistentRead=True)
    return str(item["Item"]["ownerName"]["S"])


def wait_for_a_lease(e2e: E2EStack, worker_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while worker_id not in progress.lease_owners(e2e.dynamodb, e2e.lease_table).values():
        if time.monotonic() > deadline:
            raise AssertionError(f"{worker_id} was given no lease within {timeout} s")
        time.sleep(1)


def wait_for_owners(e2e: E2EStack, allowed: set[str], timeout: float = 90) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        owners = set(progress.lease_owners(e2e.dynamodb, e2e.lease_table).values())
        if owners and owners <= allowed:
            return owners
        if time.monotonic() > deadline:
            raise AssertionError(f"leases still held by {owners}, expected only {allowed}")
        time.sleep(1)


def no_tracebacks(logs: Path) -> None:
    for log in logs.glob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.name


def test_kill_9_mid_stream_several_times(e2e: E2EStack, tmp_path: Path) -> None:
    # GIVEN two workers and traffic flowing (~25 s of it); debug logs say what each
    # processor received
    logs = tmp_path / "logs"
    debug = {"CLICKSTREAM_LOG_LEVEL": "DEBUG"}
    workers = {
        name: LocalWorker(name, logs / f"{name}-0.log", debug).start()
        for name in ("crash-a", "crash-b")
    }
    warm = warm_up(e2e, tmp_path, list(workers.values()), seed=120)
    manifest_path = tmp_path / "m.json"
    producer = produce_in_background(
        produce_args(manifest_path, seed=21, events=12_000, malformed=120, start=START, rate=300)
    )

    # WHEN the worker holding the most leases is killed with SIGKILL at random moments while
    # it processes, three times, and restarted each time
    rng = random.Random(21)
    killed: list[tuple[Path, str]] = []
    for round_number in range(1, 4):
        name = busiest(e2e, workers)
        wait_until_receiving(workers[name])
        time.sleep(rng.uniform(0.5, 4.0))
        workers[name].kill()
        killed.append((workers[name].log_path, datetime.now(UTC).isoformat()))
        time.sleep(rng.uniform(0.2, 2.0))
        restarted = logs / f"{name}-{round_number}.log"
        workers[name] = LocalWorker(name, restarted, debug).start()
    manifest = drain(e2e, producer, manifest_path, [warm], list(workers.values()))

    # THEN KCL replayed records a killed worker had received: a shard restarted from a
    # checkpoint below the last record its killed processor was given
    assert any(replayed_after(log, at, logs) for log, at in killed)
    # AND nothing was lost and nothing counted or archived twice
    verdict = e2e.verify([warm, manifest])
    assert verdict.exact, verdict.problems[:10]
    assert verdict.archived_events == 12_400
    assert verdict.dead_letters == 124


def replayed_after(killed_log: Path, killed_at: str, logs: Path) -> list[str]:
    """Shards whose processing restarted, after the kill, from a checkpoint below the last
    record the killed worker's processor had received: records KCL delivered again."""
    received: dict[str, int] = {}
    for entry in log_events(killed_log, "records received"):
        received[entry["shard_id"]] = int(entry["last_sequence"])
    return [
        entry["shard_id"]
        for entry in events_of(logs, "initialized")
        if entry["timestamp"] > killed_at
        and str(entry.get("checkpoint", "")).isdigit()
        and int(entry["checkpoint"]) < received.get(entry["shard_id"], -1)
    ]


def test_workers_joining_and_leaving_under_load(e2e: E2EStack, tmp_path: Path) -> None:
    # GIVEN one worker holding every lease while traffic flows (~25 s of it)
    logs = tmp_path / "logs"
    first = LocalWorker("move-a", logs / "a.log").start()
    warm = warm_up(e2e, tmp_path, [first], seed=122)
    manifest_path = tmp_path / "m.json"
    producer = produce_in_background(
        produce_args(manifest_path, seed=22, events=9_000, malformed=90, start=START, rate=300)
    )

    # WHEN a second and a third worker join, and then the first one leaves (SIGTERM)
    second = LocalWorker("move-b", logs / "b.log").start()
    time.sleep(6)
    third = LocalWorker("move-c", logs / "c.log").start()
    time.sleep(10)
    # (a graceful stop under load: every shard it held flushes and checkpoints)
    assert first.stop() == 0, first.log_tail()
    assert stopped_gracefully(first.log_path), first.log_tail()
    manifest = finish(producer, manifest_path)
    try:
        e2e.wait_caught_up([warm, manifest], [second, third])
        # THEN the leaver's leases move to the workers that stayed
        wait_for_owners(e2e, {"move-b", "move-c"})
    finally:
        second.stop()
        third.stop()

    # AND the counts are exact
    verdict = e2e.verify([warm, manifest])
    assert verdict.exact, verdict.problems[:10]
    no_tracebacks(logs)


def test_throttles_and_5xx_from_dynamodb_and_s3(e2e: E2EStack, tmp_path: Path) -> None:
    # GIVEN the processors' DynamoDB and S3 calls going through a proxy that fails 10% of
    # them, and 50% for 3 s out of every 10 s (KCL's own lease calls go straight to moto)
    logs = tmp_path / "logs"
    moto = e2e.state.moto_endpoint
    with AwsFaultProxy(
        moto, base_rate=0.10, burst_rate=0.50, burst_seconds=3, period_seconds=10, seed=23
    ) as proxy:
        through_proxy = {
            "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint,
            "AWS_ENDPOINT_URL_S3": proxy.endpoint,
            "CLICKSTREAM_DYNAMODB_ENDPOINT": moto,
        }
        workers = [
            LocalWorker(name, logs / f"{name}.log", through_proxy).start()
            for name in ("fault-a", "fault-b")
        ]
        warm = warm_up(e2e, tmp_path, workers, seed=123)
        manifest_path = tmp_path / "m.json"
        producer = produce_in_background(
            produce_args(manifest_path, seed=23, events=7_000, malformed=70, start=START, rate=300)
        )
        # AND a crash in the middle of it, so a checkpoint ahead of a flush would lose data
        time.sleep(6)
        by_name = {worker.worker_id: worker for worker in workers}
        victim = busiest(e2e, by_name)
        by_name[victim].kill()
        by_name[victim] = LocalWorker(victim, logs / f"{victim}-restarted.log", through_proxy)
        by_name[victim].start()
        workers = list(by_name.values())
        manifest = drain(e2e, producer, manifest_path, [warm], workers)
        faulted = sum(proxy.faulted.values())
        forwarded = sum(proxy.forwarded.values())

    # THEN the faults happened, were retried with logged backoff, and nothing is off
    assert faulted > 50, proxy.faulted
    assert faulted / (faulted + forwarded) > 0.1
    retries = sum(log.read_text().count('"event": "retrying"') for log in logs.glob("*.log"))
    assert retries > 0
    verdict = e2e.verify([warm, manifest])
    assert verdict.exact, verdict.problems[:10]
    no_tracebacks(logs)


def test_a_paused_worker_wakes_up_as_a_zombie_and_is_fenced(e2e: E2EStack, tmp_path: Path) -> None:
    # GIVEN two workers and traffic flowing, one of them frozen (SIGSTOP: a long GC or VM
    # pause) while it holds leases, for longer than the lease failover time
    logs = tmp_path / "logs"
    workers = {name: LocalWorker(name, logs / f"{name}.log").start() for name in ("z-a", "z-b")}
    warm = warm_up(e2e, tmp_path, list(workers.values()), seed=124)
    manifest_path = tmp_path / "m.json"
    producer = produce_in_background(
        produce_args(manifest_path, seed=24, events=12_000, malformed=120, start=START, rate=300)
    )
    # (not the KCL leader: a frozen leader would hold the assignment lock for its 2 minutes)
    frozen_name = ({"z-a", "z-b"} - {kcl_leader(e2e)}).pop()
    frozen, other = workers[frozen_name], workers[({"z-a", "z-b"} - {frozen_name}).pop()]
    wait_for_a_lease(e2e, frozen_name)
    wait_until_processing(frozen)
    time.sleep(2)
    frozen.pause()
    try:
        # WHEN the other worker takes its leases over and goes on
        wait_for_owners(e2e, {other.worker_id})
        time.sleep(5)
    finally:
        # AND the frozen worker wakes up, believing it still holds them
        frozen.resume()
    try:
        manifest = drain(e2e, producer, manifest_path, [warm], [other])
    finally:
        frozen.stop()

    # THEN the zombie wrote nothing that counts (KCL told it, or our own checks refused it),
    # and the counts are exact
    zombie_log = frozen.log_path.read_text()
    assert "fenced" in zombie_log or "lease lost" in zombie_log
    verdict = e2e.verify([warm, manifest])
    assert verdict.exact, verdict.problems[:10]


def test_a_worker_cut_off_from_the_lease_table_is_fenced_by_its_own_lease_check(
    e2e: E2EStack, tmp_path: Path
) -> None:
    # GIVEN two workers and traffic flowing; one of them reaches KCL's lease table through a
    # gate (its KCL daemon and its processors' lease checks; its state writes go straight)
    logs = tmp_path / "logs"
    with GateProxy(e2e.state.moto_endpoint) as gate:
        cut_env = {"CLICKSTREAM_DYNAMODB_ENDPOINT": gate.endpoint}
        first = LocalWorker("g-a", logs / "g-a.log").start()
        warm = warm_up(e2e, tmp_path, [first], seed=127)
        manifest_path = tmp_path / "m.json"
        producer = produce_in_background(
            produce_args(manifest_path, seed=27, events=15_000, malformed=90, start=START, rate=300)
        )
        # (the other joins later, so the first is KCL's leader and the gated one is not; it
        # joins while traffic flows, since KCL 3 moves leases to a new worker only when the
        # workers' CPU differs, and an idle host's workers report the same host CPU)
        cut = LocalWorker("g-b", logs / "g-b.log", cut_env).start()
        wait_for_a_lease(e2e, "g-b", timeout=180)
        wait_until_processing(cut)
        time.sleep(5)
        # WHEN the gate closes: the cut-off worker renews nothing, its processors' lease checks
        # hang, and the other worker takes its leases over and writes on
        gate.close_gate()
        wait_for_owners(e2e, {"g-a"}, timeout=180)
        time.sleep(8)
        # AND the gate opens again: the hanging lease checks get their answer
        gate.open_gate()
        try:
            manifest = drain(e2e, producer, manifest_path, [warm], [first])
        finally:
            cut.stop()

    # THEN the cut-off worker's processors were refused by their own lease check before
    # writing anything, and the counts are exact
    assert gate.held > 0
    fenced = events_of(logs, "fenced: this worker no longer owns the shard; dropping its state")
    assert any(entry.get("why") == LEASE_MOVED for entry in fenced), cut.log_tail()
    verdict = e2e.verify([warm, manifest])
    assert verdict.exact, verdict.problems[:10]


def wait_stream_active(kinesis: Any, stream: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (
        kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
            "StreamStatus"
        ]
        != "ACTIVE"
    ):
        assert time.monotonic() < deadline, "stream did not become ACTIVE"
        time.sleep(0.5)


def events_of(logs: Path, event: str) -> list[dict[str, Any]]:
    return [entry for log in logs.glob("*.log") for entry in log_events(log, event)]


def log_events(log: Path, event: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("{") and f'"event": "{event}"' in line
    ]


SHARD_ENDED = "shard ended: flushed, SHARD_END checkpointed"


def test_split_and_merge_while_events_flow(e2e: E2EStack, tmp_path: Path) -> None:
    # GIVEN two workers and traffic flowing
    logs = tmp_path / "logs"
    workers = [LocalWorker(name, logs / f"{name}.log").start() for name in ("r-a", "r-b")]
    warm = warm_up(e2e, tmp_path, workers, seed=125)
    manifest_path = tmp_path / "m.json"
    producer = produce_in_background(
        produce_args(manifest_path, seed=25, events=10_000, malformed=100, start=START, rate=300)
    )
    kinesis = aws.local_client("kinesis", e2e.state.kinesis_endpoint, e2e.state.region)
    stream = e2e.state.outputs["StreamName"]
    shards = {s["ShardId"]: s for s in kinesis.list_shards(StreamName=stream)["Shards"]}

    # WHEN shard 0 is split in two, and shards 2 and 3 are merged, as the traffic flows
    time.sleep(5)
    first = shards["shardId-000000000000"]["HashKeyRange"]
    middle = (int(first["StartingHashKey"]) + int(first["EndingHashKey"])) // 2
    kinesis.split_shard(
        StreamName=stream,
        ShardToSplit="shardId-000000000000",
        NewStartingHashKey=str(middle),
    )
    wait_stream_active(kinesis, stream)
    time.sleep(5)
    kinesis.merge_shards(
        StreamName=stream,
        ShardToMerge="shardId-000000000002",
        AdjacentShardToMerge="shardId-000000000003",
    )
    wait_stream_active(kinesis, stream)
    manifest = drain(e2e, producer, manifest_path, [warm], workers)

    # THEN every parent reached its end before any of its children started
    children = {
        s["ShardId"]: [s.get("ParentShardId"), s.get("AdjacentParentShardId")]
        for s in kinesis.list_shards(StreamName=stream)["Shards"]
        if s.get("ParentShardId")
    }
    assert len(children) == 3
    ended = {e["shard_id"]: e["timestamp"] for e in events_of(logs, SHARD_ENDED)}
    started: dict[str, str] = {}
    for e in events_of(logs, "initialized"):
        started.setdefault(e["shard_id"], e["timestamp"])
        started[e["shard_id"]] = min(started[e["shard_id"]], e["timestamp"])
    for child, parents in children.items():
        assert child in started, f"{child} was never processed"
        for parent in filter(None, parents):
            assert parent in ended, f"{parent} never reached its end"
            assert ended[parent] <= started[child], f"{child} started before {parent} ended"
    # AND the counts are exact across parents and children
    verdict = e2e.verify([warm, manifest])
    assert verdict.exact, verdict.problems[:10]


def noise_reason(data: bytes) -> str:
    """What arbitrary bytes are, told by the standard library rather than by our decoder."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    try:
        value = json.loads(text)
    except ValueError:
        return "not_json"
    return "not_object" if not isinstance(value, dict) else "missing_field"


def hostile_corpus(rng: random.Random, count: int) -> list[tuple[bytes, str]]:
    """Records that break the contract in every way the hypothesis corpus of the functional
    tests explores, each with the reason the contract (README) gives it, drawn
    deterministically so the run can be repeated."""
    now = datetime.now(UTC)

    def event(**override: object) -> dict[str, object]:
        values: dict[str, object] = {
            "event_id": f"h-{rng.getrandbits(40):010x}",
            "type": "click",
            "session_id": f"hs-{rng.getrandbits(32):08x}",
            "page": "/p",
            "timestamp": (now - timedelta(minutes=5)).isoformat(),
        }
        values.update(override)
        return values

    def without(values: dict[str, object], field: str) -> dict[str, object]:
        return {key: value for key, value in values.items() if key != field}  # missing field

    def noise(data: bytes) -> tuple[bytes, str]:
        return data, noise_reason(data)

    def encoded(value: object, reason: str) -> tuple[bytes, str]:
        return json.dumps(value).encode(), reason

    makers: list[Callable[[], tuple[bytes, str]]] = [
        lambda: noise(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))),
        lambda: (b"\xc3\x28" + rng.randbytes(20), "not_utf8"),
        lambda: noise("".join(chr(rng.randint(32, 0x2FFF)) for _ in range(50)).encode()),
        lambda: encoded(rng.choice([[1, 2], 42, None, "x", True]), "not_object"),
        lambda: encoded(
            without(event(), rng.choice(["type", "page", "timestamp"])), "missing_field"
        ),
        lambda: encoded(event(x=rng.choice(["12", 1.5, [], {}])), "wrong_type"),
        lambda: encoded(event(page="/ctl\x00\x07"), "invalid_value"),  # control characters
        # a 600 kB page, past the contract's 2,048 characters (kinesis-mock drops connections
        # on much larger PutRecords bodies; the functional corpus covers records over 1 MiB)
        lambda: encoded(event(page="/" + "x" * 600_000), "invalid_value"),
        lambda: (b'{"a":' * 3000 + b"1" + b"}" * 3000, "too_deep"),
        lambda: encoded(
            event(timestamp=(now + timedelta(days=365 * rng.choice([-9, -2, 3, 40]))).isoformat()),
            "timestamp_out_of_range",
        ),  # years away
    ]
    return [makers[index % len(makers)]() for index in range(count)]


def test_hostile_records_at_scale_are_dead_lettered_with_their_reasons(
    e2e: E2EStack, tmp_path: Path
) -> None:
    # GIVEN two workers, and a stream that receives 1,000 hostile records of ten kinds
    # (random bytes, bad UTF-8, not JSON, not objects, missing fields, wrong types, control
    # characters, 600 kB fields, 3,000-deep nesting, timestamps years away) among valid traffic
    logs = tmp_path / "logs"
    workers = [LocalWorker(name, logs / f"{name}.log").start() for name in ("h-a", "h-b")]
    warm = warm_up(e2e, tmp_path, workers, seed=126)
    corpus = hostile_corpus(random.Random(26), 1_000)
    # (kinesis-mock takes seconds to take large records in: a generous read timeout)
    kinesis = aws.local_client(
        "kinesis", e2e.state.kinesis_endpoint, e2e.state.region, max_attempts=1, timeout_seconds=120
    )
    sender = PutRecordsSender(kinesis, e2e.state.outputs["StreamName"])
    hostile_records = (OutgoingRecord(data, f"pk-{n}") for n, (data, _) in enumerate(corpus))
    for batch in batches(hostile_records, max_bytes=1024 * 1024):
        sender.send(batch)
    hostile = build_manifest([], [], seed=None, source="hostile")
    hostile.malformed_records += [
        MalformedTruth(sha256=hashlib.sha256(data).hexdigest(), expected_reason=reason)
        for data, reason in corpus
    ]
    hostile.last_sequence_per_shard = {k: str(v) for k, v in sender.stats.last_sequence.items()}
    # AND valid traffic after it
    path = tmp_path / "m.json"
    producer = produce_in_background(
        produce_args(path, seed=26, events=3_000, malformed=30, start=START, rate=500)
    )
    manifest = drain(e2e, producer, path, [warm, hostile], workers)

    # THEN the workers never stopped, every hostile record is one dead letter with its typed
    # reason, and the valid traffic is exact
    assert {m.expected_reason for m in hostile.malformed_records} >= {
        "not_utf8",
        "not_json",
        "not_object",
        "missing_field",
        "wrong_type",
        "invalid_value",
        "too_deep",
        "timestamp_out_of_range",
    }
    verdict = e2e.verify([warm, hostile, manifest])
    assert verdict.exact, verdict.problems[:10]
    assert verdict.dead_letters == 4 + 1_000 + 30
    no_tracebacks(logs)
