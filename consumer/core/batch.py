"""What the archive keeps of a commit window, and its objects. Pure: no I/O.

A commit window is every record received since the last checkpoint (`consumer.core.pending`):
valid events and dead letters, in shard order. Archive objects are a pure function of
(partition, shard, first position of that partition in the window), and their bodies are
deterministic gzip, so a replay from the checkpoint writes its objects under the same keys,
replacing what a crash left (DESIGN.md, "Archive keys").
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from clickstream.kernel.events import ClickEvent, InvalidEvent
from clickstream.stores.alerts import Alert, Rule
from clickstream.stores.archive_layout import (
    DEAD_LETTER_PREFIX,
    RAW_PREFIX,
    gzip_lines,
    lines_key,
    partition_of_hour,
    partition_path,
    verdict_key,
)
from clickstream.stores.positions import Position
from consumer.core.anomaly import parse_minute
from consumer.core.positioned import PositionedEvent


@dataclass(frozen=True, slots=True)
class DeadLetter:
    position: Position
    partition_key: str
    arrival: datetime
    data: bytes
    error: InvalidEvent

    def to_line(self, shard_id: str) -> dict[str, object]:
        return {
            "reason": self.error.reason.value,
            "field": self.error.field,
            "detail": self.error.detail[:1024],
            "shard_id": shard_id,
            "sequence_number": self.position.sequence_number,
            "sub_sequence_number": self.position.sub_sequence,
            "partition_key": self.partition_key,
            "arrival_time": _iso(self.arrival),
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "data_base64": base64.b64encode(self.data).decode("ascii"),
        }


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    key: str
    body: bytes
    records: int


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key_in(partition: str, shard_id: str, first: Position) -> str:
    return lines_key(partition, shard_id, first.sequence_number, first.sub_sequence)


def archive_line(item: PositionedEvent) -> bytes:
    """The event as its producer sent it (unknown fields included), on one line."""
    raw = item.raw
    if not raw and isinstance(item.event, ClickEvent):  # built in Python, with no record
        raw = item.event.to_record()
    if b"\n" in raw:  # pretty-printed JSON: same object, compact, so the line stays one line
        return json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode()
    return raw


def archive_objects(
    shard_id: str, events: Sequence[PositionedEvent], dead_letters: Sequence[DeadLetter]
) -> list[ArchiveObject]:
    """The S3 objects of one flush: events by event-time hour, dead letters by arrival hour.

    Records are taken in shard order whatever order they are passed in (dead letters found
    at flush time come after those found on arrival), so each object's key is the position
    of the first record of its partition: the same on every replay.
    """
    event_groups: dict[int, tuple[str, list[bytes]]] = {}
    for item in sorted(events, key=_position_of_event):
        hour = int(item.event.seconds // 3600)  # partition_path's hour, from the event's seconds
        group = event_groups.get(hour)
        if group is None:
            group = event_groups[hour] = (
                _key_in(partition_of_hour(RAW_PREFIX, hour), shard_id, item.position),
                [],
            )
        group[1].append(archive_line(item))
    dead_groups: dict[str, tuple[str, list[bytes]]] = {}
    for letter in sorted(dead_letters, key=_position_of_letter):
        partition = partition_path(DEAD_LETTER_PREFIX, letter.arrival)
        if partition not in dead_groups:
            dead_groups[partition] = (_key_in(partition, shard_id, letter.position), [])
        line = json.dumps(letter.to_line(shard_id), separators=(",", ":"), ensure_ascii=False)
        dead_groups[partition][1].append(line.encode("utf-8"))
    return [
        ArchiveObject(key, gzip_lines(lines), len(lines))
        for key, lines in [*event_groups.values(), *dead_groups.values()]
    ]


def _position_of_event(item: PositionedEvent) -> Position:
    return item.position


def _position_of_letter(letter: DeadLetter) -> Position:
    return letter.position


def verdict_objects(alerts: Sequence[Alert]) -> list[ArchiveObject]:
    """The S3 objects recording the sessions the bot rule judged among `alerts`: one per
    session, its key a function of the session alone, so a replay that judges the session
    again rewrites the same object."""
    objects = []
    for alert in alerts:
        if alert.rule is not Rule.BOT_SESSION:
            continue
        started = parse_minute(alert.window)
        line = {
            "session_id": alert.subject,
            "started_minute": alert.window,
            "score": alert.observed,
            "signals": str(alert.details.get("signals", "")),
        }
        body = gzip_lines([json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode()])
        objects.append(ArchiveObject(verdict_key(alert.subject, started), body, 1))
    return objects
