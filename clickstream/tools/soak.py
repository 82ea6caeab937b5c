"""`clickstream soak`: steady load for a long time, a worker restarted every few minutes.

Not part of CI. Every minute a new seeded chunk of traffic is sent (its own sessions, its
own manifest); two workers consume; one of them is stopped with SIGTERM and started again
every `restart_every` seconds. Every 10 s it samples the workers' resident memory (the
whole process tree: `consume`, the JVM and the Python processors) and the lag: how long the
oldest chunk not yet checkpointed everywhere has been waiting. At the end it waits for the
workers to catch up and checks every chunk, summed, against the tables and the archive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clickstream.kernel import aws
from clickstream.local.stack import LocalStackState
from clickstream.local.workers import LocalWorker, process_tree, wait_until_caught_up
from clickstream.tools.verify import Verdict, combine, read_results, result_names, verify
from insights import progress
from producer.generator import TrafficProfile, generate
from producer.manifest import Manifest, build_manifest
from producer.run import send_all
from producer.sender import PutRecordsSender


@dataclass
class Sample:
    elapsed_seconds: float
    rss_mib: dict[str, float]
    lag_seconds: float


@dataclass
class SoakReport:
    minutes: float
    events: int
    restarts: int
    samples: list[Sample] = field(default_factory=list)
    verdict: Verdict | None = None
    catch_up_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        rss = [sum(s.rss_mib.values()) for s in self.samples]
        lags = sorted(s.lag_seconds for s in self.samples)
        tenth = max(1, len(rss) // 10)
        return {
            "minutes": self.minutes,
            "events": self.events,
            "restarts": self.restarts,
            "rss_mib_first_tenth_mean": round(sum(rss[:tenth]) / tenth, 1) if rss else None,
            "rss_mib_last_tenth_mean": round(sum(rss[-tenth:]) / tenth, 1) if rss else None,
            "rss_mib_max": round(max(rss), 1) if rss else None,
            "lag_seconds_median": lags[len(lags) // 2] if lags else None,
            "lag_seconds_max": lags[-1] if lags else None,
            "catch_up_seconds": round(self.catch_up_seconds, 1),
            "exact": self.verdict.exact if self.verdict else None,
            "verdict": self.verdict.as_dict() if self.verdict else None,
            "samples": [
                {
                    "t": round(s.elapsed_seconds),
                    "rss_mib": s.rss_mib,
                    "lag_s": round(s.lag_seconds, 1),
                }
                for s in self.samples
            ],
        }


@dataclass
class _Chunk:
    sent_at: float
    manifest: Manifest


def run(
    state: LocalStackState,
    *,
    minutes: float,
    events_per_minute: int,
    restart_every: float,
    logs: Path,
    on_sample: Callable[[Sample], None] = lambda sample: None,
) -> SoakReport:
    environment = state.environment()
    stream = environment["CLICKSTREAM_STREAM_NAME"]
    lease_table = f"{stream}-consumer"
    dynamodb = aws.local_client("dynamodb", state.moto_endpoint, state.region)
    kinesis = aws.local_client(
        "kinesis", state.kinesis_endpoint, state.region, max_attempts=1, timeout_seconds=120
    )
    workers = {
        name: LocalWorker(name, logs / f"{name}-0.log").start() for name in ("soak-a", "soak-b")
    }
    report = SoakReport(minutes=minutes, events=0, restarts=0)
    chunks: list[_Chunk] = []
    began = time.monotonic()
    next_chunk = began
    next_restart = began + restart_every
    next_sample = began
    chunk_number = 0
    try:
        while time.monotonic() - began < minutes * 60:
            now = time.monotonic()
            if now >= next_chunk:
                chunk_number += 1
                chunks.append(_send_chunk(kinesis, stream, chunk_number, events_per_minute))
                report.events += events_per_minute
                next_chunk += 60
            if now >= next_restart:
                report.restarts += 1
                name = sorted(workers)[report.restarts % 2]
                workers[name].stop()
                workers[name] = LocalWorker(name, logs / f"{name}-{report.restarts}.log").start()
                next_restart += restart_every
            if now >= next_sample:
                sample = Sample(
                    now - began,
                    {name: process_tree_rss_mib(w) for name, w in workers.items()},
                    _lag(dynamodb, lease_table, chunks, now),
                )
                report.samples.append(sample)
                on_sample(sample)
                next_sample += 10
            time.sleep(0.5)
        last = progress.last_sequences(c.manifest.last_sequence_per_shard for c in chunks)
        report.catch_up_seconds = wait_until_caught_up(
            dynamodb, lease_table, last, list(workers.values()), timeout=900
        )
    finally:
        for worker in workers.values():
            worker.stop()
    names = result_names(environment)
    s3 = aws.local_client("s3", state.moto_endpoint, state.region)
    report.verdict = verify(
        combine([c.manifest for c in chunks]), read_results(dynamodb, s3, names)
    )
    return report


def _send_chunk(kinesis: Any, stream: str, number: int, events: int) -> _Chunk:
    # Each chunk: its own seed (so its own sessions), event time now.
    start = datetime.now(UTC) - timedelta(seconds=30)
    records, anomalies = generate(1_000 + number, start, events, TrafficProfile(malformed=5))
    manifest = build_manifest(records, anomalies, seed=1_000 + number, source="soak")
    sender = PutRecordsSender(kinesis, stream)
    sent = send_all(records, sender)
    manifest.sent = sent.sent
    manifest.last_sequence_per_shard = sent.last_sequence
    return _Chunk(time.monotonic(), manifest)


def _lag(dynamodb: Any, lease_table: str, chunks: list[_Chunk], now: float) -> float:
    """How long the oldest chunk not yet checkpointed on every shard has been waiting."""
    checkpoints = progress.lease_checkpoints(dynamodb, lease_table)
    for chunk in chunks:
        if not progress.caught_up(checkpoints, chunk.manifest.last_sequence_per_shard or {}):
            return max(0.0, now - chunk.sent_at)
    return 0.0


def process_tree_rss_mib(worker: LocalWorker) -> float:
    if worker.process is None or worker.process.poll() is not None:
        return 0.0
    return round(sum(_rss_kib(pid) for pid in process_tree(worker.process.pid)) / 1024, 1)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0
