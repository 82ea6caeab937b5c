"""The collector's CloudWatch metrics (EMF on stderr, `clickstream.kernel.emf`), one document per
interval rather than per request: counters add up in memory between emissions."""

from __future__ import annotations

from collections import Counter
from typing import Final

from clickstream.kernel.emf import EmfWriter
from collector.delivery import DeliveryStats

METRIC_NAMES: Final = (
    "CollectorRequests",
    "EventsAccepted",
    "EventsRejected",
    "EventsSuppressed",
    "PutRecordsLatency",
    "PutRecordsThrottled",
    "ServiceUnavailable",
)
"""Dimension `Stream`; EventsRejected also by `Reason`. The template's dashboard uses these."""

MAX_VALUES_PER_METRIC: Final = 100
"""EMF's limit of values for one metric in one document."""


class CollectorMetrics:
    def __init__(self, writer: EmfWriter) -> None:
        self._writer = writer
        self.requests = 0
        self.accepted = 0
        self.unavailable = 0
        self.suppressed = 0
        self.rejected: Counter[str] = Counter()

    def request(self, accepted: int, rejected: dict[str, int], suppressed: int = 0) -> None:
        self.requests += 1
        self.accepted += accepted
        self.suppressed += suppressed
        self.rejected.update(rejected)

    def emit(self, delivery: DeliveryStats) -> None:
        """One document with the interval's figures, then one per rejection reason."""
        latencies = sorted(delivery.latencies_ms)
        if len(latencies) > MAX_VALUES_PER_METRIC:  # keep the spread, not the first 100
            step = len(latencies) / MAX_VALUES_PER_METRIC
            latencies = [latencies[int(i * step)] for i in range(MAX_VALUES_PER_METRIC)]
        values: dict[str, tuple[float | list[float], str]] = {
            "CollectorRequests": (self.requests, "Count"),
            "EventsAccepted": (self.accepted, "Count"),
            "EventsRejected": (sum(self.rejected.values()), "Count"),
            "EventsSuppressed": (self.suppressed, "Count"),
            "PutRecordsThrottled": (sum(delivery.entries_refused.values()), "Count"),
            "ServiceUnavailable": (self.unavailable, "Count"),
        }
        if latencies:
            values["PutRecordsLatency"] = ([round(ms, 2) for ms in latencies], "Milliseconds")
        self._writer.emit(values)
        for reason, count in sorted(self.rejected.items()):
            self._writer.emit({"EventsRejected": (count, "Count")}, dimensions={"Reason": reason})
        self.requests = self.accepted = self.unavailable = self.suppressed = 0
        self.rejected.clear()
