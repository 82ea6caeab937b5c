"""`clickstream produce`: seeded traffic (or a replayed file) into the stream, and its manifest.

The command is a short recipe over the functions beside it, which the demo and the soak
reuse: build the traffic and its ground truth, send it (or write it for a dry run), record
what was delivered in the manifest, report.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clickstream.cli.common import JsonFlag, err, one_line_errors, out
from clickstream.kernel.errors import ConfigurationError, ProducerError

if TYPE_CHECKING:
    from rich.progress import Progress

    from clickstream.cli.target import StackTarget
    from producer.generator import Record, TrafficProfile
    from producer.manifest import Manifest
    from producer.run import RunReport

_SPEC = re.compile(r"^(?P<page>/[^@]*)@(?P<minute>\d+)(?:x(?P<factor>\d+(?:\.\d+)?))?$")


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
    collector: Annotated[
        str | None,
        typer.Option(
            help=(
                "Post the events to this collector (e.g. http://127.0.0.1:8080) as browsers "
                "do, instead of PutRecords; malformed records still go straight to the stream."
            ),
        ),
    ] = None,
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
    from producer.generator import DropSpec, SpikeSpec, TrafficProfile
    from producer.run import write_dry_run

    if source is not None:
        records, truth = replayed_traffic(source, allow_invalid, shards_hint=shards_hint)
    else:
        profile = TrafficProfile(
            bot_sessions=bots,
            spikes=tuple(SpikeSpec(p, m, f or 6.0) for p, m, f in parse_specs(spike, "spike")),
            drops=tuple(DropSpec(p, m) for p, m, _ in parse_specs(drop, "drop")),
            malformed=malformed,
            sessions_per_minute=sessions_per_minute,
        )
        records, truth = generated_traffic(
            seed, start or datetime.now(UTC), events, profile, shards_hint=shards_hint
        )
    if not collector:
        # Into the stream (or its dry run, the same records) the events carry their country.
        records = with_countries(records, truth)
    if dry_run:
        report = write_dry_run(records, sys.stdout.buffer)
    elif collector:
        report = send_through_collector(records, truth, stream_target(stream), collector)
    else:
        report = send_to_stream(
            records, truth, stream_target(stream), rate=rate, kpl_aggregate=kpl_aggregate
        )
    record_delivery(truth, report, manifest)
    report_produce(truth, report, manifest, dry_run=dry_run, as_json=as_json)


def parse_specs(values: list[str] | None, kind: str) -> list[tuple[str, int, float | None]]:
    """`--spike`/`--drop` values: (page, minute, factor or None) each."""
    specs = []
    for value in values or []:
        match = _SPEC.match(value)
        if not match:
            raise ConfigurationError(
                f"--{kind} {value!r}: expected PAGE@MINUTE (e.g. /pricing@2x6)"
            )
        factor = match.group("factor")
        specs.append(
            (match.group("page"), int(match.group("minute")), float(factor) if factor else None)
        )
    return specs


def replayed_traffic(
    source: str, allow_invalid: bool, *, shards_hint: int | None
) -> tuple[list[Record], Manifest]:
    """The records of a JSON-lines file (or stdin, `-`) and their manifest."""
    from producer.manifest import build_manifest
    from producer.replay import read_json_lines

    stream_in = sys.stdin.buffer if source == "-" else _open_replay(Path(source))
    with stream_in:
        records = read_json_lines(stream_in, allow_invalid=allow_invalid)
    truth = build_manifest(
        records, [], seed=None, source=f"replay:{source}", shards_hint=shards_hint
    )
    return records, truth


def generated_traffic(
    seed: int,
    start: datetime,
    events: int,
    profile: TrafficProfile,
    *,
    shards_hint: int | None,
) -> tuple[list[Record], Manifest]:
    """Seeded traffic and its manifest; refuses an anomaly that falls after the last event."""
    from producer.generator import DropSpec, SpikeSpec, generate
    from producer.manifest import build_manifest

    try:
        first = start if start.tzinfo else start.replace(tzinfo=UTC)
        records, anomalies = generate(seed, first, events, profile)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    truth = build_manifest(
        records, anomalies, seed=seed, source="generated", shards_hint=shards_hint, world=True
    )
    injected = {(a.kind, a.subject) for a in truth.anomalies}
    specs: list[SpikeSpec | DropSpec] = [*profile.spikes, *profile.drops]
    for spec in specs:
        kind = "traffic_spike" if isinstance(spec, SpikeSpec) else "traffic_drop"
        if (kind, spec.page) not in injected:
            raise ConfigurationError(
                f"the {kind} on {spec.page} at minute {spec.minute} falls after the last "
                f"event; generate more events or pick an earlier minute"
            )
    return records, truth


def stream_target(stream: str | None) -> StackTarget:
    """The stack to write to: `--stream` or CLICKSTREAM_STREAM_NAME names a deployed one
    (boto3's chain, the producer's region setting), else the running local stack."""
    from clickstream.cli.target import StackOutputs, StackTarget, stack_target
    from producer.settings import ProducerSettings

    settings = ProducerSettings()
    if stream or settings.stream_name:
        named = StackOutputs.model_construct(stream_name=str(stream or settings.stream_name))
        return StackTarget(named, region=settings.region)
    return stack_target("stream_name", "stream")


def send_to_stream(
    records: Sequence[Record],
    truth: Manifest,
    target: StackTarget,
    *,
    rate: float | None,
    kpl_aggregate: bool,
) -> RunReport:
    """PutRecords every record into the stream, with a progress bar on stderr."""
    from producer.run import send_all
    from producer.sender import PutRecordsSender
    from producer.settings import ProducerSettings

    stream_name = str(target.outputs.stream_name)
    settings = ProducerSettings()
    # Retries are ours (only the failed entries); botocore must not resend whole calls.
    client = target.client("kinesis", max_attempts=1, timeout_seconds=settings.timeout_seconds)
    sender = PutRecordsSender(client, stream_name, max_attempts=settings.max_attempts)
    truth.stream = stream_name
    with SendProgress(len(records)) as advance:
        return send_all(
            records, sender, rate=rate, on_progress=advance, kpl_aggregate=kpl_aggregate
        )


def with_countries(records: Sequence[Record], truth: Manifest) -> list[Record]:
    """Straight into the stream, the generator's events carry their visitor's country
    themselves (`country`, as a producer that knows it sends it): no collector is there to
    resolve it from an address. Replayed records go as they are."""
    from clickstream.kernel.events import ClickEvent
    from producer.world import country_of_session

    if truth.dimensions is None or truth.seed is None:
        return list(records)
    seed = truth.seed
    return [
        record.model_copy(update={"country": country_of_session(seed, record.session_id).code})
        if isinstance(record, ClickEvent) and record.country is None
        else record
        for record in records
    ]


def visitor_addresses(records: Sequence[Record], truth: Manifest) -> dict[str, str]:
    """Each generated session's visitor address, for the collector to resolve (none for
    replayed records)."""
    from clickstream.kernel.events import ClickEvent
    from producer.world import country_of_session

    if truth.dimensions is None or truth.seed is None:
        return {}
    seed = truth.seed
    sessions = {record.session_id for record in records if isinstance(record, ClickEvent)}
    return {session: country_of_session(seed, session).address for session in sessions}


def send_through_collector(
    records: Sequence[Record], truth: Manifest, target: StackTarget, collector_url: str
) -> RunReport:
    """Valid events posted to the collector in browser-sized batches (each session's in
    order); malformed records, which no browser sends, straight into the stream as a buggy
    producer would. A collector's answer carries no sequence numbers, so the last record of
    each shard is read back from the stream once every event is in (2xx = in the stream)."""
    import asyncio

    from clickstream.kernel.events import ClickEvent
    from clickstream.local.settings import LocalStackSettings
    from clickstream.tools.streamread import read_stream
    from producer.http import post_events
    from producer.run import RunReport
    from producer.settings import ProducerSettings

    events = [r for r in records if isinstance(r, ClickEvent)]
    malformed = [r for r in records if not isinstance(r, ClickEvent)]
    write_key = ProducerSettings().write_key or LocalStackSettings().write_key
    with SendProgress(len(events)) as advance:
        posted = asyncio.run(
            post_events(
                collector_url,
                write_key,
                events,
                on_progress=advance,
                addresses=visitor_addresses(events, truth),
            )
        )
    direct = send_to_stream(malformed, truth, target, rate=None, kpl_aggregate=False)
    last: dict[str, str] = {}
    for record in read_stream(target.client("kinesis"), str(target.outputs.stream_name)):
        if record.shard_id not in last or int(record.sequence_number) > int(last[record.shard_id]):
            last[record.shard_id] = record.sequence_number
    return RunReport(
        len(records),
        posted.events + direct.sent,
        posted.requests + direct.calls,
        posted.retried_requests + direct.retried_entries,
        posted.seconds + direct.seconds,
        dict(sorted(last.items())),
    )


def record_delivery(truth: Manifest, report: RunReport, manifest: Path | None) -> None:
    """What was sent (and where each shard ends) into the manifest, written when asked."""
    truth.sent = report.sent
    truth.last_sequence_per_shard = report.last_sequence or None
    if manifest is not None:
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(truth.model_dump_json(indent=1))


def report_produce(
    truth: Manifest,
    report: RunReport,
    manifest: Path | None,
    *,
    dry_run: bool,
    as_json: bool,
    stdout_taken: bool = False,
) -> None:
    """The run's summary. `stdout_taken`: stdout carries something else (the demo's JSON), so
    the summary goes to stderr, as in a dry run, whose stdout carries the records."""
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
        taken = dry_run or stdout_taken
        (sys.stderr if taken else sys.stdout).write(json.dumps(summary, indent=2) + "\n")
        return
    console = err if dry_run or stdout_taken else out
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


class SendProgress:
    """A rich progress bar on a terminal; plain lines every 10% otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Progress | None = None
        self.next_line = 0.1

    def __enter__(self) -> Callable[[int], None]:
        if err.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

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
