"""The anomaly rules measured on seeded traffic, through the record processors (amazon_kclpy's
protocol code) and the page rule's minute judging, with the sinks in memory."""

from __future__ import annotations

from clickstream.stores.alerts import Rule
from clickstream.tools.detection import Scenario, figures, run_scenario
from producer.generator import DropSpec, SpikeSpec, TrafficProfile

FIXED = Scenario(
    "fixed",
    seed=11,
    minutes=20,
    profile=TrafficProfile(
        bot_sessions=3,
        spikes=(SpikeSpec("/pricing", 9), SpikeSpec("/search", 15, 3.0)),
        drops=(DropSpec("/", 12), DropSpec("/cart", 17)),
    ),
)
NORMAL = Scenario("normal", seed=12, minutes=20, profile=TrafficProfile())


def test_every_injected_anomaly_is_found_in_its_window() -> None:
    # GIVEN 20 minutes of traffic with two spikes, two drops and three bots injected
    outcome = run_scenario(FIXED)
    # THEN each is found, by the rule of its kind, for its subject, in its window
    assert len(outcome.anomalies) == 7
    missed = [a for a in outcome.anomalies if not outcome.found(a)]
    assert missed == []
    by_rule = figures([outcome])["rules"]
    assert by_rule[Rule.BOT_SESSION.value]["recall"] == 1.0
    assert by_rule[Rule.BOT_SESSION.value]["precision"] == 1.0
    assert by_rule[Rule.PAGE_SPIKE.value]["recall"] == 1.0
    assert by_rule[Rule.PAGE_DROP.value]["recall"] == 1.0
    # and the page rule judged every minute once the stream was complete past it
    assert outcome.judged_minutes >= FIXED.minutes - 2


def test_normal_traffic_raises_no_alert() -> None:
    outcome = run_scenario(NORMAL)
    assert outcome.events > 50_000
    assert outcome.judged_minutes >= NORMAL.minutes - 2
    assert [(a.rule.value, a.window, a.subject) for a in outcome.alerts] == []
