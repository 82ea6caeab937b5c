"""`clickstream bench reports`: what a site owner's report over a month costs, in figures.

Days of the generator's world traffic (1,000,000 events a day by default, countries as the
collector resolves them) are archived into a bucket of the local stack's S3 as four shards'
processors archive them (the first day generated, the others its traffic again as new visits:
`shifted_day`), and every hour is compacted (its Parquet and its session parts).
Then, over the whole span:

- compaction: seconds and bytes of the hours' events, and of their parts (their share);
- reports (`insights.report`, DuckDB over the parts): the span by source, and the same
  filtered by a country and a device type: cold (a new connection: the archive listed, the
  manifests read, the parts read) and warm (the same report again on that connection), p50
  and p95 of `--runs` each, and the bytes the visits' reading took from S3 (DuckDB's own
  HTTP counters);
- the dashboard: the site owner's view of the span opened in headless Chromium, the time
  until its figures are drawn (first paint of the data), cold and again.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import itertools
import json
import statistics
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from clickstream.kernel.events import ClickEvent
from clickstream.stores.archive_layout import (
    LINES_SUFFIX,
    RAW_PREFIX,
    hour_of,
    lines_of,
    raw_prefix,
)
from clickstream.stores.positions import Position
from clickstream.tools.bench_lake import bytes_read
from clickstream.tools.bench_traffic import profile_for_rate, steady_events
from consumer.core.batch import archive_objects
from consumer.core.positioned import PositionedEvent
from insights.archive import listed
from producer.manifest import shard_index
from producer.world import country_of_session

SHARDS = 4
COMMIT_SECONDS = 60
"""A processor's commit window: one object per shard and event-time hour per window."""


@dataclass
class Timing:
    name: str
    open_p50: float
    """Of the cold time: opening the reading (the hours listed, the manifests read)."""
    cold_p50: float
    cold_p95: float
    warm_p50: float
    warm_p95: float
    bytes_read: int
    visits: int
    opening_requests: dict[str, int] = field(default_factory=dict)
    """The S3 calls one opening makes, by operation (the LISTs are what an emulator scanning
    every key of the bucket makes slow: S3 answers one in tens of milliseconds)."""


@dataclass
class Analysis:
    """A funnel, paths or retention over the span: cold (a new reading) and warm (again)."""

    name: str
    cold_p50: float
    cold_p95: float
    warm_p50: float
    warm_p95: float
    bytes_read: int
    answer: str
    """What it found, in brief (the counts per step, the paths' visits, the cohorts)."""


@dataclass
class ReportsBench:
    days: int
    events_per_day: int
    events: int = 0
    hours: int = 0
    write_seconds: float = 0.0
    events_bytes: int = 0
    parts_bytes: int = 0
    compaction_seconds: float = 0.0
    parts_seconds: float = 0.0
    rollup_seconds: float = 0.0
    """Building the days' rollups of the parts (`Compactor.roll_up`), after the hours."""
    rollup_bytes: int = 0
    reports: list[Timing] = field(default_factory=list)
    analyses: list[Analysis] = field(default_factory=list)
    first_paint_cold: float | None = None
    """A dashboard just started, its first report opening the reading."""
    first_paint_warm: float | None = None
    """The same view again within the refresh interval (its answer kept)."""
    first_paint_kept: float | None = None
    """A dashboard whose reading was opened ahead, as a running one's is."""
    kept_reading_seconds: float | None = None
    """Opening that reading: the span and as much before, the sessions merged."""
    kept_reading_bytes: int | None = None
    """The memory DuckDB holds for it."""

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        events_seconds = self.compaction_seconds - self.parts_seconds
        found["parts_time_share"] = (
            round((self.parts_seconds + self.rollup_seconds) / events_seconds, 3)
            if events_seconds
            else None
        )
        found["parts_bytes_share"] = (
            round(self.parts_bytes / self.events_bytes, 3) if self.events_bytes else None
        )
        return found


def day_of_events(seed: int, start: datetime, events: int) -> Iterator[ClickEvent]:
    """`events` of steady world traffic from `start`, within its day, with countries."""
    profile = profile_for_rate(events / 86_400 * 1.05, seed)
    end = start + timedelta(days=1)
    steady = itertools.takewhile(lambda e: e.timestamp < end, steady_events(seed, start, profile))
    for event in itertools.islice(steady, events):
        yield event.model_copy(update={"country": country_of_session(seed, event.session_id).code})


def write_day(s3: Any, bucket: str, seed: int, start: datetime, events: int) -> int:
    """A day archived as four shards' processors archive it; the events written."""
    windows: dict[tuple[int, int], list[PositionedEvent]] = {}
    sequence = itertools.count(1)
    written = 0

    def flush(key: tuple[int, int]) -> None:
        for item in archive_objects(f"shardId-{key[0]:012d}", windows.pop(key), []):
            s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)

    for event in day_of_events(seed, start, events):
        shard = shard_index(event.session_id, SHARDS)
        window = int((event.timestamp - start).total_seconds() // COMMIT_SECONDS)
        for old in [k for k in windows if k[0] == shard and k[1] < window]:
            flush(old)
        windows.setdefault((shard, window), []).append(
            PositionedEvent(Position(next(sequence)), event, event.to_record(), event.session_id)
        )
        written += 1
    for key in list(windows):
        flush(key)
    return written


RETURNING_SHARE = 4
"""One visitor in four of a day comes back on each later day (the others are new people)."""


def shifted_day(s3: Any, bucket: str, day_one: list[str], days: int) -> int:
    """Day 1's raw objects again `days` later, as new visits: event and session ids are new,
    a visitor's ids kept for one visitor in `RETURNING_SHARE`. Generating a day takes this
    machine minutes (a month: two hours); rewriting one takes seconds, and what a report reads
    (its visits, pages, sources, devices, countries) keeps the generator's mix."""

    def shift(key: str) -> int:
        lines = []
        for line in lines_of(s3.get_object(Bucket=bucket, Key=key)["Body"].read()):
            event = json.loads(line)
            at = datetime.fromisoformat(event["timestamp"]) + timedelta(days=days)
            event["timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            event["event_id"] += f".{days}"
            event["session_id"] += f".{days}"
            for person in ("anonymous_id", "user_id"):
                if event.get(person) and zlib.crc32(event[person].encode()) % RETURNING_SHARE:
                    event[person] += f".{days}"
            lines.append(json.dumps(event, separators=(",", ":")).encode())
        hour = hour_of(key)
        if hour is None:
            raise RuntimeError(f"{key}: not in an hour partition")
        moved = raw_prefix(hour + timedelta(days=days)) + key.rsplit("/", 1)[1]
        s3.put_object(Bucket=bucket, Key=moved, Body=gzip.compress(b"\n".join(lines) + b"\n"))
        return len(lines)

    # Side by side: S3's round trips overlap the rewriting.
    with ThreadPoolExecutor(max_workers=8) as pool:
        return sum(pool.map(shift, day_one))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


BENCH_KEY = "bench/reports.json"
"""Where a generated lake keeps what made it, so `--bucket` measures it again without the
hour of writing and compaction a month takes."""


def run(
    days: int,
    events_per_day: int,
    seed: int,
    runs: int,
    make_s3: Callable[[], Any],
    location_for: Callable[[str], Any],
    on_progress: Callable[[str], None],
    now: datetime | None = None,
    reuse_bucket: str | None = None,
) -> ReportsBench:
    from insights import report

    now = now or datetime.now(UTC)
    s3 = make_s3()
    if reuse_bucket:
        bench, first = kept_lake(s3, reuse_bucket)
        bucket = reuse_bucket
        on_progress(
            f"measuring the lake kept in {bucket}: {bench.days} days, {bench.events:,} events"
        )
    else:
        bucket = f"reportsbench-{uuid.uuid4().hex[:8]}"
        on_progress(f"generating into bucket {bucket} (measure it again with --bucket {bucket})")
        bench, first = generate(s3, bucket, location_for(bucket), days, events_per_day, seed, now,
                                on_progress)  # fmt: skip
    days = bench.days
    location = location_for(bucket)
    if not bench.rollup_seconds:
        roll_up(s3, location, bench, first, now, on_progress)
        keep(s3, bucket, bench, first)
    span = report.Range(first, first + timedelta(days=days), ZoneInfo("UTC"))
    for name, filters in (
        (f"{days} days by source", ()),
        (f"{days} days by source, one country and device", ("country=US", "device_type=mobile")),
    ):
        on_progress(f"report: {name}, {runs} times cold and warm")
        bench.reports.append(time_report(name, filters, span, runs, location, s3))
    for name in ANALYSES:
        on_progress(f"{name}, {min(runs, 3)} times cold and warm")
        bench.analyses.append(time_analysis(name, span, min(runs, 3), location, s3))
    on_progress("the site owner's view of the span in headless Chromium")
    first_paint(bench, location, s3, span)
    return bench


def roll_up(
    s3: Any,
    location: Any,
    bench: ReportsBench,
    first: datetime,
    now: datetime,
    on_progress: Callable[[str], None],
) -> None:
    """Every day's rollup of its hours' parts, timed."""
    from insights.compaction import Compactor
    from insights.settings import LakeSettings

    compactor = Compactor(s3, location, LakeSettings(), clock=lambda: now + timedelta(days=1))
    on_progress(f"rolling up {bench.days} days")
    for day in range(bench.days + 1):
        result = compactor.roll_up(first + timedelta(days=day))
        if result.outcome not in {"rolled up", "up to date", "empty"}:
            on_progress(f"day {result.hour:%Y-%m-%d}: {result.outcome} {result.notes}")
        bench.rollup_seconds += result.seconds
        bench.rollup_bytes += result.parts_bytes


def keep(s3: Any, bucket: str, bench: ReportsBench, first: datetime) -> None:
    """The lake's figures and first hour, kept in it for `kept_lake`."""
    kept = {**asdict(bench), "first": first.isoformat()}
    s3.put_object(Bucket=bucket, Key=BENCH_KEY, Body=json.dumps(kept).encode())


def kept_lake(s3: Any, bucket: str) -> tuple[ReportsBench, datetime]:
    """The figures of a lake `generate` made earlier, and its first hour."""
    try:
        kept = json.loads(s3.get_object(Bucket=bucket, Key=BENCH_KEY)["Body"].read())
    except s3.exceptions.ClientError as error:
        raise RuntimeError(f"bucket {bucket} holds no lake the bench generated") from error
    first = datetime.fromisoformat(kept.pop("first"))
    return ReportsBench(**kept), first


def generate(
    s3: Any,
    bucket: str,
    location: Any,
    days: int,
    events_per_day: int,
    seed: int,
    now: datetime,
    on_progress: Callable[[str], None],
) -> tuple[ReportsBench, datetime]:
    """Days of traffic archived and compacted into a new `bucket`, its figures kept in it."""
    from insights.compaction import Compactor
    from insights.lake import hours_between
    from insights.settings import LakeSettings

    bench = ReportsBench(days, events_per_day)
    first = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    s3.create_bucket(Bucket=bucket)
    started = time.monotonic()
    on_progress(f"day 1 of {days}: {events_per_day:,} events into the raw archive")
    bench.events += write_day(s3, bucket, seed, first, events_per_day)
    day_one = [
        entry["Key"]
        for entry in listed(s3, bucket, f"{RAW_PREFIX}/")
        if entry["Key"].endswith(LINES_SUFFIX)
    ]
    for day in range(1, days):
        on_progress(f"day {day + 1} of {days}: day 1's traffic as new visits and visitors")
        bench.events += shifted_day(s3, bucket, day_one, day)
    bench.write_seconds = time.monotonic() - started
    compactor = Compactor(s3, location, LakeSettings(), clock=lambda: now + timedelta(hours=2))
    hours = hours_between(first, first + timedelta(days=days) - timedelta(hours=1))
    for index, hour in enumerate(hours):
        if index % 24 == 0:
            on_progress(f"compacting hour {index + 1} of {len(hours)}")
        result = compactor.compact(hour)
        bench.hours += 1
        bench.compaction_seconds += result.seconds
        bench.parts_seconds += result.parts_seconds
        bench.events_bytes += result.bytes
        bench.parts_bytes += result.parts_bytes
    keep(s3, bucket, bench, first)
    return bench, first


def time_report(
    name: str, filters: tuple[str, ...], span: Any, runs: int, location: Any, s3: Any
) -> Timing:
    """One report over `span`, `runs` times from a new reading (cold) and again on it (warm)."""
    from insights import archive_views, report

    query = report.Query(span, by=report.dimension("source"), filters=report.filters_of(filters))
    since = report.reading_start(query, compare=False)
    opening: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    visits = read = 0
    requests: collections.Counter[str] = collections.Counter()

    def count(model: Any, **_: Any) -> None:
        requests[model.name] += 1

    for run in range(runs):
        began = time.perf_counter()
        if run == 0:
            s3.meta.events.register("before-call.s3", count)
        connection = archive_views.connect(location, s3, since=since, raw_views=False)
        s3.meta.events.unregister("before-call.s3", count)
        opening.append(time.perf_counter() - began)
        if not read:  # what a cold reading takes from S3 (DuckDB's HTTP counters)
            read = bytes_read(connection, report.visits_select(query, span))
            connection.close()
            began = time.perf_counter()
            connection = archive_views.connect(location, s3, since=since, raw_views=False)
        found = report.report_of(connection, query, compare=False)
        cold.append(time.perf_counter() - began)
        began = time.perf_counter()
        report.report_of(connection, query, compare=False)
        warm.append(time.perf_counter() - began)
        visits = found.totals.visits
        connection.close()
    return Timing(
        name,
        statistics.median(opening),
        statistics.median(cold),
        _percentile(cold, 0.95),
        statistics.median(warm),
        _percentile(warm, 0.95),
        read,
        visits,
        dict(requests),
    )


ANALYSES: Final = (
    "funnel per visit",
    "funnel per person",
    "paths from a page",
    "weekly retention",
)
FUNNEL: Final = ("/pricing", "/cart", "/checkout")


def time_analysis(name: str, span: Any, runs: int, location: Any, s3: Any) -> Analysis:
    """One of `ANALYSES` over `span`, `runs` times from a new reading and again on it."""
    from insights import archive_views, funnels, paths, report, retention
    from insights.goals import parse_goal

    query = report.Query(span, top=10)
    whole = retention.widened(query, "week")
    since = report.reading_start(whole if name == "weekly retention" else query, compare=False)

    def run(connection: Any) -> str:
        if name.startswith("funnel"):
            per = funnels.Per.VISIT if name.endswith("visit") else funnels.Per.PERSON
            found = funnels.funnel_of(
                connection, query, funnels.steps_of(FUNNEL), within=timedelta(minutes=30),
                per=per,
            )  # fmt: skip
            return " > ".join(f"{row['count']:,}" for row in found.rows)
        if name.startswith("paths"):
            taken = paths.paths_of(connection, query, parse_goal("/pricing"), steps=3, before=False)
            return (
                f"{taken.visits:,} visits, top path {taken.rows[0][1]:,}" if taken.rows else "none"
            )
        table = retention.retention_of(connection, query, "week", span.end).as_dict(query)
        first = table["cohorts"][0]
        return f"{first['people']:,} people in week 1, " + ", ".join(
            f"{p['share']:.0%}" for p in first["periods"][1:]
        )

    def opened() -> Any:
        return archive_views.connect(location, s3, since=since, raw_views=False)

    cold: list[float] = []
    warm: list[float] = []
    answer = ""
    for _ in range(runs):
        began = time.perf_counter()
        connection = opened()
        answer = run(connection)
        cold.append(time.perf_counter() - began)
        began = time.perf_counter()
        run(connection)
        warm.append(time.perf_counter() - began)
        connection.close()
    # What a cold run takes from S3 (DuckDB's HTTP counters), on a reading of its own: its
    # one statement over the reading's views.
    connection = opened()
    counted = whole if name == "weekly retention" else query
    visits = report.visits_select(counted, counted.range)
    connection.execute(f"CREATE OR REPLACE TEMP VIEW visits AS {visits}")
    if name.startswith("funnel"):
        per = funnels.Per.VISIT if name.endswith("visit") else funnels.Per.PERSON
        statement = funnels.funnel_select(
            funnels.steps_of(FUNNEL), query, within=timedelta(minutes=30), per=per
        )
    elif name.startswith("paths"):
        statement = paths.paths_select(parse_goal("/pricing"), steps=3, before=False, top=10)
    else:
        statement = retention.retention_select(retention.periods(whole.range, "week"))
    read = bytes_read(connection, statement)
    connection.close()
    return Analysis(
        name,
        statistics.median(cold),
        _percentile(cold, 0.95),
        statistics.median(warm),
        _percentile(warm, 0.95),
        read,
        answer,
    )


def first_paint(bench: ReportsBench, location: Any, s3: Any, span: Any) -> None:
    """Seconds from opening the view of `span` until its figures are drawn: on a dashboard
    just started (its first report opens the reading), again (its answer kept), and on a
    dashboard whose reading was opened ahead (as a running one's is: `insights.readings`).
    The dashboards' clock is the span's end."""
    from clickstream.tools.browser import headless_chromium
    from insights import archive_views
    from insights.dashboard import Dashboard, Sources
    from insights.settings import DashboardSettings

    sources = Sources(
        stream_name="-",
        page_stats_table="-",
        alerts_table=None,
        lease_table="-",
        archive_bucket=location.bucket,
        dynamodb=None,
        kinesis=None,
        s3=s3,
        duckdb=lambda since: archive_views.connect(location, s3, since=since, enrich=False),
        reports=lambda since: archive_views.connect(location, s3, since=since, raw_views=False),
    )
    settings = DashboardSettings(refresh_seconds=60)
    address = (f"/?from={span.start.isoformat()}&to={span.end.isoformat()}").replace("+", "%2B")

    def painted(browser: Any, url: str) -> float:
        began = time.perf_counter()
        browser.get(url)
        while browser.execute_script("return document.body.dataset.state") != "ok":
            if time.perf_counter() - began > 120:
                raise RuntimeError("the view did not draw its figures in 120 s")
            time.sleep(0.02)
        return time.perf_counter() - began

    started = Dashboard(sources, settings, clock=lambda: span.end)
    running = Dashboard(sources, settings, clock=lambda: span.end)
    began = time.perf_counter()
    reading = running.open_reading_ahead()
    bench.kept_reading_seconds = time.perf_counter() - began
    bench.kept_reading_bytes = reading_bytes(reading)
    with (
        serving(started) as first,
        serving(running) as second,
        headless_chromium(1400, 1800) as browser,
    ):
        bench.first_paint_cold = painted(browser, first + address)
        bench.first_paint_warm = painted(browser, first + address)
        bench.first_paint_kept = painted(browser, second + address)
    started.close()
    running.close()


def reading_bytes(connection: Any) -> int:
    """The memory DuckDB holds on a connection's database (its temporary tables')."""
    found = connection.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
    return int(found[0] or 0) if found else 0


@contextlib.contextmanager
def serving(dashboard: Any) -> Iterator[str]:
    """The dashboard served on a loopback port, its address."""
    import uvicorn

    from clickstream.tools.aws_standin import free_port
    from insights.web import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(dashboard, token=None),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(RuntimeError):
            thread.join(timeout=10)
