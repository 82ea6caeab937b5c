"""What `clickstream demo` runs: the whole pipeline on this machine, checked against the
manifest. Imported when the command runs (`clickstream.cli.demo` is the command itself), so
other commands do not pay for the local stack, the producer and the read side.

Local stack up (unless one runs), workers started, seeded traffic with injected anomalies
sent, then a wait until every shard is checkpointed at its last record and the page watch
has judged the last minutes, and a summary whose every counter is checked.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from clickstream.cli.common import err, out, print_json
from clickstream.cli.produce import (
    generated_traffic,
    record_delivery,
    report_produce,
    send_through_collector,
    send_to_stream,
)
from clickstream.cli.target import StackTarget, local_target
from clickstream.kernel.errors import LocalStackError
from clickstream.local import stack as local_stack
from clickstream.local.settings import LocalStackSettings
from clickstream.local.stack import LocalStackState
from clickstream.local.workers import LocalWorker, wait_until_caught_up
from clickstream.stores.alerts import Alert
from clickstream.tools.detection import alerting, unmatched, wait_for_alerts
from clickstream.tools.verify import (
    Results,
    Verdict,
    check_dimensions,
    read_results,
    result_names,
    verify,
)
from insights import query
from producer.generator import DropSpec, SpikeSpec, TrafficProfile
from producer.manifest import Manifest


def run_demo(*, events: int, seed: int, workers: int, keep: bool, as_json: bool) -> None:
    """The whole pipeline on this machine: local stack, workers, seeded traffic, summary."""
    settings = LocalStackSettings()
    started_here = local_stack.load_state(settings) is None
    state = _stack(settings, started_here)
    target = local_target(state)
    dashboard = _start_dashboard(settings)
    logs = settings.state_dir / "logs"
    running = [
        LocalWorker(f"demo-worker-{n}", logs / f"demo-worker-{n}.log").start()
        for n in range(1, workers + 1)
    ]
    err.print(f"started {workers} workers (clickstream consume --local); logs in {logs}")
    try:
        truth = _send_demo_traffic(target, settings, events=events, seed=seed, as_json=as_json)
        alerts = _wait_for_results(target, truth, running)
        _summary(
            truth,
            target,
            alerts,
            as_json=as_json,
            dashboard=dashboard,
            heatmap_to=settings.state_dir / "demo-heatmap.png",
        )
    finally:
        with err.status("stopping the workers (SIGTERM: final flush and checkpoint)"):
            codes = [worker.stop() for worker in running]
        err.print(f"workers stopped, exit statuses {codes}")
        if started_here and not keep:
            local_stack.down(settings)
            err.print("local stack and dashboard stopped (--keep leaves them running)")
        elif dashboard:
            err.print(f"the dashboard runs at {dashboard} until `clickstream local down`")


def _stack(settings: LocalStackSettings, start: bool) -> LocalStackState:
    if not start:
        err.print("using the local stack that is already running")
        return local_stack.running_state(settings)
    with err.status("starting the local stack and deploying infra/cloudformation.yaml"):
        state = local_stack.up(settings, collector=True)
    err.print(
        f"local stack up: stream {state.outputs['StreamName']} "
        f"({state.outputs['ShardCount']} shards), "
        f"{len(state.applied_locally)} template properties applied locally"
    )
    return state


def _start_dashboard(settings: LocalStackSettings) -> str | None:
    """The dashboard beside the stack, its URL; a demo without one (its port taken, say)
    still runs and checks everything, so a failure here is a warning."""
    try:
        with err.status("starting the dashboard"):
            board = local_stack.start_dashboard(settings)
    except LocalStackError as exc:
        err.print(f"[yellow]warning:[/] no dashboard: {exc}", highlight=False, soft_wrap=True)
        return None
    err.print(f"dashboard at {board.endpoint}/ : watch the traffic arrive", highlight=False)
    return f"{board.endpoint}/"


def _send_demo_traffic(
    target: StackTarget,
    settings: LocalStackSettings,
    *,
    events: int,
    seed: int,
    as_json: bool,
) -> Manifest:
    """The demo's traffic (`demo_profile`, from `demo_start`) sent, and its manifest."""
    profile = demo_profile(events)
    start = demo_start(datetime.now(UTC))
    state = target.local
    assert state is not None  # the demo runs on the local stack
    shards = int(state.outputs["ShardCount"])
    records, truth = generated_traffic(seed, start, events, profile, shards_hint=shards)
    # Through the front door when the stack runs a collector (`local up --collector`, as the
    # demo starts it): the generator posts browser-sized batches, 2xx = in the stream.
    collector = next((e.endpoint for e in state.emulators if e.name == "collector"), None)
    if collector:
        err.print(f"sending the events through the collector at {collector}")
        report = send_through_collector(records, truth, target, collector)
    else:
        report = send_to_stream(records, truth, target, rate=None, kpl_aggregate=False)
    manifest_path = settings.state_dir / "demo-manifest.json"
    record_delivery(truth, report, manifest_path)
    report_produce(truth, report, manifest_path, dry_run=False, as_json=False, stdout_taken=as_json)
    return truth


PLANTED_JOURNEYS = 16
"""Two people of each kind of `producer.journeys`."""
PLANTED_FROM_EVENTS = 16_000


def demo_profile(events: int) -> TrafficProfile:
    """The demo's traffic: three bots, a spike on /pricing, a drop on /search, two visitors'
    rage clicks, 1% malformed, and (from 16,000 events on: they need nine minutes of the
    traffic) 16 people on planted journeys through a known funnel (`producer.journeys`)."""
    # 100 sessions a minute spread 20,000 events over ~13 minutes of event time: the page
    # rule needs 5 minutes of history before it judges a minute.
    return TrafficProfile(
        bot_sessions=3,
        rage_sessions=2,
        spikes=(SpikeSpec("/pricing", 8, 6.0),),
        drops=(DropSpec("/search", 10),),
        malformed=max(1, events // 100),
        sessions_per_minute=100,
        journeys=PLANTED_JOURNEYS if events >= PLANTED_FROM_EVENTS else 0,
    )


def demo_start(now: datetime) -> datetime:
    """Half an hour ago, on a minute boundary: the same seed then gives the same minutes,
    and the same alerts. From a second within the minute, the first minute is partial and
    the ramp-up of arriving sessions falls differently over the minutes; seeded runs a few
    seconds apart missed the /search drop three times in ten (its baseline's spread grew
    past the z-score), which failed the dashboard's end-to-end test now and then."""
    return (now - timedelta(minutes=30)).replace(second=0, microsecond=0)


def _wait_for_results(
    target: StackTarget, truth: Manifest, running: list[LocalWorker]
) -> list[Alert]:
    dynamodb = target.client("dynamodb")
    with err.status("waiting for the workers to checkpoint every shard's last record"):
        waited = wait_until_caught_up(
            dynamodb,
            target.lease_table,
            truth.last_sequence_per_shard or {},
            running,
            timeout=600,
        )
    err.print(f"workers caught up {waited:.0f} s after the last record was sent")
    with err.status("waiting for the workers' page watch to judge the last minutes"):
        return wait_for_alerts(
            dynamodb, str(target.outputs.alerts_table), truth.anomalies, timeout=90
        )


def _busiest_page_heatmap(target: StackTarget, busiest: str, path: Path) -> str | None:
    """The heatmap of the page with the most views, as `clickstream heatmap` draws it."""
    from insights import archive_views, heatmap

    since = datetime.now(UTC) - timedelta(hours=24)
    connection = archive_views.connect(target.archive_location(), since=since, enrich=False)
    clicks = heatmap.clicks_of_page(connection, busiest, since)
    found = heatmap.bins(clicks)
    widest = heatmap.busiest_class(found)
    if widest is None:
        return None
    path.write_bytes(heatmap.render_png(found[widest], title=f"{busiest} ({widest})"))
    err.print(f"heatmap of the busiest page, {busiest}: {path} ({len(clicks)} clicks)")
    return str(path)


def _summary(
    truth: Manifest,
    target: StackTarget,
    alerts: list[Alert],
    *,
    as_json: bool,
    dashboard: str | None,
    heatmap_to: Path,
) -> None:
    names = result_names(target.local.environment() if target.local else {})
    results = read_results(target.client("dynamodb"), target.client("s3"), names)
    verdict = verify(truth, results)
    visits, events = _breakdowns(target)
    if truth.dimensions is not None:
        verdict.problems += check_dimensions(truth.dimensions, visits, events)
    funnel = _planted_funnel(target, truth)
    if funnel is not None and truth.funnel is not None:
        verdict.problems += [
            f"planted funnel per {per}: {found} != the manifest's {wanted}"
            for per, found, wanted in (
                ("visit", funnel["visit"], truth.funnel.visits),
                ("person", funnel["person"], truth.funnel.people),
            )
            if found != wanted
        ]
    pages = query.merge_pages(results.page_items)[:10]
    totals = session_totals(results)
    reasons = Counter(str(letter["reason"]) for letter in results.dead_letters)
    detection = detection_summary(truth, alerts)
    shown = {
        "dashboard": dashboard,
        "heatmap": _busiest_page_heatmap(target, pages[0].page, heatmap_to) if pages else None,
    }
    if as_json:
        print_json(
            {
                "top_pages": [row.as_dict() for row in pages],
                "session_totals": totals,
                "dead_letters": dict(reasons),
                "anomalies": detection,
                "sessions_by": visits,
                "planted_funnel": funnel,
                "check_against_manifest": verdict.as_dict(),
                **shown,
            }
        )
    else:
        _print_tables(pages, totals, reasons, alerts)
        _print_visits(visits, truth)
        if funnel is not None:
            _print_funnel(funnel, truth)
        _print_detection(detection)
        _print_verdict(verdict)
        if shown["dashboard"]:
            out.print(f"dashboard: {shown['dashboard']}", highlight=False)
        if shown["heatmap"]:
            out.print(f"heatmap of the busiest page: {shown['heatmap']}", highlight=False)
    if not verdict.exact:
        raise typer.Exit(1)


SHOWN_DIMENSIONS = ("channel", "device_type", "browser", "country", "is_bot")


def _breakdowns(
    target: StackTarget,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Sessions and events per channel, source, device type, browser, country and bot, as
    `clickstream sql` reads them from the `sessions` and `events` views (the archive: raw and
    lake alike), on one reading of the archive."""
    from insights import archive_views, enriched

    connection = archive_views.connect(target.archive_location())
    sessions, events = (
        {name: enriched.breakdown(connection, view, name) for name in (*SHOWN_DIMENSIONS, "source")}
        for view in ("sessions", "events")
    )
    return sessions, events


def _planted_funnel(target: StackTarget, truth: Manifest) -> dict[str, Any] | None:
    """The planted journeys' funnel (`producer.journeys`) per visit and per person, as
    `clickstream funnel` reads it from the archive over the demo's range."""
    if truth.funnel is None or truth.first_event_at is None or truth.last_event_at is None:
        return None
    from insights import archive_views, funnels
    from insights import report as reports

    span = reports.Range(
        truth.first_event_at.replace(second=0, microsecond=0),
        truth.last_event_at + timedelta(minutes=1),
        ZoneInfo("UTC"),
    )
    query = reports.Query(span)
    connection = archive_views.connect(
        target.archive_location(),
        since=reports.reading_start(query, compare=False),
        raw_views=False,
    )
    steps = funnels.steps_of(truth.funnel.steps)
    within = funnels.window_of(truth.funnel.within)
    found: dict[str, Any] = {"steps": truth.funnel.steps}
    for per in (funnels.Per.VISIT, funnels.Per.PERSON):
        counted = funnels.funnel_of(connection, query, steps, within=within, per=per)
        found[per] = [row["count"] for row in counted.rows]
    return found


def _print_funnel(funnel: dict[str, Any], truth: Manifest) -> None:
    assert truth.funnel is not None
    table = Table(title="the planted funnel (clickstream funnel; manifest)")
    for name in ("step", "visits", "manifest", "people", "manifest"):
        table.add_column(name, justify="left" if name == "step" else "right")
    for index, step in enumerate(funnel["steps"]):
        table.add_row(
            step,
            str(funnel["visit"][index]),
            str(truth.funnel.visits[index]),
            str(funnel["person"][index]),
            str(truth.funnel.people[index]),
        )
    out.print(table)


def _print_visits(visits: dict[str, dict[str, int]], truth: Manifest) -> None:
    """The top values of each dimension, the archive's sessions beside the manifest's."""
    expected = truth.dimensions.sessions if truth.dimensions is not None else {}
    for name in SHOWN_DIMENSIONS:
        table = Table(title=f"visits by {name.replace('_', ' ')} (sessions view; manifest)")
        table.add_column(name.replace("_", " "))
        table.add_column("visits", justify="right")
        table.add_column("manifest", justify="right")
        ranked = sorted(visits.get(name, {}).items(), key=lambda item: (-item[1], item[0]))
        for value, count in ranked[:8]:
            table.add_row(value, str(count), str(expected.get(name, {}).get(value, "-")))
        out.print(table)


def session_totals(results: Results) -> dict[str, float | int]:
    sessions = results.sessions
    durations = sorted(float(s.get("duration_seconds", 0)) for s in sessions)
    return {
        "sessions": len(sessions),
        "events": sum(int(s["events"]) for s in sessions),
        "page_views": sum(int(s["page_views"]) for s in sessions),
        "clicks": sum(int(s.get("clicks", 0)) for s in sessions),
        "median_duration_seconds": durations[len(durations) // 2] if durations else 0,
        "bounced_sessions": sum(1 for s in sessions if int(s["events"]) == 1),
    }


def detection_summary(truth: Manifest, alerts: list[Alert]) -> dict[str, Any]:
    """The alerts raised, and how many of the injected anomalies they found."""
    missed, unlabelled = unmatched(truth.anomalies, alerts)
    return {
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
        "injected": len(alerting(truth.anomalies)),
        "found": len(alerting(truth.anomalies)) - len(missed),
        "missed": [f"{a.kind} {a.subject} {a.window_start:%H:%M}" for a in missed],
        "unlabelled": len(unlabelled),
        "rage_clicks": [
            {
                "page": a.subject,
                "session_id": a.detail.get("session_id"),
                "at": a.window_start.isoformat(),
            }
            for a in truth.anomalies
            if a.kind == "rage_clicks"
        ],
    }


def _print_tables(
    pages: list[query.PageTotals],
    totals: dict[str, float | int],
    reasons: Counter[str],
    alerts: list[Alert],
) -> None:
    table = Table(title="top pages (all minutes, shards summed)")
    for column in ("page", "views", "clicks", "sessions/min (sum)"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for row in pages:
        table.add_row(row.page, str(row.views), str(row.clicks), str(row.sessions))
    out.print(table)
    sessions = Table(title="sessions")
    sessions.add_column("measure")
    sessions.add_column("value", justify="right")
    for key, value in totals.items():
        sessions.add_row(
            key.replace("_", " "), f"{value:g}" if isinstance(value, float) else str(value)
        )
    out.print(sessions)
    letters = Table(title=f"dead letters ({sum(reasons.values())})")
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


def _print_detection(detection: dict[str, Any]) -> None:
    missed = detection["missed"]
    out.print(
        f"anomalies: {detection['found']} of {detection['injected']} injected found "
        f"(spikes, drops, bots), {detection['unlabelled']} alerts no label explains"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + f"; {len(detection['rage_clicks'])} visitors' rage clicks injected (on the dashboard)"
    )


def _print_verdict(verdict: Verdict) -> None:
    if verdict.exact:
        out.print(
            f"[bold green]exact:[/] {verdict.sessions_found} sessions, "
            f"{verdict.page_minutes_expected} page-minutes, {verdict.archived_events} archived "
            f"events and {verdict.dead_letters} dead letters all equal the producer's manifest"
        )
        return
    out.print(f"[bold red]NOT exact:[/] {len(verdict.problems)} differences from the manifest")
    for problem in verdict.problems[:10]:
        out.print(f"  {problem}")
