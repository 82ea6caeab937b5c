"""`clickstream bench collector`: the collector's throughput and latency, figures not pass/fail.

Three processes on loopback: the collector (`python -m collector`, as in production), a fast
stand-in for Kinesis (`clickstream.tools.aws_standin`), and this one, which posts
pre-built batches from many connections for a fixed time per batch size. Reported per batch
size: events/s, requests/s, client-side p50/p99 latency, the collector's CPU use and events
per CPU-second of the collector (what one core sustains), and where that CPU goes: the pure
intake (JSON, validation, enrichment) measured in this process on the same bodies, the rest
being HTTP, the ASGI app, delivery and aiobotocore.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from clickstream.local.settings import LOOPBACK
from clickstream.tools import aws_standin
from collector import intake
from collector.intake import Edge

WRITE_KEY = "bench-write-key"


@dataclass(frozen=True)
class CollectorRun:
    batch_size: int
    connections: int
    seconds: float
    requests: int
    events: int
    failed_requests: int
    events_per_second: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    collector_cpu_percent: float
    events_per_cpu_second: float
    intake_us_per_event: float
    other_us_per_event: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def _processes(log_dir: Path) -> Iterator[tuple[str, int]]:
    """The stand-in and the collector; yields the collector's URL and pid."""
    with aws_standin.running(log_dir / "kinesis-standin.log") as kinesis_url:
        collector_port = aws_standin.free_port()
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_KINESIS": kinesis_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "CLICKSTREAM_COLLECTOR_STREAM_NAME": "bench",
            "CLICKSTREAM_COLLECTOR_PORT": str(collector_port),
            "CLICKSTREAM_COLLECTOR_WRITE_KEYS": WRITE_KEY,
            "CLICKSTREAM_COLLECTOR_METRICS_INTERVAL_SECONDS": "60",
        }
        with (log_dir / "collector.log").open("wb") as log:
            collector = subprocess.Popen(
                [sys.executable, "-m", "collector"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://{LOOPBACK}:{collector_port}"
            aws_standin.wait_for(f"{url}/ready", collector, "the collector")
            yield url, collector.pid
        finally:
            aws_standin.stop(collector)


def _bodies(batch_size: int, count: int = 200) -> list[bytes]:
    """Distinct request bodies of `batch_size` browser-like events each."""
    now = datetime.now(UTC).isoformat()
    bodies = []
    for n in range(count):
        session = f"bench-{n}-{uuid.uuid4().hex[:8]}"
        events = [
            {
                "event_id": uuid.uuid4().hex,
                "type": "click" if i % 3 else "page_view",
                "session_id": session,
                "page": f"/products/{n % 50}?utm_source=bench&utm_campaign=c{i % 7}",
                "timestamp": now,
                "x": 100 + i,
                "y": 200 + i,
                "viewport_width": 1280,
                "viewport_height": 800,
                "referrer": "https://www.example.com/search?q=shoes",
                "properties": {"selector": "div.card > a.buy"},
            }
            for i in range(batch_size)
        ]
        bodies.append(json.dumps({"writeKey": WRITE_KEY, "events": events}).encode())
    return bodies


def intake_seconds_per_event(bodies: list[bytes], batch_size: int) -> float:
    """The pure intake's cost per event on the same bodies: decode, validate, enrich."""
    edge = Edge(received_at=datetime.now(UTC), user_agent="bench")
    rounds = max(1, 4000 // batch_size)
    started = time.perf_counter()
    for n in range(rounds):
        body = intake.decode_body(
            bodies[n % len(bodies)],
            content_type="text/plain",
            content_encoding=None,
            max_bytes=1 << 20,
        )
        intake.own_events(body, edge)
    return (time.perf_counter() - started) / (rounds * batch_size)


async def _load(
    url: str, bodies: list[bytes], connections: int, seconds: float
) -> tuple[list[float], int]:
    latencies: list[float] = []
    failed = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    headers = {"Content-Type": "text/plain"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(offset: int) -> None:
            nonlocal failed
            n = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.post(
                    f"{url}/v1/events", data=bodies[n % len(bodies)], headers=headers
                ) as response:
                    await response.read()
                    if response.status != 200:
                        failed += 1
                latencies.append(time.perf_counter() - started)
                n += connections

        await asyncio.gather(*(client(i) for i in range(connections)))
    return latencies, failed


def run(
    batch_sizes: tuple[int, ...] = (1, 10, 100),
    *,
    seconds: float = 10.0,
    connections: int = 16,
    log_dir: Path = Path(".clickstream/bench"),
) -> list[CollectorRun]:
    results = []
    with _processes(log_dir) as (url, pid):
        collector = psutil.Process(pid)
        for batch_size in batch_sizes:
            bodies = _bodies(batch_size)
            asyncio.run(_load(url, bodies, connections, 1.0))  # warm-up: connections, caches
            before = collector.cpu_times()
            started = time.monotonic()
            latencies, failed = asyncio.run(_load(url, bodies, connections, seconds))
            wall = time.monotonic() - started
            after = collector.cpu_times()
            cpu = (after.user - before.user) + (after.system - before.system)
            requests = len(latencies)
            events = (requests - failed) * batch_size
            ordered = sorted(latencies)
            intake_cost = intake_seconds_per_event(bodies, batch_size)
            per_event_cpu = cpu / events if events else 0.0
            results.append(
                CollectorRun(
                    batch_size=batch_size,
                    connections=connections,
                    seconds=round(wall, 2),
                    requests=requests,
                    events=events,
                    failed_requests=failed,
                    events_per_second=round(events / wall, 1),
                    requests_per_second=round(requests / wall, 1),
                    p50_ms=round(statistics.median(ordered) * 1000, 2),
                    p99_ms=round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
                    collector_cpu_percent=round(100 * cpu / wall, 1),
                    events_per_cpu_second=round(events / cpu, 1) if cpu else 0.0,
                    intake_us_per_event=round(intake_cost * 1e6, 1),
                    other_us_per_event=round(max(0.0, per_event_cpu - intake_cost) * 1e6, 1),
                )
            )
    return results
