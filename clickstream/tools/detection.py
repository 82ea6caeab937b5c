"""`clickstream anomalies measure`: precision and recall of the anomaly rules, measured.

Each scenario is seeded traffic from the producer's generator with labelled anomalies
(spikes, drops, bot sessions: the manifest's `anomalies`). It runs through the code a worker
runs: the traffic is split over shards by partition key as Kinesis would, each shard's
records go through a `ClickstreamProcessor` over amazon_kclpy's protocol code (bot scores and
alerts are raised there), the page-stats items it writes are summed per minute and judged by
`judge_complete_minutes` at the watermark the processors' progress reports give, as the
page watch of a worker does. Only the sinks are in memory (the emulator would make an hour
of traffic take an hour).

An alert is a true positive when an injected anomaly of its kind has the same subject and
its window holds the alert's window; recall is the share of injected anomalies found;
false alerts per hour are the alerts of normal traffic (no anomalies injected).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from clickstream.kernel.events import ClickEvent, minute_key
from clickstream.kernel.retry import Backoff
from clickstream.stores import alerts as alerts_store
from clickstream.stores.alerts import Alert, AlertsTable, Rule
from consumer.core.anomaly import (
    BotRules,
    PageRules,
    PageTrafficDetector,
    judge_complete_minutes,
    stream_watermark,
)
from consumer.core.pending import Cadences
from consumer.processor import ClickstreamProcessor
from consumer.testing import (
    MemoryAlerts,
    MemoryArchive,
    MemoryStore,
    ScriptedDaemon,
    protocol_records,
)
from producer.generator import Anomaly, DropSpec, SpikeSpec, TrafficGenerator, TrafficProfile
from producer.manifest import shard_index
from producer.run import outgoing

RULE_OF_ANOMALY = {
    "traffic_spike": Rule.PAGE_SPIKE,
    "traffic_drop": Rule.PAGE_DROP,
    "bot_session": Rule.BOT_SESSION,
}


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    minutes: int
    profile: TrafficProfile
    shards: int = 4

    @property
    def normal(self) -> bool:
        profile = self.profile
        return not (profile.spikes or profile.drops or profile.bot_sessions)


def standard_scenarios() -> list[Scenario]:
    """The seeded set `clickstream anomalies measure` runs: two hours of normal traffic and
    three runs with anomalies, easy and hard (small spikes, quiet pages, slower bots)."""
    normal = TrafficProfile()
    return [
        Scenario("normal-a", 101, 60, normal),
        Scenario("normal-b", 202, 60, normal),
        Scenario(
            "anomalies",
            303,
            40,
            TrafficProfile(
                bot_sessions=4,
                spikes=(SpikeSpec("/pricing", 10), SpikeSpec("/search", 22, 3.0)),
                drops=(DropSpec("/", 16), DropSpec("/cart", 30)),
            ),
        ),
        Scenario(
            "hard",
            404,
            40,
            TrafficProfile(
                bot_sessions=4,
                bot_events=60,
                bot_interval_seconds=2.0,
                spikes=(SpikeSpec("/about", 12, 2.0), SpikeSpec("/products/p-0005", 24, 4.0)),
                drops=(DropSpec("/account", 18), DropSpec("/blog/b-0001", 32)),
            ),
        ),
    ]


@dataclass
class ScenarioOutcome:
    scenario: Scenario
    events: int
    anomalies: list[Anomaly]
    alerts: list[Alert]
    judged_minutes: int

    def matches(self, alert: Alert) -> bool:
        return any(_matches(anomaly, alert) for anomaly in self.anomalies)

    def found(self, anomaly: Anomaly) -> bool:
        return any(_matches(anomaly, alert) for alert in self.alerts)


class Labelled(Protocol):
    """An injected anomaly as the generator or a manifest labels it."""

    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def window_start(self) -> datetime: ...
    @property
    def window_end(self) -> datetime: ...


def alerting(anomalies: Sequence[Labelled]) -> list[Labelled]:
    """The injected anomalies a rule should raise an alert for (rage clicks are read from the
    archive, not alerted on)."""
    return [anomaly for anomaly in anomalies if anomaly.kind in RULE_OF_ANOMALY]


def unmatched(
    anomalies: Sequence[Labelled], alerts: Sequence[Alert]
) -> tuple[list[Labelled], list[Alert]]:
    """The injected anomalies no alert found, and the alerts no label explains."""
    anomalies = alerting(anomalies)
    missed = [a for a in anomalies if not any(_matches(a, alert) for alert in alerts)]
    unlabelled = [alert for alert in alerts if not any(_matches(a, alert) for a in anomalies)]
    return missed, unlabelled


def wait_for_alerts(
    dynamodb: Any, table: str, anomalies: Sequence[Labelled], timeout: float
) -> list[Alert]:
    """The alerts table's alerts once every labelled anomaly has one, or after `timeout` s
    (the workers' page watches judge a minute some seconds after the stream passed it)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = AlertsTable(dynamodb, table).alerts(rules=[rule.value for rule in Rule])
        alerts = [alerts_store.alert_from_item(row) for row in rows]
        missed, _ = unmatched(anomalies, alerts)
        if not missed or time.monotonic() > deadline:
            return alerts
        time.sleep(2)


def _matches(anomaly: Labelled, alert: Alert) -> bool:
    if RULE_OF_ANOMALY.get(anomaly.kind) is not alert.rule or anomaly.subject != alert.subject:
        return False
    if alert.rule is Rule.BOT_SESSION:
        return True  # one alert per session: its window is the session's start
    last = anomaly.window_end - timedelta(milliseconds=1)  # windows end on a minute boundary
    return minute_key(anomaly.window_start) <= alert.window <= minute_key(last)


@dataclass
class RuleFigures:
    alerts: int = 0
    true_alerts: int = 0
    injected: int = 0
    found: int = 0
    normal_alerts: int = 0
    missed: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    def as_dict(self, normal_hours: float) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "precision": round(self.true_alerts / self.alerts, 3) if self.alerts else None,
            "injected": self.injected,
            "recall": round(self.found / self.injected, 3) if self.injected else None,
            "false_alerts_per_hour_of_normal_traffic": round(self.normal_alerts / normal_hours, 2)
            if normal_hours
            else None,
            "missed": self.missed,
            "false": self.false,
        }


def figures(outcomes: Sequence[ScenarioOutcome]) -> dict[str, Any]:
    per_rule = {rule: RuleFigures() for rule in Rule}
    normal_hours = sum(o.judged_minutes for o in outcomes if o.scenario.normal) / 60
    for outcome in outcomes:
        for alert in outcome.alerts:
            figures_of = per_rule[alert.rule]
            figures_of.alerts += 1
            if outcome.matches(alert):
                figures_of.true_alerts += 1
            else:
                figures_of.false.append(f"{outcome.scenario.name}: {alert.window} {alert.subject}")
            if outcome.scenario.normal:
                figures_of.normal_alerts += 1
        for anomaly in outcome.anomalies:
            figures_of = per_rule[RULE_OF_ANOMALY[anomaly.kind]]
            figures_of.injected += 1
            if outcome.found(anomaly):
                figures_of.found += 1
            else:
                figures_of.missed.append(
                    f"{outcome.scenario.name}: {minute_key(anomaly.window_start)} {anomaly.subject}"
                )
    return {
        "scenarios": [
            {
                "name": o.scenario.name,
                "minutes": o.scenario.minutes,
                "events": o.events,
                "anomalies": len(o.anomalies),
                "alerts": len(o.alerts),
                "judged_minutes": o.judged_minutes,
            }
            for o in outcomes
        ],
        "normal_hours": normal_hours,
        "rules": {rule.value: per_rule[rule].as_dict(normal_hours) for rule in Rule},
    }


def scenario_events(scenario: Scenario, start: datetime) -> tuple[list[ClickEvent], list[Anomaly]]:
    """The scenario's events until `minutes` of event time have passed, and its anomalies."""
    generator = TrafficGenerator(scenario.seed, start, scenario.profile)
    end = start + timedelta(minutes=scenario.minutes)
    events = list(itertools.takewhile(lambda e: e.timestamp < end, generator.events()))
    anomalies = [a for a in generator.anomalies if a.window_start < end]
    return events, anomalies


def run_scenario(
    scenario: Scenario,
    *,
    bot_rules: BotRules | None = None,
    page_rules: PageRules | None = None,
    now: datetime | None = None,
    deliveries_per_minute: int = 60,
) -> ScenarioOutcome:
    """Run one scenario through the processors and the page rule; its alerts."""
    page_rules = page_rules or PageRules()
    now = now or datetime.now(UTC)
    # Old enough to be history, young enough for the processor's timestamp policy.
    start = (now - timedelta(minutes=scenario.minutes + 60)).replace(second=0, microsecond=0)
    events, anomalies = scenario_events(scenario, start)
    per_shard: dict[int, list[ClickEvent]] = defaultdict(list)
    for event in events:
        per_shard[shard_index(event.session_id, scenario.shards)].append(event)

    store, archive, alerts = MemoryStore(), MemoryArchive(), MemoryAlerts()
    for index, shard_events in sorted(per_shard.items()):
        _process_shard(
            f"shardId-{index:012d}",
            shard_events,
            store=store,
            archive=archive,
            alerts=alerts,
            bot_rules=bot_rules or BotRules(),
            deliveries=max(1, scenario.minutes * deliveries_per_minute),
        )

    views: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in store.pages.values():
        views[str(item["window"])][str(item["page"])] += int(item["views"])
    open_shards = [f"shardId-{index:012d}" for index in range(scenario.shards)]
    watermark = stream_watermark(alerts.progress.values(), open_shards, page_rules.lateness)
    # Judge from the first minute (a worker starting fresh would look back only
    # `history_minutes`); the warm-up keeps the first minutes quiet as it does in a worker.
    detector = PageTrafficDetector(page_rules, next_minute=minute_key(start))
    judged = [0]

    def raise_alerts(_minute: str, found: list[Alert]) -> None:
        judged[0] += 1
        alerts.raise_once(found, now)

    judge_complete_minutes(
        detector, watermark, lambda minute: dict(views.get(minute, {})), raise_alerts
    )
    return ScenarioOutcome(
        scenario=scenario,
        events=len(events),
        anomalies=anomalies,
        alerts=list(alerts.alerts.values()),
        judged_minutes=judged[0],
    )


def _process_shard(
    shard_id: str,
    events: Sequence[ClickEvent],
    *,
    store: MemoryStore,
    archive: MemoryArchive,
    alerts: MemoryAlerts,
    bot_rules: BotRules,
    deliveries: int,
) -> None:
    """One shard's processor over its events, delivered in `deliveries` polls a second
    apart, then an empty poll (the shard is caught up) and a graceful stop."""
    records = protocol_records((out.data, out.partition_key) for out in map(outgoing, events))
    clock = [0.0]

    def advance(action: dict[str, Any]) -> None:
        if action["action"] == "processRecords":
            clock[0] += 1.0

    daemon = ScriptedDaemon(on_action=advance).initialize(shard_id)
    size = max(1, -(-len(records) // deliveries))
    for offset in range(0, len(records), size):
        daemon.process(records[offset : offset + size])
    daemon.process([]).process([])
    daemon.shutdown_requested()
    processor = ClickstreamProcessor(
        store,
        archive,
        alerts=alerts,
        bot_rules=bot_rules,
        cadences=Cadences(),
        checkpoint_backoff=Backoff(),
        progress_interval_seconds=0.0,
        clock=lambda: clock[0],
    )
    daemon.run(processor)


def run_all(scenarios: Iterable[Scenario]) -> list[ScenarioOutcome]:
    return [run_scenario(scenario) for scenario in scenarios]
