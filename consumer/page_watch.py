"""The page-traffic rule's edge: judge each complete minute of the whole stream, once.

Runs in every `clickstream consume` process beside the KCL daemon (a thread, not a record
processor: it judges the stream, not a shard). Each pass reads the shards' progress reports,
works out up to which event time every shard's counts are complete (`stream_watermark`),
sums the page-stats items of each minute now complete over all shards, and hands the totals
to the pure `PageTrafficDetector`. Every worker judges the same minutes from the same
totals, so they raise the same alerts; the alerts table's conditional put keeps the first.

It never stops the worker: counting matters more than alerting, so a failed pass is logged
(with its error) and the next pass tries again. A minute that keeps failing (an error
retrying cannot fix, or `MAX_MINUTE_ATTEMPTS` passes in a row) is logged and skipped: it is
never retried every pass forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from clickstream.kernel import aws
from clickstream.kernel.logging import get_logger
from clickstream.kernel.retry import Backoff, GaveUp, is_transient
from clickstream.stores.alerts import Alert, AlertsTable
from clickstream.stores.page_stats import PageStatsTable
from consumer.core.anomaly import (
    PageRules,
    PageTrafficDetector,
    judge_complete_minutes,
    stream_watermark,
)
from consumer.metrics import Metrics, announce_alert
from consumer.settings import ConsumerSettings

MAX_MINUTE_ATTEMPTS = 3
"""Passes a minute may fail in a row (transient errors) before it is skipped."""


class PageWatch:
    def __init__(
        self,
        *,
        dynamodb: Any,
        kinesis: Any,
        stream_name: str,
        page_stats_table: str,
        alerts: AlertsTable,
        rules: PageRules,
        log: Any,
        metrics: Metrics | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._dynamodb = dynamodb
        self._kinesis = kinesis
        self._stream = stream_name
        self._page_stats = page_stats_table
        self._alerts = alerts
        self._log = log
        self._metrics = metrics
        self._wall_clock = wall_clock
        self.detector = PageTrafficDetector(rules)
        self.raised = 0
        self.skipped: list[str] = []
        self._attempts: dict[str, int] = {}
        self._reading: str | None = None

    def run(self, stop: threading.Event, interval_seconds: float) -> None:
        """Pass after pass until `stop` is set."""
        self._log.info("page watch started", interval_s=interval_seconds)
        while not stop.is_set():
            try:
                self.run_once()
            except Exception as error:
                self._log.warning("page watch pass failed; trying again", error=repr(error))
                if self._metrics is not None:
                    self._metrics.emit({"WorkerErrors": (1, "Count")})
            stop.wait(interval_seconds)

    def run_once(self) -> list[Alert]:
        """Judge every minute that became complete since the last pass; the alerts raised."""
        progress = self._alerts.progress()
        open_shards = aws.shard_ids(self._kinesis, self._stream, open_only=True)
        rules = self.detector.rules
        watermark = stream_watermark(
            progress, open_shards, rules.lateness, now=self._wall_clock(), settle=rules.settle
        )
        if watermark is None:
            return []
        shards = sorted({entry.shard_id for entry in progress} | set(open_shards))
        raised: list[Alert] = []

        def raise_alerts(minute: str, alerts: list[Alert]) -> None:
            new = self._alerts.raise_once(alerts, self._wall_clock()) if alerts else []
            for alert in new:
                announce_alert(self._log, self._metrics, alert)
            raised.extend(new)
            self._log.info(
                "minute judged",
                minute=minute,
                alerts=len(alerts),
                raised_here=len(new),
                watermark=watermark.isoformat(),
            )

        while True:
            try:
                judge_complete_minutes(
                    self.detector,
                    watermark,
                    lambda minute: self._views(minute, shards),
                    raise_alerts,
                )
                break
            except Exception as error:
                self._skip_or_retry(error)  # re-raises unless the minute is skipped
        self.raised += len(raised)
        return raised

    def _skip_or_retry(self, error: Exception) -> None:
        """Re-raise (the next pass tries the minute again) unless the minute has failed for
        good: then log it, count it as an error, and go on without it."""
        minute, self._reading = self._reading or self.detector.next_minute, None
        if minute is None:
            raise error
        attempts = self._attempts[minute] = self._attempts.get(minute, 0) + 1
        cause = error.error if isinstance(error, GaveUp) else error
        if is_transient(cause) and attempts < MAX_MINUTE_ATTEMPTS:
            raise error
        self._log.error(
            "minute cannot be judged: skipped", minute=minute, attempts=attempts, error=repr(error)
        )
        if self._metrics is not None:
            self._metrics.emit({"WorkerErrors": (1, "Count")})
        self.skipped.append(minute)
        del self._attempts[minute]
        self.detector.unknown(minute)

    def _views(self, minute: str, shards: list[str]) -> dict[str, int]:
        self._reading = minute
        views = self._read_views(minute, shards)
        self._reading = None
        return views

    def _read_views(self, minute: str, shards: list[str]) -> dict[str, int]:
        return PageStatsTable(self._dynamodb, self._page_stats).views_by_page(minute, shards)


def start_page_watch(settings: ConsumerSettings, stop: threading.Event) -> threading.Thread | None:
    """Run the page watch of this worker in a daemon thread (None: no alerts table set)."""
    if not settings.alerts_table:
        return None
    log = get_logger(component="page-watch", worker_id=settings.worker_id)
    dynamodb = aws.client("dynamodb", region=settings.region)
    watch = PageWatch(
        dynamodb=dynamodb,
        kinesis=aws.client("kinesis", region=settings.region),
        stream_name=settings.stream_name,
        page_stats_table=settings.page_stats_table,
        alerts=AlertsTable(
            dynamodb,
            settings.alerts_table,
            raised_by=settings.worker_id,
            retention=timedelta(days=settings.retention_days),
            backoff=Backoff(deadline_seconds=settings.page_watch_interval_seconds),
            log=log,
        ),
        rules=settings.page_rules(),
        log=log,
        metrics=Metrics(settings.metrics_namespace, dimensions={"Stream": settings.stream_name}),
    )
    thread = threading.Thread(
        target=watch.run,
        args=(stop, settings.page_watch_interval_seconds),
        name="page-watch",
        daemon=True,
    )
    thread.start()
    return thread
