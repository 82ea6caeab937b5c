"""Operator tools: `clickstream bench`, `clickstream soak`, `clickstream anomalies measure`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, err, maybe, one_line_errors, out, print_json
from clickstream.kernel.errors import ConfigurationError

if TYPE_CHECKING:
    from clickstream.local.state import LocalStackState
    from clickstream.tools import bench as benchmark

anomalies_app = typer.Typer(help="The anomaly rules: measure them.", no_args_is_help=True)


@anomalies_app.command("measure")
@one_line_errors
def anomalies_measure(
    scenario: Annotated[
        list[str] | None,
        typer.Option(help="Run only this scenario (repeatable); all of them when unset."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run seeded scenarios (normal traffic; injected spikes, drops and bots) through the
    record processors and the page rule, and print precision and recall per rule and false
    alerts per hour of normal traffic."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from clickstream.kernel.logging import configure_logging
    from clickstream.tools import detection

    configure_logging("ERROR")  # the processors log every alert; the figures are the point
    scenarios = detection.standard_scenarios()
    names = [s.name for s in scenarios]
    unknown = [name for name in scenario or [] if name not in names]
    if unknown:
        raise ConfigurationError(f"--scenario {unknown[0]!r}: expected one of {', '.join(names)}")
    chosen = [s for s in scenarios if not scenario or s.name in scenario]
    outcomes = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("scenarios", total=len(chosen))
        for each in chosen:
            progress.update(task, description=f"{each.name} ({each.minutes} min of traffic)")
            outcomes.append(detection.run_scenario(each))
            progress.advance(task)
    result = detection.figures(outcomes)
    if as_json:
        print_json(result)
        return
    runs = Table(title="scenarios")
    for column in ("scenario", "minutes", "events", "injected", "alerts", "minutes judged"):
        runs.add_column(column, justify="left" if column == "scenario" else "right")
    for row in result["scenarios"]:
        runs.add_row(
            row["name"],
            str(row["minutes"]),
            f"{row['events']:,}",
            str(row["anomalies"]),
            str(row["alerts"]),
            str(row["judged_minutes"]),
        )
    out.print(runs)
    rules = Table(title=f"per rule ({result['normal_hours']:.1f} h of normal traffic judged)")
    for column in ("rule", "alerts", "precision", "injected", "recall", "false alerts/h normal"):
        rules.add_column(column, justify="left" if column == "rule" else "right")
    for name, row in result["rules"].items():
        rules.add_row(
            name,
            str(row["alerts"]),
            maybe(row["precision"]),
            str(row["injected"]),
            maybe(row["recall"]),
            maybe(row["false_alerts_per_hour_of_normal_traffic"]),
        )
    out.print(rules)
    for name, row in result["rules"].items():
        for missed in row["missed"]:
            out.print(f"missed {name}: {missed}")
        for false in row["false"]:
            out.print(f"unlabelled {name}: {false}")


class BenchTarget(StrEnum):
    CONSUMER = "consumer"
    COLLECTOR = "collector"
    FRESHNESS = "freshness"
    LAKE = "lake"
    AGENTS = "agents"
    REPORTS = "reports"


@one_line_errors
def bench(
    target: Annotated[
        BenchTarget, typer.Argument(help="What to measure: the record processor or the collector.")
    ] = BenchTarget.CONSUMER,
    seconds_of_traffic: Annotated[
        float,
        typer.Option(
            "--traffic-seconds", min=10, help="consumer: seconds of traffic per rate (steady)."
        ),
    ] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the generated traffic.")] = 7,
    rates: Annotated[
        str, typer.Option(help="Comma-separated arrival rates to simulate, events/s per shard.")
    ] = "100,1000",
    batch_sizes: Annotated[
        str, typer.Option(help="collector: comma-separated events per request.")
    ] = "1,10,100",
    seconds: Annotated[float, typer.Option(min=1, help="collector: seconds per batch size.")] = 10,
    connections: Annotated[
        int, typer.Option(min=1, help="collector: concurrent client connections.")
    ] = 16,
    memory: Annotated[
        bool,
        typer.Option(
            "--memory", help="consumer: memory over a long run instead (--memory-events)."
        ),
    ] = False,
    memory_events: Annotated[int, typer.Option(min=1000)] = 1_000_000,
    lake_events: Annotated[
        int, typer.Option(min=10_000, help="lake: events of the generated hour (then twice).")
    ] = 1_000_000,
    days: Annotated[int, typer.Option(min=1, max=90, help="reports: days of traffic.")] = 30,
    events_per_day: Annotated[
        int, typer.Option(min=10_000, help="reports: events of each day.")
    ] = 1_000_000,
    runs: Annotated[int, typer.Option(min=1, help="reports: runs of each report.")] = 5,
    bucket: Annotated[
        str | None,
        typer.Option(
            help="reports: measure the lake an earlier run generated in this bucket of the "
            "running local stack (its name is printed) instead of generating one."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Benchmark one record processor through amazon_kclpy's protocol (no daemon, no AWS):
    every call it makes per 1,000 events, billed as AWS bills it (DynamoDB write and read
    units, KCL's checkpoints and lease renewals, S3 PUTs) and in dollars per million events,
    and its events per second against the bare protocol ceiling; then the AWS SDK's CPU per
    call (against a loopback stand-in), and what one core sustains with it against the most
    a shard can deliver (2 MB/s of records). `bench agents`: what reading a user agent costs
    per event on the generator's traffic (cached) and per string never seen. `bench collector`:
    the collector's events/s and p50/p99 latency per batch size against a fast loopback
    stand-in for Kinesis, and where its CPU goes. `bench reports`: days of traffic compacted
    (the parts' share of the time and bytes), a report over them cold and warm, and the site
    owner's view's first paint in Chromium."""
    from clickstream.tools import bench as benchmark

    if target is BenchTarget.COLLECTOR:
        bench_collector(batch_sizes, seconds, connections, as_json=as_json)
        return
    if target is BenchTarget.FRESHNESS:
        bench_freshness(seconds_of_traffic, as_json=as_json)
        return
    if target is BenchTarget.LAKE:
        bench_lake(lake_events, seed, as_json=as_json)
        return
    if target is BenchTarget.REPORTS:
        bench_reports(days, events_per_day, seed, runs, bucket, as_json=as_json)
        return
    if target is BenchTarget.AGENTS:
        bench_agents(round(seconds_of_traffic * 1000), seed, as_json=as_json)
        return
    try:
        arrival_rates = [float(rate) for rate in rates.split(",") if rate.strip()]
    except ValueError:
        raise ConfigurationError(f"--rates {rates!r}: expected numbers like 100,1000") from None
    if memory:
        bench_memory(memory_events, seed, arrival_rates[-1], as_json=as_json)
        return
    results = []
    for rate in arrival_rates:
        events = round(rate * seconds_of_traffic)
        with err.status(f"processing {events:,} events at {rate:g} events/s per shard"):
            results.append(benchmark.run(events=events, seed=seed, arrival_rate=rate))
    if as_json:
        print_json({"seed": seed, "runs": [r.as_dict() for r in results]})
        return
    show_bench(results)


@contextlib.contextmanager
def local_stack_for_bench() -> Iterator[LocalStackState]:
    """The running local stack, or one started here and stopped after."""
    from clickstream.local import stack as local_stack
    from clickstream.local.settings import LocalStackSettings

    settings = LocalStackSettings()
    started_here = local_stack.load_state(settings) is None
    state = local_stack.up(settings) if started_here else local_stack.running_state(settings)
    try:
        yield state
    finally:
        if started_here:
            local_stack.down(settings)


def bench_lake(events: int, seed: int, *, as_json: bool) -> None:
    """Raw JSONL against the lake's Parquet, on the local stack's S3 (started here if needed)."""
    from clickstream.kernel import aws
    from clickstream.tools import bench_lake
    from insights.sql import ArchiveLocation

    with local_stack_for_bench() as state:
        report = bench_lake.run(
            events,
            seed,
            make_s3=lambda: aws.local_client("s3", state.moto_endpoint, state.region),
            location_for=lambda bucket: ArchiveLocation(
                bucket, state.region, "test", "test", endpoint_url=state.moto_endpoint
            ),
            environment=state.environment(),
            on_progress=lambda line: err.print(line, highlight=False),
        )
    figures = report.as_dict()
    if as_json:
        print_json(figures)
        return
    limit = figures["memory_limit"]
    compactions = Table(title=f"compacting an hour (DuckDB, one thread, memory limit {limit})")
    for column in ("events", "raw objects", "raw MB", "files", "Parquet MB", "compaction s",
                   "events/s", "process CPU s", "peak RSS MiB"):  # fmt: skip
        compactions.add_column(column, justify="right")
    for row in figures["compactions"]:
        compactions.add_row(
            f"{row['events']:,}",
            str(row["raw_objects"]),
            f"{row['raw_bytes'] / 1e6:.1f}",
            str(row["parquet_files"]),
            f"{row['parquet_bytes'] / 1e6:.1f}",
            f"{row['seconds']:.1f}",
            f"{row['events_per_second']:,}",
            f"{row['cpu_seconds']:.1f}",
            f"{row['peak_rss_mib']:.0f}",
        )
    out.print(compactions)
    found = Table(title=f"queries over the hour of {figures['events']:,} events (DuckDB, S3)")
    for column in ("query", "raw MB read", "Parquet MB read", "fewer bytes", "raw s",
                   "Parquet s", "faster", "same rows"):  # fmt: skip
        found.add_column(column, justify="left" if column == "query" else "right")
    for row in figures["queries"]:
        found.add_row(
            row["name"],
            f"{row['raw_bytes'] / 1e6:.2f}",
            f"{row['parquet_bytes'] / 1e6:.3f}",
            f"{row['fewer_bytes']:g}x",
            f"{row['raw_seconds']:.3f}",
            f"{row['parquet_seconds']:.3f}",
            f"{row['faster']:g}x",
            "yes" if row["same_result"] else "NO",
        )
    out.print(found)


def bench_reports(
    days: int, events_per_day: int, seed: int, runs: int, bucket: str | None, *, as_json: bool
) -> None:
    """A month's report over the local stack's S3 (started here if needed)."""
    from clickstream.kernel import aws
    from clickstream.tools import bench_reports as reports_bench
    from insights.sql import ArchiveLocation

    with local_stack_for_bench() as state:
        figures = reports_bench.run(
            days,
            events_per_day,
            seed,
            runs,
            make_s3=lambda: aws.local_client(
                "s3", state.moto_endpoint, state.region, max_connections=32
            ),
            location_for=lambda bucket: ArchiveLocation(
                bucket, state.region, "test", "test", endpoint_url=state.moto_endpoint
            ),
            on_progress=lambda line: err.print(line, highlight=False),
            reuse_bucket=bucket,
        ).as_dict()
    if as_json:
        print_json(figures)
        return
    lake = Table(title=f"{figures['events']:,} events over {figures['hours']} hours, compacted")
    for column in ("events MB", "parts MB", "rollups MB", "parts/events", "compaction s",
                   "of which parts s", "rollups s", "parts+rollups/events time"):  # fmt: skip
        lake.add_column(column, justify="right")
    lake.add_row(
        f"{figures['events_bytes'] / 1e6:,.1f}",
        f"{figures['parts_bytes'] / 1e6:,.1f}",
        f"{figures['rollup_bytes'] / 1e6:,.1f}",
        f"{figures['parts_bytes_share']:.1%}",
        f"{figures['compaction_seconds']:,.1f}",
        f"{figures['parts_seconds']:,.1f}",
        f"{figures['rollup_seconds']:,.1f}",
        f"{figures['parts_time_share']:.1%}",
    )
    out.print(lake)
    found = Table(title="reports (DuckDB over the session parts, local S3)")
    for column in ("report", "visits", "open p50 s", "cold p50 s", "cold p95 s", "warm p50 s",
                   "warm p95 s", "MB read", "opening's S3 calls"):  # fmt: skip
        found.add_column(column, justify="left" if column == "report" else "right")
    for row in figures["reports"]:
        found.add_row(
            row["name"],
            f"{row['visits']:,}",
            f"{row['open_p50']:.2f}",
            f"{row['cold_p50']:.2f}",
            f"{row['cold_p95']:.2f}",
            f"{row['warm_p50']:.2f}",
            f"{row['warm_p95']:.2f}",
            f"{row['bytes_read'] / 1e6:.1f}",
            ", ".join(f"{n} {op}" for op, n in sorted(row["opening_requests"].items())),
        )
    out.print(found)
    analyses = Table(title="funnels, paths and retention (DuckDB over the events or the parts)")
    for column in ("analysis", "cold p50 s", "cold p95 s", "warm p50 s", "warm p95 s",
                   "MB read", "found"):  # fmt: skip
        analyses.add_column(column, justify="left" if column in {"analysis", "found"} else "right")
    for row in figures["analyses"]:
        analyses.add_row(
            row["name"],
            f"{row['cold_p50']:.2f}",
            f"{row['cold_p95']:.2f}",
            f"{row['warm_p50']:.2f}",
            f"{row['warm_p95']:.2f}",
            f"{row['bytes_read'] / 1e6:.1f}",
            row["answer"],
        )
    out.print(analyses)
    out.print(
        f"the site owner's view in Chromium, first paint of its figures: "
        f"{figures['first_paint_cold']:.2f} s on a dashboard just started, "
        f"{figures['first_paint_warm']:.2f} s again, {figures['first_paint_kept']:.2f} s on "
        f"one whose reading is kept (opened in {figures['kept_reading_seconds']:.1f} s, "
        f"{figures['kept_reading_bytes'] / 1e6:,.0f} MB)"
    )


def bench_freshness(seconds: float, *, as_json: bool) -> None:
    """Put → visible on the local stack (started here when it is not running)."""
    from clickstream.local.settings import LocalStackSettings
    from clickstream.tools import freshness

    with local_stack_for_bench() as state:
        report = freshness.run(
            state,
            seconds=seconds,
            background_per_second=10,
            logs=LocalStackSettings().state_dir / "logs",
            on_progress=lambda line: err.print(line, highlight=False),
        )
    figures = report.as_dict()
    if as_json:
        print_json(figures)
        return
    table = Table(title=f"put → visible, {report.probes} probes over {seconds:g} s (KCL polls 1 s)")
    for column in ("reader", "seen", "p50 s", "p95 s", "max s"):
        table.add_column(column, justify="right")
    for label, key in (("page counters (live rollup)", "page_counters"), ("sessions", "sessions")):
        row = figures[key]
        table.add_row(
            label,
            str(row["seen"]),
            str(row["p50_seconds"]),
            str(row["p95_seconds"]),
            str(row["max_seconds"]),
        )
    out.print(table)


def bench_memory(events: int, seed: int, rate: float, *, as_json: bool) -> None:
    from clickstream.tools import bench_memory as memory_bench

    def show(sample: memory_bench.MemorySample) -> None:
        err.print(
            f"{sample.events:>9,} events  rss {sample.rss_mib:7.1f} MiB  sessions cached "
            f"{sample.cached_sessions:,}  page-minutes {sample.cached_page_minutes:,}  "
            f"window {sample.window_records:,}",
            highlight=False,
        )

    report = memory_bench.run(events=events, seed=seed, arrival_rate=rate, on_sample=show)
    if as_json:
        print_json(report.as_dict())


def show_bench(results: list[benchmark.BenchResult]) -> None:
    rates = [f"{r.events_per_shard_second:g} /s" for r in results]
    calls = Table(title="per 1,000 events: calls (write units, read units)")
    calls.add_column("what")
    for rate in rates:
        calls.add_column(rate, justify="right")
    kinds = sorted({kind for r in results for kind in r.per_1000_events})
    for kind in kinds:
        cells = []
        for result in results:
            figures = result.per_1000_events.get(kind)
            if figures is None:
                cells.append("-")
                continue
            units = [f"{figures.write_units:g} WU"] if figures.write_units else []
            units += [f"{figures.read_units:g} RU"] if figures.read_units else []
            cells.append(f"{figures.calls:g}" + (f" ({', '.join(units)})" if units else ""))
        calls.add_row(kind, *cells)
    rows: list[tuple[str, list[str]]] = [
        ("events (sessions)", [f"{r.events:,} ({r.sessions:,})" for r in results]),
        ("traffic seconds", [f"{r.traffic_seconds:g}" for r in results]),
        ("write units /1k events", [f"{r.write_units_per_1000_events:g}" for r in results]),
        (
            "least session writes /1k events (one item each, 60 s)",
            [f"{r.least_session_writes_per_1000_events:g}" for r in results],
        ),
        ("read units /1k events", [f"{r.read_units_per_1000_events:g}" for r in results]),
        ("S3 PUTs /1k events", [f"{r.s3_puts_per_1000_events:g}" for r in results]),
        ("$ per million events", [f"{r.dollars_per_million_events:.3f}" for r in results]),
        ("processor events/s", [f"{r.events_per_second:,}" for r in results]),
        ("protocol ceiling events/s", [f"{r.ceiling_events_per_second:,}" for r in results]),
        ("ratio to the ceiling", [f"{r.ratio_to_ceiling:.3f}" for r in results]),
        ("SDK CPU per call, ms (a PutItem)", [f"{r.sdk_cpu_ms_per_call:g}" for r in results]),
        ("SDK calls /1k events", [f"{r.sdk_calls_per_1000_events:g}" for r in results]),
        ("SDK CPU per event, µs", [f"{r.sdk_cpu_us_per_event:g}" for r in results]),
        ("events/s a core, with the SDK", [f"{r.events_per_core_second:,}" for r in results]),
        (
            "a shard's reads (2 MB/s), events/s",
            [f"{r.shard_read_events_per_second:,.0f}" for r in results],
        ),
        ("a core over a shard's reads", [f"{r.headroom_over_shard_reads:g}x" for r in results]),
    ]
    summary = Table(title="record processor, default settings, one shard")
    summary.add_column("")
    for rate in rates:
        summary.add_column(rate, justify="right")
    for label, cells in rows:
        summary.add_row(label, *cells)
    out.print(calls)
    out.print(summary)


@one_line_errors
def soak(
    minutes: Annotated[float, typer.Option(min=1, help="How long to run the load.")] = 30,
    events_per_minute: Annotated[int, typer.Option(min=10, help="Steady load.")] = 1_500,
    restart_every: Annotated[
        float, typer.Option(min=30, help="Seconds between worker restarts (SIGTERM, start).")
    ] = 180,
    as_json: JsonFlag = False,
) -> None:
    """Long steady load on the local stack with workers restarted every few minutes: RSS over
    time, lag, and the exactness check at the end. Not part of CI (30 minutes by default)."""
    from clickstream.local import stack as local_stack
    from clickstream.local.settings import LocalStackSettings
    from clickstream.tools import soak as soak_run

    settings = LocalStackSettings()
    started_here = local_stack.load_state(settings) is None
    state = local_stack.up(settings) if started_here else local_stack.running_state(settings)
    logs = settings.state_dir / "logs"

    def show(sample: soak_run.Sample) -> None:
        err.print(
            f"{sample.elapsed_seconds:6.0f} s  rss {sample.rss_mib} MiB  "
            f"lag {sample.lag_seconds:.1f} s",
            highlight=False,
        )

    try:
        report = soak_run.run(
            state,
            minutes=minutes,
            events_per_minute=events_per_minute,
            restart_every=restart_every,
            logs=logs,
            on_sample=show,
        )
    finally:
        if started_here:
            local_stack.down(settings)
    summary = report.as_dict()
    if as_json:
        print_json(summary)
    else:
        for key, value in summary.items():
            if key not in ("samples", "verdict"):
                out.print(f"{key}: {value}", highlight=False)
    if not report.verdict or not report.verdict.exact:
        raise typer.Exit(1)


def bench_agents(events: int, seed: int, *, as_json: bool) -> None:
    from clickstream.tools import bench_agents as agents_bench

    with err.status(f"reading the user agents of {events:,} events, then 2,000 new ones"):
        costs = agents_bench.run(events, seed)
    if as_json:
        print_json(costs.as_dict())
        return
    table = Table(title="user agents: device, browser, OS, bot (agent_of)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        "generator's events (distinct agents)",
        f"{costs.traffic_events:,} ({costs.traffic_distinct_agents})",
    )
    table.add_row("µs per event, cached", f"{costs.traffic_us_per_event:g}")
    table.add_row("strings never seen (crawler list examples)", f"{costs.new_strings:,}")
    table.add_row("µs per new string", f"{costs.new_us_per_string:g}")
    table.add_row("new strings per second", f"{costs.new_strings_per_second:,.0f}")
    table.add_row("once per process: the crawler list compiled, s", f"{costs.compile_seconds:g}")
    out.print(table)


def bench_collector(batch_sizes: str, seconds: float, connections: int, *, as_json: bool) -> None:
    from clickstream.tools import collector_bench

    try:
        sizes = tuple(int(size) for size in batch_sizes.split(",") if size.strip())
    except ValueError:
        raise ConfigurationError(f"--batch-sizes {batch_sizes!r}: expected 1,10,100") from None
    with err.status(f"posting batches of {batch_sizes} events for {seconds:g} s each"):
        results = collector_bench.run(sizes, seconds=seconds, connections=connections)
    if as_json:
        print_json({"connections": connections, "runs": [r.as_dict() for r in results]})
        return
    table = Table(title=f"collector, {connections} connections, loopback Kinesis stand-in")
    columns = (
        "events/request",
        "events/s",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "collector CPU %",
        "events per CPU-s",
        "intake µs/event",
        "rest µs/event",
        "failed",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            str(r.batch_size),
            f"{r.events_per_second:,.0f}",
            f"{r.requests_per_second:,.0f}",
            f"{r.p50_ms:g}",
            f"{r.p99_ms:g}",
            f"{r.collector_cpu_percent:g}",
            f"{r.events_per_cpu_second:,.0f}",
            f"{r.intake_us_per_event:g}",
            f"{r.other_us_per_event:g}",
            str(r.failed_requests),
        )
    out.print(table)
