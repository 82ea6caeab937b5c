"""The `clickstream` command line (typer + rich).

Results go to stdout (a table, or one JSON object with --json); progress, logs and errors go
to stderr. Errors the project raises on purpose print as one line and exit 1.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from botocore.exceptions import BotoCoreError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from clickstream import aws
from clickstream.errors import ClickstreamError, ConfigurationError, ProducerError
from clickstream.events import minute_key
from clickstream.local import stack as local_stack
from clickstream.local.settings import LocalStackSettings
from clickstream.logging import configure_logging
from producer.manifest import Manifest
from producer.run import RunReport

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="Real-time clickstream analytics on Amazon Kinesis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
local_app = typer.Typer(
    help="The local AWS stack: emulators on loopback, the template deployed.", no_args_is_help=True
)
app.add_typer(local_app, name="local")
anomalies_app = typer.Typer(help="The anomaly rules: measure them.", no_args_is_help=True)
app.add_typer(anomalies_app, name="anomalies")
query_app = typer.Typer(help="Read the workers' results: pages and sessions.", no_args_is_help=True)
app.add_typer(query_app, name="query")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the project's own errors (and bad settings) into one line on stderr and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClickstreamError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except BotoCoreError as exc:  # no region, no credentials, endpoint unreachable
            err.print(f"[bold red]error:[/] AWS: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            err.print(f"[bold red]error:[/] setting {where}: {first['msg']}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@app.callback()
def main(
    log_level: Annotated[
        str, typer.Option(help="Log level of the JSON logs on stderr.")
    ] = "WARNING",
) -> None:
    configure_logging(log_level)


# -- local stack --------------------------------------------------------------------------


@local_app.command("up")
@one_line_errors
def local_up(
    as_json: JsonFlag = False,
    shards: Annotated[int | None, typer.Option(help="Stream shard count.")] = None,
) -> None:
    """Start the emulators, deploy infra/cloudformation.yaml through CloudFormation, wait."""
    overrides = {"shard_count": shards} if shards else {}
    settings = LocalStackSettings(**overrides)  # type: ignore[arg-type]
    with err.status("starting the local stack (kinesis-mock, moto) and deploying the template"):
        state = local_stack.up(settings)
    if as_json:
        print_json(
            {
                "endpoints": {e.name: e.endpoint for e in state.emulators},
                "outputs": state.outputs,
                "applied_locally": state.applied_locally,
                "state_dir": str(settings.state_dir),
            }
        )
        return
    table = Table(title=f"local stack {state.stack_name}: CREATE_COMPLETE")
    table.add_column("output")
    table.add_column("value", overflow="fold")
    for emulator in state.emulators:
        table.add_row(f"endpoint ({emulator.name})", emulator.endpoint)
    for key, value in state.outputs.items():
        table.add_row(key, value)
    out.print(table)
    for item in state.applied_locally:
        err.print(f"applied locally (the emulator ignored it in the template): {item}")
    err.print('next: eval "$(clickstream local env)" to point boto3, the AWS CLI and KCL here')


@local_app.command("down")
@one_line_errors
def local_down(as_json: JsonFlag = False) -> None:
    """Stop the emulators; their data goes with them."""
    stopped = local_stack.down(LocalStackSettings())
    if as_json:
        print_json({"stopped": stopped})
    else:
        out.print(f"stopped: {', '.join(stopped)}" if stopped else "no local stack was running")


@local_app.command("status")
@one_line_errors
def local_status(as_json: JsonFlag = False) -> None:
    """Whether the emulators run and answer, and the stack's status."""
    report = local_stack.status(LocalStackSettings())
    if as_json:
        print_json(report)
    elif not report.get("emulators"):
        out.print("no local stack is running")
    else:
        table = Table(title=f"local stack {report['stack_name']}: {report['stack_status']}")
        for column in ("emulator", "pid", "endpoint", "process", "answers"):
            table.add_column(column)
        for e in report["emulators"]:
            table.add_row(e["name"], str(e["pid"]), e["endpoint"], e["process"], str(e["answers"]))
        out.print(table)
    if not report["running"]:
        raise typer.Exit(3)


@local_app.command("env")
@one_line_errors
def local_env(as_json: JsonFlag = False) -> None:
    """`export` lines for boto3, the AWS CLI, the KCL and clickstream: eval "$(... env)"."""
    environment = local_stack.running_state(LocalStackSettings()).environment()
    if as_json:
        print_json(environment)
        return
    for name, value in environment.items():
        sys.stdout.write(f"export {name}={value}\n")


# -- producer -----------------------------------------------------------------------------

_SPIKE = re.compile(r"^(?P<page>/[^@]*)@(?P<minute>\d+)(?:x(?P<factor>\d+(?:\.\d+)?))?$")


def _parse_spec(value: str, kind: str) -> tuple[str, int, float | None]:
    match = _SPIKE.match(value)
    if not match:
        raise ConfigurationError(f"--{kind} {value!r}: expected PAGE@MINUTE (e.g. /pricing@2x6)")
    factor = match.group("factor")
    return match.group("page"), int(match.group("minute")), float(factor) if factor else None


def _stream_target(stream: str | None) -> tuple[str, str | None, str | None]:
    """(stream name, Kinesis endpoint or None for boto3's own, region) to write to."""
    from producer.settings import ProducerSettings

    settings = ProducerSettings()
    if stream or settings.stream_name:
        return str(stream or settings.stream_name), None, settings.region
    local_settings = LocalStackSettings()
    if not local_stack.state_path(local_settings).is_file():
        raise ConfigurationError(
            "no stream to write to: pass --stream, set CLICKSTREAM_STREAM_NAME, "
            "or start the local stack with `clickstream local up`"
        )
    state = local_stack.running_state(local_settings)
    return state.outputs["StreamName"], state.kinesis_endpoint, state.region


@app.command()
@one_line_errors
def produce(
    events: Annotated[int, typer.Option(min=1, help="Valid events to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same traffic.")] = 1,
    rate: Annotated[float | None, typer.Option(min=0.1, help="Target records per second.")] = None,
    shards_hint: Annotated[
        int | None,
        typer.Option(
            min=1, help="Also count records per shard in the manifest, for K evenly split shards."
        ),
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Write the ground-truth manifest here.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Write the records to stdout, not to Kinesis.")
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(
            "--from", help="Replay JSON lines from FILE, or - for stdin, instead of generating."
        ),
    ] = None,
    allow_invalid: Annotated[
        bool,
        typer.Option(help="With --from, send lines that break the contract instead of stopping."),
    ] = False,
    bots: Annotated[int, typer.Option(min=0, help="Bot sessions to inject.")] = 0,
    spike: Annotated[
        list[str] | None,
        typer.Option(help="Traffic spike PAGE@MINUTE[xFACTOR], e.g. /pricing@2x6; repeatable."),
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(
            help="Traffic drop PAGE@MINUTE: the page gets no views that minute; repeatable."
        ),
    ] = None,
    malformed: Annotated[int, typer.Option(min=0, help="Malformed records to mix in.")] = 0,
    kpl_aggregate: Annotated[
        bool,
        typer.Option(
            help="Pack each session's records into KPL aggregated records (aws-kinesis-agg)."
        ),
    ] = False,
    sessions_per_minute: Annotated[float, typer.Option(min=1, help="Session arrival rate.")] = 300,
    stream: Annotated[str | None, typer.Option(help="Stream name (default: settings).")] = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="Event time of the first session (ISO 8601, UTC if no offset); default now.",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f%z"],
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate seeded, realistic traffic (or replay a file) into the Kinesis stream."""
    from producer.generator import DropSpec, SpikeSpec, TrafficProfile, generate
    from producer.manifest import build_manifest
    from producer.replay import read_json_lines
    from producer.run import send_all, write_dry_run
    from producer.sender import PutRecordsSender
    from producer.settings import ProducerSettings

    if source is not None:
        stream_in = sys.stdin.buffer if source == "-" else _open_replay(Path(source))
        with stream_in:
            records = read_json_lines(stream_in, allow_invalid=allow_invalid)
        anomalies: list[Any] = []
        truth = build_manifest(
            records, anomalies, seed=None, source=f"replay:{source}", shards_hint=shards_hint
        )
    else:
        spikes = tuple(
            SpikeSpec(p, m, f or 6.0) for p, m, f in (_parse_spec(s, "spike") for s in spike or [])
        )
        drops = tuple(DropSpec(p, m) for p, m, _ in (_parse_spec(d, "drop") for d in drop or []))
        profile = TrafficProfile(
            bot_sessions=bots,
            spikes=spikes,
            drops=drops,
            malformed=malformed,
            sessions_per_minute=sessions_per_minute,
        )
        try:
            first = start or datetime.now(UTC)
            first = first if first.tzinfo else first.replace(tzinfo=UTC)
            records, anomalies = generate(seed, first, events, profile)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        truth = build_manifest(
            records, anomalies, seed=seed, source="generated", shards_hint=shards_hint
        )
        injected = {(a.kind, a.subject) for a in truth.anomalies}
        specs: list[SpikeSpec | DropSpec] = [*spikes, *drops]
        for spec in specs:
            kind = "traffic_spike" if isinstance(spec, SpikeSpec) else "traffic_drop"
            if (kind, spec.page) not in injected:
                raise ConfigurationError(
                    f"the {kind} on {spec.page} at minute {spec.minute} falls after the last "
                    f"event; generate more events or pick an earlier minute"
                )

    if dry_run:
        report = write_dry_run(records, sys.stdout.buffer)
    else:
        stream_name, endpoint, region = _stream_target(stream)
        settings = ProducerSettings()
        # Retries are ours (only the failed entries); botocore must not resend whole calls.
        client = aws.client(
            "kinesis",
            endpoint_url=endpoint,
            region=region,
            local=endpoint is not None,
            max_attempts=1,
            timeout_seconds=settings.timeout_seconds,
        )
        sender = PutRecordsSender(client, stream_name, max_attempts=settings.max_attempts)
        truth.stream = stream_name
        with _Progress(len(records)) as advance:
            report = send_all(
                records, sender, rate=rate, on_progress=advance, kpl_aggregate=kpl_aggregate
            )
    truth.sent = report.sent
    truth.last_sequence_per_shard = report.last_sequence or None
    if manifest is not None:
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(truth.model_dump_json(indent=1))

    _report_produce(truth, report, manifest, dry_run=dry_run, as_json=as_json)


@app.command()
@one_line_errors
def demo(
    events: Annotated[int, typer.Option(min=1, help="Valid events to produce.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated traffic.")] = 42,
    workers: Annotated[int, typer.Option(min=1, max=8, help="Worker processes to run.")] = 2,
    keep: Annotated[bool, typer.Option(help="Leave the local stack running afterwards.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The whole pipeline on this machine: local stack, workers, seeded traffic, summary."""
    from clickstream.detection import wait_for_alerts
    from consumer.local_workers import LocalWorker, wait_until_caught_up

    settings = LocalStackSettings()
    started_here = local_stack.load_state(settings) is None
    if started_here:
        with err.status("starting the local stack and deploying infra/cloudformation.yaml"):
            state = local_stack.up(settings)
        err.print(
            f"local stack up: stream {state.outputs['StreamName']} "
            f"({state.outputs['ShardCount']} shards), "
            f"{len(state.applied_locally)} template properties applied locally"
        )
    else:
        state = local_stack.running_state(settings)
        err.print("using the local stack that is already running")
    # Exactly what `eval "$(clickstream local env)"` does for a user's shell.
    os.environ.update(state.environment())
    logs = settings.state_dir / "logs"
    running = [
        LocalWorker(f"demo-worker-{n}", logs / f"demo-worker-{n}.log").start()
        for n in range(1, workers + 1)
    ]
    err.print(f"started {workers} workers (clickstream consume --local); logs in {logs}")
    try:
        manifest_path = settings.state_dir / "demo-manifest.json"
        produce(
            events=events,
            seed=seed,
            rate=None,
            shards_hint=int(state.outputs["ShardCount"]),
            manifest=manifest_path,
            dry_run=False,
            source=None,
            allow_invalid=False,
            bots=3,
            # 100 sessions a minute spread 20,000 events over ~13 minutes of event time: the
            # page rule needs 5 minutes of history before it judges a minute.
            spike=["/pricing@8x6"],
            drop=["/search@10"],
            malformed=max(1, events // 100),
            kpl_aggregate=False,
            sessions_per_minute=100,
            stream=state.outputs["StreamName"],
            start=datetime.now(UTC) - timedelta(minutes=30),
            as_json=False,
        )
        truth = Manifest.model_validate_json(manifest_path.read_text())
        dynamodb = aws.client("dynamodb")
        with err.status("waiting for the workers to checkpoint every shard's last record"):
            waited = wait_until_caught_up(
                dynamodb,
                f"{state.outputs['StreamName']}-consumer",
                truth.last_sequence_per_shard or {},
                running,
                timeout=600,
            )
        err.print(f"workers caught up {waited:.0f} s after the last record was sent")
        with err.status("waiting for the workers' page watch to judge the last minutes"):
            alerts = wait_for_alerts(
                dynamodb, state.outputs["AlertsTableName"], truth.anomalies, timeout=90
            )
        _demo_summary(truth, state.environment(), alerts, as_json=as_json)
    finally:
        with err.status("stopping the workers (SIGTERM: final flush and checkpoint)"):
            codes = [worker.stop() for worker in running]
        err.print(f"workers stopped, exit statuses {codes}")
        if started_here and not keep:
            local_stack.down(settings)
            err.print("local stack stopped (use --keep to leave it running)")


def _demo_summary(
    truth: Manifest, environment: dict[str, str], alerts: list[Any], *, as_json: bool
) -> None:
    from clickstream.detection import unmatched
    from clickstream.verify import read_results, result_names, verify
    from consumer import query

    names = result_names(environment)
    results = read_results(aws.client("dynamodb"), aws.client("s3"), names)
    verdict = verify(truth, results)
    pages = query.merge_pages(results.page_items)[:10]
    sessions = results.sessions
    durations = sorted(float(s.get("duration_seconds", 0)) for s in sessions)
    reasons = Counter(str(letter["reason"]) for letter in results.dead_letters)
    session_totals = {
        "sessions": len(sessions),
        "events": sum(int(s["events"]) for s in sessions),
        "page_views": sum(int(s["page_views"]) for s in sessions),
        "clicks": sum(int(s["clicks"]) for s in sessions),
        "median_duration_seconds": durations[len(durations) // 2] if durations else 0,
        "bounced_sessions": sum(1 for s in sessions if int(s["events"]) == 1),
    }
    missed, unlabelled = unmatched(truth.anomalies, alerts)
    detection = {
        "alerts": [
            {
                "rule": a.rule.value,
                "window": a.window,
                "subject": a.subject,
                "observed": a.observed,
                "baseline": a.baseline,
                "threshold": a.threshold,
            }
            for a in alerts
        ],
        "injected": len(truth.anomalies),
        "found": len(truth.anomalies) - len(missed),
        "missed": [f"{a.kind} {a.subject} {a.window_start:%H:%M}" for a in missed],
        "unlabelled": len(unlabelled),
    }
    if as_json:
        print_json(
            {
                "top_pages": [row.as_dict() for row in pages],
                "session_totals": session_totals,
                "dead_letters": dict(reasons),
                "anomalies": detection,
                "check_against_manifest": verdict.as_dict(),
            }
        )
        if not verdict.exact:
            raise typer.Exit(1)
        return
    table = Table(title="top pages (all minutes, shards summed)")
    for column in ("page", "views", "clicks", "sessions/min (sum)"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for row in pages:
        table.add_row(row.page, str(row.views), str(row.clicks), str(row.sessions))
    out.print(table)
    totals = Table(title="sessions")
    totals.add_column("measure")
    totals.add_column("value", justify="right")
    for key, value in session_totals.items():
        totals.add_row(
            key.replace("_", " "), f"{value:g}" if isinstance(value, float) else str(value)
        )
    out.print(totals)
    letters = Table(title=f"dead letters ({len(results.dead_letters)})")
    letters.add_column("reason")
    letters.add_column("records", justify="right")
    for reason, count in reasons.most_common():
        letters.add_row(reason, str(count))
    out.print(letters)
    raised = Table(title=f"alerts ({len(alerts)})")
    for column in ("window", "rule", "subject", "observed", "baseline / threshold"):
        # Windows and rules are short and read best whole; subjects (session ids) may fold.
        raised.add_column(column, no_wrap=column in ("window", "rule"), overflow="fold")
    for alert in alerts:
        raised.add_row(
            alert.window,
            alert.rule.value,
            alert.subject,
            f"{alert.observed:g}",
            f"{alert.baseline:g}" if alert.baseline is not None else f"score ≥ {alert.threshold:g}",
        )
    out.print(raised)
    out.print(
        f"anomalies: {detection['found']} of {detection['injected']} injected found "
        f"(spikes, drops, bots), {len(unlabelled)} alerts no label explains"
        + (f"; missed: {', '.join(f'{a.kind} {a.subject}' for a in missed)}" if missed else "")
    )
    if verdict.exact:
        out.print(
            f"[bold green]exact:[/] {verdict.sessions_found} sessions, "
            f"{verdict.page_minutes_expected} page-minutes, {verdict.archived_events} archived "
            f"events and {verdict.dead_letters} dead letters all equal the producer's manifest"
        )
    else:
        out.print(f"[bold red]NOT exact:[/] {len(verdict.problems)} differences from the manifest")
        for problem in verdict.problems[:10]:
            out.print(f"  {problem}")
        raise typer.Exit(1)


# -- consumer -----------------------------------------------------------------------------


def _use_local_stack_environment() -> None:
    """Point this process at the running local stack, as `eval "$(clickstream local env)"`."""
    os.environ.update(local_stack.running_state(LocalStackSettings()).environment())


@app.command()
@one_line_errors
def consume(
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Target the running local stack, with lease timings short enough for it.",
        ),
    ] = False,
    worker_id: Annotated[
        str | None, typer.Option(help="Lease owner name (default: host-pid); unique per worker.")
    ] = None,
) -> None:
    """Run one worker: the KCL MultiLangDaemon and clickstream's record processor, until
    SIGTERM/SIGINT, which every shard answers with a final flush and checkpoint."""
    from consumer.daemon import DaemonRunner
    from consumer.properties import LOCAL_TIMINGS
    from consumer.settings import load_settings

    if local:
        _use_local_stack_environment()
        for name, value in LOCAL_TIMINGS.items():
            os.environ.setdefault(name, value)
    if worker_id:
        os.environ["CLICKSTREAM_WORKER_ID"] = worker_id
    settings = load_settings()
    configure_logging(settings.log_level)
    code = DaemonRunner(settings).run()
    if code:
        err.print(f"[bold red]error:[/] the KCL daemon ended with status {code}", soft_wrap=True)
    raise typer.Exit(code)


@app.command()
@one_line_errors
def health(
    max_age: Annotated[
        float, typer.Option(min=1, help="Seconds since the worker last touched its file.")
    ] = 60.0,
) -> None:
    """Exit 0 if this container's worker is running its KCL daemon (the container health
    check): the file `CLICKSTREAM_HEALTH_FILE` was touched within `--max-age` seconds."""
    import time

    path = os.environ.get("CLICKSTREAM_HEALTH_FILE")
    if not path:
        raise ConfigurationError("CLICKSTREAM_HEALTH_FILE is not set: no health file to check")
    try:
        age = time.time() - Path(path).stat().st_mtime
    except FileNotFoundError:
        raise ConfigurationError(f"unhealthy: {path} does not exist (worker not running)") from None
    if age > max_age:
        raise ConfigurationError(f"unhealthy: {path} last touched {age:.0f} s ago")
    out.print(f"healthy: {path} touched {age:.0f} s ago")


def _results_clients() -> tuple[Any, Any, dict[str, str]]:
    """DynamoDB and Kinesis clients and the names to read: from settings, else the local stack."""
    if "CLICKSTREAM_PAGE_STATS_TABLE" not in os.environ:
        if local_stack.load_state(LocalStackSettings()) is None:
            raise ConfigurationError(
                "no tables to read: set CLICKSTREAM_PAGE_STATS_TABLE, CLICKSTREAM_SESSIONS_TABLE "
                "and CLICKSTREAM_STREAM_NAME (the stack's outputs), or start the local stack"
            )
        _use_local_stack_environment()
    names = {
        key: os.environ.get(f"CLICKSTREAM_{key.upper()}", "")
        for key in ("page_stats_table", "sessions_table", "stream_name", "alerts_table")
    }
    return aws.client("dynamodb"), aws.client("kinesis"), names


@query_app.command("pages")
@one_line_errors
def query_pages(
    minute: Annotated[
        str | None,
        typer.Option(help="One minute, e.g. 2026-11-23T10:05 (UTC); all minutes when unset."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many pages to list.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Top pages by views, summed over the shards' items (one minute, or all of them)."""
    from consumer import query

    dynamodb, kinesis, names = _results_clients()
    if minute is not None:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", minute):
            raise ConfigurationError(f"--minute {minute!r}: expected YYYY-MM-DDTHH:MM (UTC)")
        shard_ids = query.shard_ids(kinesis, names["stream_name"])
        items = query.page_items_for_minute(dynamodb, names["page_stats_table"], minute, shard_ids)
    else:
        items = query.scan_table(dynamodb, names["page_stats_table"])
    rows = query.merge_pages(items)[:top]
    if as_json:
        print_json({"minute": minute, "pages": [row.as_dict() for row in rows]})
        return
    table = Table(title=f"top pages ({minute or 'all minutes'})")
    for column in ("page", "views", "clicks", "sessions/min (sum)", "minutes"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for row in rows:
        table.add_row(
            row.page, str(row.views), str(row.clicks), str(row.sessions), str(row.minutes)
        )
    out.print(table)


@query_app.command("session")
@one_line_errors
def query_session(
    session_id: Annotated[str, typer.Argument(help="The session id.")], as_json: JsonFlag = False
) -> None:
    """One session's totals: events, views, clicks, pages, entry and exit, duration."""
    from consumer import query

    dynamodb, _, names = _results_clients()
    found = query.session(dynamodb, names["sessions_table"], session_id)
    if found is None:
        raise ConfigurationError(f"no session {session_id!r} in {names['sessions_table']}")
    found.pop("first_touches", None)  # bookkeeping for exactly-once counting, not a result
    if as_json:
        print_json(found)
        return
    table = Table(title=f"session {session_id}")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key in sorted(found):
        table.add_row(key, str(found[key]))
    out.print(table)


def _since_minute(since: str | None, now: datetime) -> str | None:
    """`--since`: a minute (2026-11-23T10:05) or a span back from now (90m, 6h, 2d)."""
    if since is None:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", since):
        return since
    span = re.fullmatch(r"(\d+)([mhd])", since)
    if span is None:
        raise ConfigurationError(
            f"--since {since!r}: expected a minute (YYYY-MM-DDTHH:MM, UTC) "
            "or a span like 90m, 6h, 2d"
        )
    unit = {"m": "minutes", "h": "hours", "d": "days"}[span.group(2)]
    return minute_key(now - timedelta(**{unit: int(span.group(1))}))


@query_app.command("alerts")
@one_line_errors
def query_alerts(
    since: Annotated[
        str | None,
        typer.Option(help="Only alerts from this minute (YYYY-MM-DDTHH:MM, UTC) or span (6h) on."),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(help="Only this rule (repeatable): page_spike, page_drop, bot_session."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Anomaly alerts, oldest first: rule, window, subject, observed value against the baseline
    or threshold."""
    from consumer import query
    from consumer.anomaly import Rule

    known = [member.value for member in Rule]
    unknown = [name for name in rule or [] if name not in known]
    if unknown:
        raise ConfigurationError(f"--rule {unknown[0]!r}: expected one of {', '.join(known)}")
    dynamodb, _, names = _results_clients()
    if not names["alerts_table"]:
        raise ConfigurationError("no alerts table: set CLICKSTREAM_ALERTS_TABLE (a stack output)")
    rows = query.alerts(
        dynamodb,
        names["alerts_table"],
        since=_since_minute(since, datetime.now(UTC)),
        rules=rule or known,
    )
    if as_json:
        print_json({"since": since, "alerts": rows})
        return
    table = Table(title=f"alerts ({len(rows)})")
    for column in ("window", "rule", "subject", "observed", "baseline", "threshold", "details"):
        table.add_column(column, no_wrap=column in ("window", "rule"), overflow="fold")
    for row in rows:
        details = row.get("details", {})
        table.add_row(
            str(row["window"]),
            str(row["rule"]),
            str(row["subject"]),
            str(row["observed"]),
            str(row.get("baseline", "")),
            str(row["threshold"]),
            ", ".join(f"{key}={value}" for key, value in sorted(details.items())),
        )
    out.print(table)


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
    from clickstream import detection

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
            _maybe(row["precision"]),
            str(row["injected"]),
            _maybe(row["recall"]),
            _maybe(row["false_alerts_per_hour_of_normal_traffic"]),
        )
    out.print(rules)
    for name, row in result["rules"].items():
        for missed in row["missed"]:
            out.print(f"missed {name}: {missed}")
        for false in row["false"]:
            out.print(f"unlabelled {name}: {false}")


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@app.command()
@one_line_errors
def bench(
    events: Annotated[int, typer.Option(min=100, help="Events per run.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated traffic.")] = 7,
    rates: Annotated[
        str, typer.Option(help="Comma-separated arrival rates to simulate, events/s per shard.")
    ] = "100,1000,5000",
    as_json: JsonFlag = False,
) -> None:
    """Benchmark one record processor through amazon_kclpy's protocol (no daemon, no AWS):
    events per second, and DynamoDB writes and S3 puts per 1,000 events."""
    from clickstream import bench as benchmark

    try:
        arrival_rates = [float(rate) for rate in rates.split(",") if rate.strip()]
    except ValueError:
        raise ConfigurationError(f"--rates {rates!r}: expected numbers like 100,1000") from None
    results = []
    for rate in arrival_rates:
        with err.status(f"processing {events} events at {rate:g} events/s per shard"):
            results.append(benchmark.run(events=events, seed=seed, arrival_rate=rate))
    if as_json:
        print_json({"events": events, "seed": seed, "runs": [r.as_dict() for r in results]})
        return
    table = Table(title=f"record processor, {events} events, default flush policy")
    for column in (
        "arrival (events/s/shard)",
        "processed events/s",
        "flushes",
        "DynamoDB writes /1k events",
        "DynamoDB reads /1k events",
        "S3 puts /1k events",
    ):
        table.add_column(column, justify="right")
    for result in results:
        table.add_row(
            f"{result.events_per_shard_second:g}",
            f"{result.events_per_second:,.0f}",
            str(result.flushes),
            f"{result.writes_per_1000_events:g}",
            f"{result.reads_per_1000_events:g}",
            f"{result.s3_puts_per_1000_events:g}",
        )
    out.print(table)


@app.command()
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
    from clickstream import soak as soak_run

    settings = LocalStackSettings()
    started_here = local_stack.load_state(settings) is None
    state = local_stack.up(settings) if started_here else local_stack.running_state(settings)
    os.environ.update(state.environment())
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


def _report_produce(
    truth: Manifest, report: RunReport, manifest: Path | None, *, dry_run: bool, as_json: bool
) -> None:
    summary = {
        "stream": truth.stream,
        "dry_run": dry_run,
        "events": truth.events,
        "malformed": truth.malformed,
        "sent": report.sent,
        "sessions": len(truth.sessions),
        "pages": len(truth.pages),
        "anomalies": [f"{a.kind} {a.subject}" for a in truth.anomalies],
        "put_records_calls": report.calls,
        "retried_entries": report.retried_entries,
        "seconds": round(report.seconds, 2),
        "records_per_second": round(report.records_per_second, 1),
        "records_per_shard": truth.records_per_shard,
        "manifest": str(manifest) if manifest else None,
    }
    if as_json:
        # In a dry run stdout carries the records, so the summary goes to stderr.
        (sys.stderr if dry_run else sys.stdout).write(json.dumps(summary, indent=2) + "\n")
    else:
        console = err if dry_run else out  # stdout carries the records in a dry run
        console.print(
            f"{'wrote' if dry_run else 'sent'} {report.sent} records ({truth.events} events, "
            f"{truth.malformed} malformed, {len(truth.sessions)} sessions) "
            f"{'to stdout' if dry_run else f'to {truth.stream}'} in {report.seconds:.1f}s "
            f"({report.records_per_second:.0f}/s, {report.calls} calls, "
            f"{report.retried_entries} entries retried)",
            highlight=False,
        )
        for anomaly in truth.anomalies:
            console.print(
                f"  injected {anomaly.kind}: {anomaly.subject} "
                f"{anomaly.window_start:%H:%M:%S}-{anomaly.window_end:%H:%M:%S}"
            )
        if manifest:
            console.print(f"  manifest: {manifest}")


def _open_replay(path: Path) -> Any:
    try:
        return path.open("rb")
    except OSError as exc:
        raise ProducerError(f"cannot read {path}: {exc.strerror}") from None


class _Progress:
    """A rich progress bar on a terminal; plain lines every 10% otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Progress | None = None
        self.next_line = 0.1

    def __enter__(self) -> Callable[[int], None]:
        if err.is_terminal:
            self.bar = Progress(
                TextColumn("sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self.bar.start()
            task = self.bar.add_task("send", total=self.total)
            return lambda done: self.bar.update(task, completed=done) if self.bar else None
        return self._line

    def _line(self, done: int) -> None:
        if done >= self.total * self.next_line or done == self.total:
            sys.stderr.write(f"sent {done}/{self.total}\n")
            while self.next_line <= done / self.total:
                self.next_line += 0.1

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()


if __name__ == "__main__":  # pragma: no cover
    app()
