"""End-to-end helpers: a local stack of a test's own through the CLI, producers, checks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from clickstream.kernel import aws
from clickstream.local import stack
from clickstream.local.settings import LocalStackSettings
from clickstream.local.stack import LocalStackState
from clickstream.local.workers import LocalWorker, wait_until_caught_up
from clickstream.tools.verify import Verdict, combine, read_results, result_names, verify
from consumer.pipeline import LEASE_LOST, LEASE_MOVED
from insights import progress
from producer.manifest import Manifest
from tests.support.phases import phase, record_kcl_starts
from tests.support.stack import free_port


def clickstream(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "clickstream.cli", *args],
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class E2EStack:
    state: LocalStackState
    dynamodb: Any
    s3: Any

    @property
    def lease_table(self) -> str:
        return f"{self.state.outputs['StreamName']}-consumer"

    @property
    def names(self) -> dict[str, str]:
        return result_names(self.state.environment())

    def wait_caught_up(
        self, manifests: Sequence[Manifest], workers: Sequence[LocalWorker], timeout: float = 420
    ) -> float:
        last = progress.last_sequences(m.last_sequence_per_shard for m in manifests)
        with phase("draining to exact"):
            return wait_until_caught_up(
                self.dynamodb, self.lease_table, last, workers, timeout=timeout
            )

    def verify(self, manifests: Sequence[Manifest]) -> Verdict:
        with phase("verifying"):
            results = read_results(self.dynamodb, self.s3, self.names)
            return verify(combine(list(manifests)), results)


@contextlib.contextmanager
def cli_stack(state_dir: Path, shards: int, name: str) -> Iterator[E2EStack]:
    """`clickstream local up` on free ports; the environment points the CLI and workers at it."""
    variables = {
        "CLICKSTREAM_LOCAL_STATE_DIR": str(state_dir),
        "CLICKSTREAM_LOCAL_MOTO_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_KINESIS_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_KINESIS_TLS_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_STACK_NAME": name,
    }
    saved = dict(os.environ)
    os.environ.update(variables)
    for variable in ("CLICKSTREAM_STREAM_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
        os.environ.pop(variable, None)
    try:
        with phase("stack up"):
            up = clickstream("local", "up", "--shards", str(shards))
        assert up.returncode == 0, up.stderr.decode()
        state = stack.load_state(LocalStackSettings())
        assert state is not None
        try:
            yield E2EStack(
                state,
                aws.local_client("dynamodb", state.moto_endpoint, state.region),
                aws.local_client("s3", state.moto_endpoint, state.region),
            )
        finally:
            # A scenario that failed before stopping its workers must not leave them (and
            # their JVMs) running after the suite.
            record_kcl_starts(worker.log_path for worker in LocalWorker.started)
            with phase("teardown"):
                leftovers = LocalWorker.kill_leftovers()
                down = clickstream("local", "down")
            assert down.returncode == 0, down.stderr.decode()
            if leftovers:
                print(f"killed workers left running: {leftovers}")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def produce_args(
    manifest: Path,
    *,
    seed: int,
    events: int,
    malformed: int,
    start: datetime,
    rate: float | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    args = [
        "produce",
        "--events",
        str(events),
        "--seed",
        str(seed),
        "--malformed",
        str(malformed),
        "--bots",
        "1",
        "--start",
        start.strftime("%Y-%m-%dT%H:%M:%S"),
        "--manifest",
        str(manifest),
        *extra,
    ]
    if rate is not None:
        args += ["--rate", str(rate)]
    return args


def produce_in_background(args: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "clickstream.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(producer: subprocess.Popen[bytes], manifest: Path, timeout: float = 300) -> Manifest:
    with phase("producing"):
        _, stderr = producer.communicate(timeout=timeout)
    assert producer.returncode == 0, stderr.decode()
    return Manifest.model_validate_json(manifest.read_text())


def drain(
    e2e: E2EStack,
    producer: subprocess.Popen[bytes],
    manifest_path: Path,
    earlier: Sequence[Manifest],
    workers: Sequence[LocalWorker],
) -> Manifest:
    """Let the producer finish, wait until the workers consumed everything, stop them."""
    manifest = finish(producer, manifest_path)
    try:
        e2e.wait_caught_up([*earlier, manifest], workers)
    finally:
        for worker in workers:
            worker.stop()
    return manifest


GRACEFUL_SHUTDOWN = (
    "shutdown requested: flushed and checkpointed",
    "shutdown requested: nothing new since the last checkpoint",
)
"""What a processor logs when KCL asks it to shut down and it checkpoints its last record:
after flushing what it had, or with nothing buffered since its last checkpoint."""
SHUTDOWN_STARTED = '"event": "stopping: SIGTERM to the KCL daemon"'
"""What `consume` logs when it passes SIGTERM on to the daemon: the shutdown starts there."""


def stopped_gracefully(log: Path) -> bool:
    """The worker's shards answered its shutdown and no flush failed: every shard it held
    when the shutdown started answered with its final checkpoint, or lost its lease meanwhile
    (KCL moved it: with graceful handoff off a rebalance is a lease move, docs/kcl.md, and
    the leader can decide one in the second the shutdown starts; seen in CI: "Assigned lease
    shardId-000000000001 ownership from e2e-a to e2e-b" 0.8 s after SIGTERM), and at least
    one answered with its checkpoint. A worker that held no shard when it was stopped (KCL
    had not balanced one to it yet) has nothing to answer. A shard fenced before the
    shutdown is no failure of it; during it, only a fence because the lease moved is. The
    callers' exactness checks show nothing was lost."""
    text = log.read_text(errors="replace")
    if "flush failed" in text:
        return False
    cut = text.rfind(SHUTDOWN_STARTED)
    before, after = (text, "") if cut < 0 else (text[:cut], text[cut:])
    held: set[str] = set()
    for event in _processor_events(before):
        name, shard = str(event.get("event", "")), str(event["shard_id"])
        if name == "initialized":
            held.add(shard)
        elif name.startswith(PROCESSOR_ENDINGS):
            held.discard(shard)
    graceful: set[str] = set()
    moved: set[str] = set()
    for event in _processor_events(after):
        name, shard = str(event.get("event", "")), str(event["shard_id"])
        if name in GRACEFUL_SHUTDOWN:
            graceful.add(shard)
        elif name == LEASE_LOST or (name.startswith("fenced") and event.get("why") == LEASE_MOVED):
            moved.add(shard)
        elif name.startswith("fenced"):
            return False
    return held <= graceful | moved and (not held or bool(graceful & held))


PROCESSOR_ENDINGS = (LEASE_LOST, "shard ended", "shutdown requested", "fenced")
"""What ends a record processor's hold on its shard, in its log."""


def _processor_events(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        if line.startswith("{") and '"shard_id"' in line:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("component") == "processor" and event.get("shard_id"):
                    events.append(event)
    return events
