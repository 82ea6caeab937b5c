"""The workers' CloudWatch metrics (EMF on stderr, `clickstream.kernel.emf`): names, helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from clickstream.kernel.emf import DEFAULT_NAMESPACE, EmfWriter
from clickstream.stores.alerts import Alert

__all__ = ["DEFAULT_NAMESPACE", "METRIC_NAMES", "Metrics", "announce_alert"]


class Metrics(EmfWriter):
    """The workers' metrics writer: `EmfWriter` plus the processor's flush summary."""

    def flushed(
        self,
        events: int,
        duplicates: int,
        dead_letters: Mapping[str, int],
        flush_ms: float,
        millis_behind: int | None,
        *,
        suppressed: int = 0,
    ) -> None:
        """A processor's flush: events, re-sent events, dead letters (also by reason), its
        latency, and how far behind the stream the shard was."""
        values: dict[str, tuple[float, str]] = {
            "EventsProcessed": (events, "Count"),
            "DuplicateEvents": (duplicates, "Count"),
            "DeadLetters": (sum(dead_letters.values()), "Count"),
            "SuppressedEvents": (suppressed, "Count"),
            "FlushLatency": (round(flush_ms, 1), "Milliseconds"),
        }
        if millis_behind is not None:
            values["MillisBehindLatest"] = (millis_behind, "Milliseconds")
        self.emit(values)
        for reason, count in sorted(dead_letters.items()):
            self.emit({"DeadLetters": (count, "Count")}, dimensions={"Reason": reason})


METRIC_NAMES: Final = (
    "EventsProcessed",
    "DuplicateEvents",
    "DeadLetters",
    "SuppressedEvents",
    "FlushLatency",
    "MillisBehindLatest",
    "AlertsRaised",
    "WorkerErrors",
)
"""Every metric the workers emit, dimension `Stream` (DeadLetters also by `Reason`,
AlertsRaised also by `Rule`). The template's dashboard and alarms use exactly these."""


def announce_alert(log: Any, metrics: Metrics | None, alert: Alert) -> None:
    """What an operator sees of a newly raised alert: a log line and an `AlertsRaised` metric."""
    log.warning(
        "alert raised",
        rule=alert.rule.value,
        subject=alert.subject,
        window=alert.window,
        observed=alert.observed,
        baseline=alert.baseline,
        threshold=alert.threshold,
        **{f"detail_{key}": value for key, value in alert.details.items()},
    )
    if metrics is not None:
        metrics.emit({"AlertsRaised": (1, "Count")})
        metrics.emit({"AlertsRaised": (1, "Count")}, dimensions={"Rule": alert.rule.value})
