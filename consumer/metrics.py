"""CloudWatch metrics in the embedded metric format (EMF), written to stderr.

aws-embedded-metrics builds and serialises the documents; its own sinks write to stdout or to
a CloudWatch agent, and stdout is the KCL protocol channel in a record processor, so the
documents go to stderr instead, one JSON line each. On ECS the awslogs driver ships stderr to
CloudWatch Logs, which extracts the metrics from any line that carries the `_aws` envelope.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from aws_embedded_metrics.logger.metrics_context import MetricsContext
from aws_embedded_metrics.serializers.log_serializer import LogSerializer

from consumer.core.anomaly import Alert

DEFAULT_NAMESPACE: Final = "Clickstream"


class Metrics:
    """Emits one EMF document per call; thread-safe."""

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        stream: TextIO | None = None,
        dimensions: Mapping[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self._stream = stream
        self._dimensions = dict(dimensions or {})
        self._lock = threading.Lock()

    def emit(
        self,
        values: Mapping[str, tuple[float, str]],
        *,
        dimensions: Mapping[str, str] | None = None,
        properties: Mapping[str, object] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Write `values` (name -> (value, unit)) under this namespace and these dimensions."""
        context = MetricsContext.empty()
        context.namespace = self.namespace
        context.set_dimensions([{**self._dimensions, **(dimensions or {})}])
        for name, (value, unit) in values.items():
            context.put_metric(name, value, unit)
        for key, extra in (properties or {}).items():
            context.set_property(key, extra)
        context.set_timestamp(at or datetime.now(UTC))
        stream = self._stream or sys.stderr
        with self._lock:
            for document in LogSerializer.serialize(context):
                stream.write(document + "\n")
            stream.flush()

    def flushed(
        self,
        events: int,
        duplicates: int,
        dead_letters: Mapping[str, int],
        flush_ms: float,
        millis_behind: int | None,
    ) -> None:
        """A processor's flush: events, re-sent events, dead letters (also by reason), its
        latency, and how far behind the stream the shard was."""
        values: dict[str, tuple[float, str]] = {
            "EventsProcessed": (events, "Count"),
            "DuplicateEvents": (duplicates, "Count"),
            "DeadLetters": (sum(dead_letters.values()), "Count"),
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
