"""`clickstream bench lake`: what the lake buys, in figures.

An hour of generated traffic (one million events by default, four shards) is written to a
bucket of the local stack's S3 as the workers' archive writes it (one gzip JSON-lines object
per shard and commit window of 60 s), without passing through the stream. Then:

- compaction of the hour by `clickstream compact` in a child process (DuckDB on one thread),
  twice from scratch: the faster run's own time and events/s, its process's CPU, and the
  higher peak resident memory of the two (the child's own `ru_maxrss`), for this hour and for
  one of twice as many events (`--lake-events` times 2), to show the memory flat: the sort
  spills past DuckDB's memory limit instead of growing;
- three typical queries over `raw_events` (the raw JSONL) and over `events` (the Parquet):
  the top pages of the hour, one session's events, one page's clicks for a heatmap: the
  bytes each read from S3 (DuckDB's own HTTP counters) and its wall time (median of three);
- the objects an hour is stored in, before and after.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clickstream.stores import archive_layout as layout
from clickstream.stores.positions import Position
from clickstream.tools.bench_traffic import profile_for_rate, steady_events
from consumer.core.batch import archive_objects
from consumer.core.positioned import PositionedEvent
from producer.manifest import shard_index

HOUR = datetime(2026, 11, 20, 10, tzinfo=UTC)
SHARDS = 4
COMMIT_SECONDS = 60
MEMORY_LIMIT = "512MB"
"""DuckDB's limit in the bench's compactions: well below what either hour's sort needs."""


@dataclass
class QueryFigures:
    name: str
    raw_bytes: int
    parquet_bytes: int
    raw_seconds: float
    parquet_seconds: float
    same_result: bool

    @property
    def fewer_bytes(self) -> float:
        return self.raw_bytes / max(self.parquet_bytes, 1)

    @property
    def faster(self) -> float:
        return self.raw_seconds / max(self.parquet_seconds, 1e-9)


@dataclass
class CompactionFigures:
    events: int
    raw_objects: int
    raw_bytes: int
    parquet_files: int
    parquet_bytes: int
    seconds: float
    """The compaction's own time (listing, DuckDB's read, sort and write, publishing)."""
    process_seconds: float
    cpu_seconds: float
    """The child process's CPU, its Python start (~1 s) included: one thread."""
    peak_rss_mib: float

    @property
    def events_per_second(self) -> float:
        return self.events / max(self.seconds, 1e-9)


@dataclass
class LakeBench:
    events: int
    compactions: list[CompactionFigures] = field(default_factory=list)
    queries: list[QueryFigures] = field(default_factory=list)
    seconds_to_write: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "memory_limit": MEMORY_LIMIT,
            "seconds_to_write_raw": round(self.seconds_to_write, 1),
            "compactions": [
                {**asdict(c), "events_per_second": round(c.events_per_second)}
                for c in self.compactions
            ],
            "queries": [
                {**asdict(q), "fewer_bytes": round(q.fewer_bytes, 1), "faster": round(q.faster, 1)}
                for q in self.queries
            ],
        }


def hour_of_events(seed: int, events: int) -> Iterator[Any]:
    """`events` of steady traffic within one hour (its rate a tenth above events/3,600, so
    that the generator's spread never leaves the hour short of them)."""
    profile = profile_for_rate(events / 3600 * 1.1, seed)
    end = HOUR + timedelta(hours=1)
    return itertools.islice(
        itertools.takewhile(lambda e: e.timestamp < end, steady_events(seed, HOUR, profile)),
        events,
    )


def write_raw_hour(s3: Any, bucket: str, seed: int, events: int) -> tuple[int, int, int]:
    """The hour archived as four shards' processors archive it: events, objects, bytes."""
    windows: dict[tuple[int, int], list[PositionedEvent]] = {}
    sequence = itertools.count(1)
    written = objects = size = 0

    def flush(key: tuple[int, int]) -> None:
        nonlocal objects, size
        for item in archive_objects(f"shardId-{key[0]:012d}", windows.pop(key), []):
            s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
            objects += 1
            size += len(item.body)

    for event in hour_of_events(seed, events):
        shard = shard_index(event.session_id, SHARDS)
        window = int((event.timestamp - HOUR).total_seconds() // COMMIT_SECONDS)
        for old in [k for k in windows if k[0] == shard and k[1] < window]:
            flush(old)
        position = Position(next(sequence))
        windows.setdefault((shard, window), []).append(
            PositionedEvent(position, event, event.to_record(), event.session_id)
        )
        written += 1
    for key in list(windows):
        flush(key)
    return written, objects, size


def compact_in_child(bucket: str, environment: dict[str, str]) -> tuple[float, float, float, float]:
    """`clickstream compact --hour` in a child process: the compaction's own seconds (from
    its --json), the process's wall s, CPU s (its start included) and peak RSS MiB."""
    env = {
        **os.environ,
        **environment,
        "CLICKSTREAM_ARCHIVE_BUCKET": bucket,
        "CLICKSTREAM_LAKE_MEMORY_LIMIT": MEMORY_LIMIT,
        "CLICKSTREAM_LAKE_THREADS": "1",
    }
    hour = f"{HOUR:%Y-%m-%dT%H}"
    command = [sys.executable, "-m", "clickstream.cli", "compact", "--hour", hour, "--json"]
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        started = time.monotonic()
        child = subprocess.Popen(command, env=env, stdout=output, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        errors.seek(0)
        if child.returncode != 0:
            stderr = errors.read().decode(errors="replace")
            raise RuntimeError(f"compaction failed ({child.returncode}): {stderr[-2000:]}")
        (result,) = json.loads(output.read())["hours"]
    cpu = usage.ru_utime + usage.ru_stime
    return float(result["seconds"]), wall, cpu, usage.ru_maxrss / 1024


_HTTP_IN = re.compile(r"in: ([\d.]+) (bytes|KiB|MiB|GiB)")
_UNITS = {"bytes": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def bytes_read(connection: Any, query: str) -> int:
    """What a query read from S3, from DuckDB's own HTTP counters (EXPLAIN ANALYZE)."""
    profile = connection.execute(f"EXPLAIN ANALYZE {query}").fetchall()
    text = "\n".join(str(row[1]) for row in profile)
    found = _HTTP_IN.search(text)
    if found is None:
        raise RuntimeError("DuckDB's profile shows no HTTP figures")
    return int(float(found.group(1)) * _UNITS[found.group(2)])


def timed(connection: Any, query: str) -> tuple[float, list[Any]]:
    times, rows = [], []
    for _ in range(3):
        started = time.perf_counter()
        rows = connection.execute(query).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times), rows


def queries(connection: Any) -> dict[str, str]:
    """The three queries, on a table name `{t}`; the session and page are the hour's busiest."""
    hour = (
        f"year = {HOUR.year} AND month = {HOUR.month} AND day = {HOUR.day} AND hour = {HOUR.hour}"
    )
    (page,) = connection.execute(
        f"SELECT page FROM events WHERE {hour} AND type = 'click' "  # noqa: S608
        "GROUP BY page ORDER BY count(*) DESC, page LIMIT 1"
    ).fetchone()
    (session,) = connection.execute(
        f"SELECT session_id FROM events WHERE {hour} "  # noqa: S608
        "GROUP BY session_id ORDER BY count(*) DESC, session_id LIMIT 1"
    ).fetchone()
    quoted_page = "'" + str(page).replace("'", "''") + "'"
    quoted_session = "'" + str(session).replace("'", "''") + "'"
    # Our own constants and quoted literals only.
    top = "SELECT page, count(*) AS views FROM {t} WHERE %s AND type = 'page_view' "
    top += "GROUP BY page ORDER BY views DESC, page LIMIT 10"
    one_session = "SELECT event_id, type, page, timestamp FROM {t} WHERE %s "
    one_session += "AND session_id = %s ORDER BY timestamp, event_id"
    clicks = "SELECT x, y, viewport_width FROM {t} WHERE %s "
    clicks += "AND type = 'click' AND page = %s ORDER BY x, y, viewport_width"
    return {
        "top pages of the hour": top % hour,
        "one session's events": one_session % (hour, quoted_session),
        "one page's clicks (heatmap)": clicks % (hour, quoted_page),
    }


def run(
    events: int,
    seed: int,
    make_s3: Callable[[], Any],
    location_for: Callable[[str], Any],
    environment: dict[str, str],
    on_progress: Callable[[str], None],
) -> LakeBench:
    from insights import archive_views
    from insights.lake_store import LakeStore

    bench = LakeBench(events)
    s3 = make_s3()
    for scale in (1, 2):
        bucket = f"lakebench-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        on_progress(f"writing {events * scale:,} events of one hour as the archive does")
        started = time.monotonic()
        written, objects, raw_bytes = write_raw_hour(s3, bucket, seed + scale, events * scale)
        if scale == 1:
            bench.seconds_to_write = time.monotonic() - started
        on_progress(f"compacting {written:,} events ({objects} objects) in a child process, twice")
        store = LakeStore(s3, bucket)
        runs = []
        for _ in range(2):
            # The second run compacts the hour from scratch again: its manifest is removed.
            s3.delete_object(Bucket=bucket, Key=layout.manifest_key(HOUR))
            runs.append(compact_in_child(bucket, environment))
        seconds, wall, cpu, _ = min(runs)
        peak = max(run[3] for run in runs)
        manifest, _ = store.manifest(HOUR)
        assert manifest is not None
        bench.compactions.append(
            CompactionFigures(
                events=written,
                raw_objects=objects,
                raw_bytes=raw_bytes,
                parquet_files=len(manifest.files),
                parquet_bytes=sum(f.bytes for f in manifest.files),
                seconds=round(seconds, 2),
                process_seconds=round(wall, 2),
                cpu_seconds=round(cpu, 2),
                peak_rss_mib=round(peak, 1),
            )
        )
        if manifest.rows != written:
            raise RuntimeError(f"the lake holds {manifest.rows} events of {written}")
        if scale == 1:
            on_progress("querying the raw archive and the lake")
            connection = archive_views.connect(location_for(bucket), s3)
            # Every run reads S3 again: DuckDB's cache of remote files would hide the bytes.
            connection.execute("SET enable_external_file_cache = false")
            for name, query in queries(connection).items():
                raw_query, lake_query = query.format(t="raw_events"), query.format(t="events")
                raw_seconds, raw_rows = timed(connection, raw_query)
                lake_seconds, lake_rows = timed(connection, lake_query)
                bench.queries.append(
                    QueryFigures(
                        name,
                        raw_bytes=bytes_read(connection, raw_query),
                        parquet_bytes=bytes_read(connection, lake_query),
                        raw_seconds=round(raw_seconds, 3),
                        parquet_seconds=round(lake_seconds, 3),
                        same_result=raw_rows == lake_rows,
                    )
                )
    return bench
