"""The alerts table's shapes: an alert raised by a rule (once per rule, minute and subject)
and, in a partition of its own, each shard's progress report (how far its processor has
flushed), both ways between records and items. The workers write them; the page watch,
the dashboard and `query alerts` read them here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from clickstream.kernel.timestamps import from_iso_or_none, to_iso_ms


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


def _number(value: float) -> Decimal | str:
    # DynamoDB numbers cannot be infinite or NaN; such a value is kept as its text.
    return Decimal(repr(value)) if math.isfinite(value) else repr(value)


def alert_item(
    alert: Alert, *, raised_by: str, raised_at: datetime, expires_at: int
) -> dict[str, Any]:
    return {
        "rule": alert.rule.value,
        "window_subject": alert.window_subject,
        "window": alert.window,
        "subject": alert.subject,
        "observed": _number(alert.observed),
        "threshold": _number(alert.threshold),
        **({} if alert.baseline is None else {"baseline": _number(alert.baseline)}),
        "details": {
            key: _number(value) if isinstance(value, float) else value
            for key, value in alert.details.items()
        },
        "raised_by": raised_by,
        "raised_at": to_iso_ms(raised_at),
        "expires_at": expires_at,
    }


def _detail(value: object) -> float | int | str:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int | float):
        return value
    return str(value)


def alert_from_item(item: Mapping[str, Any]) -> Alert:
    baseline = item.get("baseline")
    return Alert(
        rule=Rule(str(item["rule"])),
        subject=str(item["subject"]),
        window=str(item["window"]),
        observed=float(item["observed"]),
        baseline=None if baseline is None else float(baseline),
        threshold=float(item["threshold"]),
        details={str(key): _detail(value) for key, value in item.get("details", {}).items()},
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
