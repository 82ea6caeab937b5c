"""The collector as its own process on a free loopback port, as `clickstream collect` runs it."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from clickstream.kernel import aws
from clickstream.kernel.events import carried_refusal
from clickstream.local.settings import LOOPBACK
from clickstream.local.stack import LocalStackState
from clickstream.tools.streamread import StreamRecord, read_stream
from tests.support.stack import free_port

WRITE_KEYS = ("test-key-old-1", "test-key-new-2")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def basic(key: str) -> dict[str, str]:
    """HTTP Basic with the key as user name, as Segment's server libraries send it."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def own_event(event_id: str, session: str = "s-1", **fields: Any) -> dict[str, Any]:
    """A click in our own contract, sent now; `fields` replace or add to it."""
    values: dict[str, Any] = {
        "event_id": event_id,
        "type": "click",
        "session_id": session,
        "page": "/pricing",
        "timestamp": now_iso(),
        "x": 10,
        "y": 20,
    }
    values.update(fields)
    return values


@dataclass
class CollectorProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM, as ECS stops a task; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def new_stream(state: LocalStackState, shards: int = 1) -> str:
    """A stream of the test's own in kinesis-mock, so its records are only the test's."""
    kinesis = aws.local_client("kinesis", state.kinesis_endpoint, state.region)
    name = f"collector-{uuid.uuid4().hex[:10]}"
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + 30
    while (
        kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
        != "ACTIVE"
    ):
        assert time.monotonic() < deadline, f"stream {name} not ACTIVE"
        time.sleep(0.1)
    return name


def stream_contents(
    state: LocalStackState, stream: str
) -> tuple[list[StreamRecord], list[StreamRecord]]:
    """The stream's records, in order: the events, and the refusals the collector passed on
    (`clickstream.kernel.events.refusal_record`), which are no events."""
    kinesis = aws.local_client("kinesis", state.kinesis_endpoint, state.region)
    events: list[StreamRecord] = []
    refusals: list[StreamRecord] = []
    for record in read_stream(kinesis, stream):
        (events if carried_refusal(record.data) is None else refusals).append(record)
    return events, refusals


@contextmanager
def running_collector(
    state: LocalStackState,
    stream_name: str,
    log_dir: Path,
    *,
    kinesis_endpoint: str | None = None,
    environment: Mapping[str, str] | None = None,
    **settings: Any,
) -> Iterator[CollectorProcess]:
    """`python -m collector` against the local stack (or a proxy in front of its Kinesis);
    `environment` adds to or replaces its variables."""
    port = free_port()
    env = {
        **os.environ,
        **state.environment(),
        "CLICKSTREAM_COLLECTOR_STREAM_NAME": stream_name,
        "CLICKSTREAM_COLLECTOR_PORT": str(port),
        "CLICKSTREAM_COLLECTOR_WRITE_KEYS": ",".join(WRITE_KEYS),
        "CLICKSTREAM_COLLECTOR_LOG_LEVEL": "INFO",
    }
    if kinesis_endpoint:
        env["AWS_ENDPOINT_URL_KINESIS"] = kinesis_endpoint
    env.update({f"CLICKSTREAM_COLLECTOR_{k.upper()}": str(v) for k, v in settings.items()})
    env.update(environment or {})
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"collector-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "collector"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    collector = CollectorProcess(f"http://{LOOPBACK}:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"collector exited: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{collector.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"collector not up: {log.read_text()[-2000:]}"
            time.sleep(0.1)
        yield collector
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
