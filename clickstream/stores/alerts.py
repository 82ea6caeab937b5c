"""The alerts table's shapes: an alert raised by a rule (once per rule, minute and subject)
and, in a partition of its own, each shard's progress report (how far its processor has
flushed), both ways between records and items. The workers write them; the page watch,
the dashboard and `query alerts` read them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import ClientError

from clickstream.kernel.dynamo import READ_BACKOFF, query_items, scan_table, to_dynamo
from clickstream.kernel.logging import get_logger
from clickstream.kernel.retry import Backoff, call_with_retries, error_code
from clickstream.kernel.timestamps import from_iso_or_none, to_iso_ms
from clickstream.stores.attributes import read_number, stored_number
from clickstream.stores.guarded import REFUSED, WRITTEN, put_guarded
from clickstream.stores.limits import KeySchema, violation


class Rule(StrEnum):
    """Alert rule names: the alerts table's partition key and the metric's dimension."""

    PAGE_SPIKE = "page_spike"
    PAGE_DROP = "page_drop"
    BOT_SESSION = "bot_session"


@dataclass(frozen=True, slots=True)
class Alert:
    rule: Rule
    subject: str
    window: str
    """The minute (`YYYY-MM-DDTHH:MM`, UTC) the alert is about: the page's minute, or the
    minute the session started."""
    observed: float
    baseline: float | None
    threshold: float
    details: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def window_subject(self) -> str:
        """The alerts table's sort key: with `rule`, what makes an alert unique."""
        return f"{self.window}#{self.subject}"


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """How far a shard's processor has flushed, as it reports it (one item per shard)."""

    shard_id: str
    event_watermark: datetime | None
    """The newest event time among the records flushed on this shard."""
    caught_up: bool
    """Everything that had arrived on the shard was flushed when this was reported."""
    ended: bool = False
    """The shard was closed by a reshard and its processor finished it."""
    caught_up_since: datetime | None = None
    """When (wall clock) the shard last became caught up; None when unknown."""


ALERT_WRITE_CONDITION: Final = "attribute_not_exists(#rule)"
"""An alert is raised once: the first writer of (rule, window, subject) wins."""


PROGRESS_RULE: Final = "#progress"
"""Partition of the alerts table holding one progress item per shard (`#` starts no rule)."""


def alert_item(
    alert: Alert, *, raised_by: str, raised_at: datetime, expires_at: int
) -> dict[str, Any]:
    return {
        "rule": alert.rule.value,
        "window_subject": alert.window_subject,
        "window": alert.window,
        "subject": alert.subject,
        "observed": stored_number(alert.observed),
        "threshold": stored_number(alert.threshold),
        **({} if alert.baseline is None else {"baseline": stored_number(alert.baseline)}),
        "details": {
            key: stored_number(value) if isinstance(value, float) else value
            for key, value in alert.details.items()
        },
        "raised_by": raised_by,
        "raised_at": to_iso_ms(raised_at),
        "expires_at": expires_at,
    }


def alert_from_item(item: Mapping[str, Any]) -> Alert:
    baseline = item.get("baseline")
    return Alert(
        rule=Rule(str(item["rule"])),
        subject=str(item["subject"]),
        window=str(item["window"]),
        observed=float(item["observed"]),
        baseline=None if baseline is None else float(baseline),
        threshold=float(item["threshold"]),
        details={str(key): read_number(value) for key, value in item.get("details", {}).items()},
    )


def progress_update(
    progress: ShardProgress, *, updated_at: datetime, expires_at: int
) -> dict[str, Any]:
    """UpdateItem arguments (less the table) reporting a shard's progress.

    The watermark only moves forward (a replay or a zombie may report an older one, which is
    then left alone); the other attributes are always this report's.
    """
    values: dict[str, Any] = {
        ":caught_up": progress.caught_up,
        ":caught_up_since": to_iso_ms(progress.caught_up_since) if progress.caught_up_since else "",
        ":ended": progress.ended,
        ":updated_at": to_iso_ms(updated_at),
        ":expires_at": expires_at,
    }
    assignments = [
        "caught_up = :caught_up",
        "caught_up_since = :caught_up_since",
        "ended = :ended",
        "updated_at = :updated_at",
        "expires_at = :expires_at",
    ]
    arguments: dict[str, Any] = {
        "Key": {"rule": PROGRESS_RULE, "window_subject": progress.shard_id},
    }
    if progress.event_watermark is not None:
        values[":watermark"] = to_iso_ms(progress.event_watermark)
        assignments.append("watermark = :watermark")
        arguments["ConditionExpression"] = (
            "attribute_not_exists(watermark) OR watermark <= :watermark"
        )
    arguments["UpdateExpression"] = "SET " + ", ".join(assignments)
    arguments["ExpressionAttributeValues"] = values
    return arguments


def progress_from_item(item: Mapping[str, Any]) -> ShardProgress:
    return ShardProgress(
        shard_id=str(item["window_subject"]),
        event_watermark=from_iso_or_none(item.get("watermark")),
        caught_up=bool(item.get("caught_up", False)),
        ended=bool(item.get("ended", False)),
        caught_up_since=from_iso_or_none(item.get("caught_up_since")),
    )


ALERTS_KEYS: Final = KeySchema(("rule",), ("window_subject",))


class AlertsTable:
    """Reads and writes of the alerts table: alerts raised once by conditional put, each
    shard's progress, the readers' queries; everything else goes through it."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        raised_by: str = "",
        retention: timedelta = timedelta(days=30),
        backoff: Backoff = READ_BACKOFF,
        log: Any = None,
    ) -> None:
        self._client = client
        self._table = table
        self._raised_by = raised_by
        self._retention = retention
        self._backoff = backoff
        self._log = log or get_logger(component="alerts")

    def raise_once(self, alerts: Sequence[Alert], now: datetime) -> list[Alert]:
        expires_at = int((now + self._retention).timestamp())
        raised = []
        for alert in alerts:
            item = alert_item(
                alert, raised_by=self._raised_by, raised_at=now, expires_at=expires_at
            )
            problem = violation(item, ALERTS_KEYS)
            if problem:
                self._log.error(
                    "alert cannot be stored; not raised", rule=alert.rule.value, limit=problem
                )
                continue
            if self._put_new(item):
                raised.append(alert)
        return raised

    def _put_new(self, item: dict[str, Any]) -> bool:
        answer = put_guarded(
            self._client,
            self._table,
            item,
            ALERT_WRITE_CONDITION,
            None,
            backoff=self._backoff,
            log=self._log,
        )
        if answer not in (WRITTEN, REFUSED):
            # An alert that cannot be stored is logged, not retried: counting goes on.
            self._log.error(
                "alert refused by DynamoDB; not raised",
                rule=item.get("rule"),
                window_subject=str(item.get("window_subject"))[:200],
                error=answer,
            )
        return answer == WRITTEN

    def report_progress(self, progress: ShardProgress, now: datetime) -> None:
        arguments = progress_update(
            progress, updated_at=now, expires_at=int((now + self._retention).timestamp())
        )

        request = {
            **arguments,
            "Key": to_dynamo(arguments["Key"]),
            "ExpressionAttributeValues": to_dynamo(arguments["ExpressionAttributeValues"]),
        }

        def update() -> None:
            try:
                self._client.update_item(TableName=self._table, **request)
            except ClientError as exc:
                # An older watermark than the stored one (a replay, a zombie): keep the newer.
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise

        call_with_retries(
            update, what="dynamodb:UpdateItem progress", backoff=self._backoff, log=self._log
        )

    def progress(self) -> list[ShardProgress]:
        """Every shard's last report."""
        rows = query_items(
            self._client,
            TableName=self._table,
            KeyConditionExpression="#rule = :progress",
            ExpressionAttributeNames={"#rule": "rule"},
            ExpressionAttributeValues={":progress": {"S": PROGRESS_RULE}},
            ConsistentRead=True,
        )
        return [progress_from_item(row) for row in rows]

    def alerts(self, *, since: str | None = None, rules: Iterable[str]) -> list[dict[str, Any]]:
        """Alerts of the given rules whose window is `since` (a minute) or later, oldest
        first. One query per rule: the sort key starts with the window, so `since` is a key
        condition."""
        found: list[dict[str, Any]] = []
        for rule in rules:
            condition = "#rule = :rule"
            values: dict[str, Any] = {":rule": {"S": rule}}
            if since:
                condition += " AND window_subject >= :since"
                values[":since"] = {"S": since}
            found += query_items(
                self._client,
                TableName=self._table,
                KeyConditionExpression=condition,
                ExpressionAttributeNames={"#rule": "rule"},
                ExpressionAttributeValues=values,
            )
        return sorted(found, key=lambda item: (str(item["window"]), str(item["rule"])))

    def naming(self, subjects: set[str]) -> list[dict[str, Any]]:
        """Every alert whose subject is one of `subjects` (a scan: erasure's rare read)."""
        return [
            item
            for item in scan_table(self._client, self._table)
            if str(item.get("subject")) in subjects
        ]

    def delete(self, rule: str, window_subject: str) -> None:
        key = {"rule": rule, "window_subject": window_subject}
        self._client.delete_item(TableName=self._table, Key=to_dynamo(key))
