"""`clickstream bench freshness`: how long an event takes from the stream to the readers.

On the local stack with a real KCL worker (polling the stream once a second, as on AWS by
default, not the local stack's quicker 250 ms), beside light background traffic: probe
events are put one at a time, each its own session on its own page, and a watcher reads
what readers read (the minute's live rollups, as the dashboard does, and the sessions
table) every 100 ms until each probe shows. The figures are put → visible: p50, p95 and the
worst, for page counters and for sessions.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clickstream.kernel import aws, dynamo
from clickstream.kernel.events import ClickEvent, EventType, minute_key
from clickstream.local.stack import LocalStackState
from clickstream.local.workers import LocalWorker
from clickstream.stores.page_stats import rollup_rows_for_minute
from consumer.core.pending import Cadences
from insights import progress
from producer.generator import TrafficProfile, generate
from producer.run import outgoing

WATCH_SECONDS = 0.1
AWS_POLL_MS = "1000"
"""KCL's default `idleTimeBetweenReadsInMillis`: the probe measures what AWS would see."""
_DEFAULTS = Cadences()
AWS_TIMINGS = {
    "CLICKSTREAM_IDLE_TIME_BETWEEN_READS_MS": AWS_POLL_MS,
    # The default cadences, not the local stack's quicker ones (consumer.properties).
    "CLICKSTREAM_LIVE_FLUSH_SECONDS": f"{_DEFAULTS.live_seconds:g}",
    "CLICKSTREAM_ITEM_FLUSH_SECONDS": f"{_DEFAULTS.item_seconds:g}",
    "CLICKSTREAM_COMMIT_SECONDS": f"{_DEFAULTS.commit_seconds:g}",
}


@dataclass
class Probe:
    session_id: str
    page: str
    minute: str
    put_at: float
    page_seen: float | None = None
    session_seen: float | None = None


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


@dataclass
class FreshnessReport:
    probes: int
    seconds: float
    page_seconds: list[float] = field(default_factory=list)
    session_seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "probes": self.probes,
            "seconds": self.seconds,
            "page_counters": self._figures(self.page_seconds),
            "sessions": self._figures(self.session_seconds),
        }

    def _figures(self, values: list[float]) -> dict[str, Any]:
        return {
            "seen": len(values),
            "p50_seconds": _percentile(values, 0.50),
            "p95_seconds": _percentile(values, 0.95),
            "max_seconds": round(max(values), 2) if values else None,
        }


def _probe_event(session_id: str, page: str) -> ClickEvent:
    return ClickEvent(
        event_id=f"probe-{uuid.uuid4().hex}",
        type=EventType.PAGE_VIEW,
        session_id=session_id,
        page=page,
        timestamp=datetime.now(UTC),
    )


def _wait_for_leases(dynamodb: Any, lease_table: str, shards: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = [
            lease
            for lease in progress.leases(dynamodb, lease_table).values()
            if lease.get("leaseOwner")
        ]
        if len(owned) >= shards:
            return
        time.sleep(1.0)
    raise TimeoutError(f"the worker held no lease on every shard within {timeout:.0f} s")


def run(
    state: LocalStackState,
    *,
    seconds: float,
    background_per_second: float,
    logs: Path,
    on_progress: Callable[[str], None] = lambda line: None,
) -> FreshnessReport:
    environment = state.environment()
    stream = environment["CLICKSTREAM_STREAM_NAME"]
    sessions_table = environment["CLICKSTREAM_SESSIONS_TABLE"]
    page_stats = environment["CLICKSTREAM_PAGE_STATS_TABLE"]
    dynamodb = aws.local_client("dynamodb", state.moto_endpoint, state.region)
    kinesis = aws.local_client("kinesis", state.kinesis_endpoint, state.region)
    shards = aws.shard_ids(kinesis, stream)
    worker = LocalWorker("freshness", logs / "freshness.log", AWS_TIMINGS).start()
    probes: list[Probe] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        on_progress("waiting for the worker to take every shard's lease")
        _wait_for_leases(dynamodb, f"{stream}-consumer", len(shards), timeout=240)
        watcher = threading.Thread(
            target=_watch, args=(dynamodb, page_stats, sessions_table, probes, lock, stop)
        )
        watcher.start()
        background, _ = generate(
            7, datetime.now(UTC), max(1, int(seconds * background_per_second)), TrafficProfile()
        )
        run_id = uuid.uuid4().hex[:8]
        began = time.monotonic()
        sent = 0
        while time.monotonic() - began < seconds:
            second_began = time.monotonic()
            batch = [
                outgoing(event.model_copy(update={"timestamp": datetime.now(UTC)}))
                for event in background[sent : sent + int(background_per_second)]
                if isinstance(event, ClickEvent)
            ]
            sent += int(background_per_second)
            if batch:
                kinesis.put_records(
                    StreamName=stream,
                    Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in batch],
                )
            session_id = f"probe-{run_id}-{len(probes)}"
            page = f"/probe/{run_id}/{len(probes)}"
            event = _probe_event(session_id, page)
            out = outgoing(event)
            kinesis.put_record(StreamName=stream, Data=out.data, PartitionKey=out.partition_key)
            with lock:
                probes.append(
                    Probe(session_id, page, minute_key(event.timestamp), time.monotonic())
                )
            time.sleep(max(0.0, 1.0 - (time.monotonic() - second_began)))
        on_progress(f"{len(probes)} probes sent; waiting for the last to show")
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            with lock:
                if all(p.page_seen and p.session_seen for p in probes):
                    break
            time.sleep(1.0)
    finally:
        stop.set()
        worker.stop()
    report = FreshnessReport(len(probes), seconds)
    report.page_seconds = [p.page_seen - p.put_at for p in probes if p.page_seen]
    report.session_seconds = [p.session_seen - p.put_at for p in probes if p.session_seen]
    return report


def _watch(
    dynamodb: Any,
    page_stats: str,
    sessions_table: str,
    probes: list[Probe],
    lock: threading.Lock,
    stop: threading.Event,
) -> None:
    """Read what readers read, every 100 ms, and note when each probe first shows."""
    while not stop.is_set():
        with lock:
            waiting_pages = [p for p in probes if p.page_seen is None]
            waiting_sessions = [p for p in probes if p.session_seen is None]
        if waiting_pages:
            pages: set[str] = set()
            for minute in {p.minute for p in waiting_pages}:
                pages |= {
                    row["page"] for row in rollup_rows_for_minute(dynamodb, page_stats, minute)
                }
            seen_at = time.monotonic()
            for probe in waiting_pages:
                if probe.page in pages:
                    probe.page_seen = seen_at
        if waiting_sessions:
            keys = [{"session_id": p.session_id} for p in waiting_sessions]
            found = {
                item["session_id"] for item in dynamo.get_items(dynamodb, sessions_table, keys)
            }
            seen_at = time.monotonic()
            for probe in waiting_sessions:
                if probe.session_id in found:
                    probe.session_seen = seen_at
        stop.wait(WATCH_SECONDS)
