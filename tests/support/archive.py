"""An archive written by the consumer's own archive code, for the read side's tests: seeded
traffic (with its manifest) and a crafted rage-click burst."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clickstream.kernel.events import ClickEvent, EventType, InvalidEvent, decode_event
from clickstream.stores.positions import Position
from consumer.core.batch import DeadLetter, archive_objects
from consumer.core.positioned import PositionedEvent
from producer.generator import TrafficProfile, generate
from producer.malformed import MalformedRecord
from producer.manifest import Manifest, build_manifest, shard_index

START = datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
"""The seeded traffic's first event: about 2.5 minutes of it follow."""
RAGE_SESSION = "s-rage"


def fill(s3: object, bucket: str, seed: int) -> tuple[Manifest, list[MalformedRecord]]:
    """Seeded traffic archived as the processors archive it (one shard, arrival = event time)."""
    records, anomalies = generate(
        seed, START, 3000, TrafficProfile(malformed=40, sessions_per_minute=120)
    )
    events, letters = [], []
    for sequence, record in enumerate(records, start=1):
        position = Position(sequence)
        if isinstance(record, ClickEvent):
            events.append(PositionedEvent(position, record, record.to_record(), record.session_id))
            continue
        try:
            decode_event(record.data, None)
        except InvalidEvent as error:
            letters.append(DeadLetter(position, record.partition_key, START, record.data, error))
    for chunk in range(0, len(events), 500):  # several flushes, as a processor makes them
        part = events[chunk : chunk + 500]
        for item in archive_objects("shardId-000000000000", part, letters if chunk == 0 else []):
            s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)  # type: ignore[attr-defined]
    manifest = build_manifest(records, anomalies, seed=seed, source="test")
    return manifest, [r for r in records if isinstance(r, MalformedRecord)]


def put_rage_burst(s3: object, bucket: str) -> None:
    """Four clicks of one session on /pricing within 450 ms and 4 px, three minutes after
    START, archived as shard 1's processor would."""
    at = START + timedelta(minutes=3)
    spots = [(300 + n, 200 - n) for n in range(4)]
    put_clicks(s3, bucket, "/pricing", spots, at=at, every=timedelta(milliseconds=150))


def put_clicks(
    s3: object,
    bucket: str,
    page: str,
    spots: list[tuple[int, int]],
    *,
    at: datetime = START + timedelta(minutes=3),
    every: timedelta = timedelta(seconds=2),
) -> None:
    """Clicks of one session (`s-rage`) on `page` at the given (x, y), `every` apart from
    `at`, archived as shard 1's processor would."""
    clicks = [
        ClickEvent(
            event_id=f"click-{page}-{n}",
            type=EventType.CLICK,
            session_id=RAGE_SESSION,
            page=page,
            timestamp=at + every * n,
            x=x,
            y=y,
            viewport_width=1280,
        )
        for n, (x, y) in enumerate(spots)
    ]
    events = [
        PositionedEvent(Position(90_000 + n), e, e.to_record(), e.session_id)
        for n, e in enumerate(clicks)
    ]
    for item in archive_objects("shardId-000000000001", events, []):
        s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)  # type: ignore[attr-defined]


def seed_hours(
    s3: object, bucket: str, seed: int, start: datetime, count: int, shards: int = 2
) -> tuple[Manifest, list[list[PositionedEvent]]]:
    """Seeded valid traffic from `start`, archived as `shards` processors archive it (flushes
    of 400 records): its manifest, and each shard's events in order (to write late or
    rewritten objects from)."""
    records, anomalies = generate(
        seed, start, count, TrafficProfile(malformed=0, sessions_per_minute=120)
    )
    per_shard: list[list[PositionedEvent]] = [[] for _ in range(shards)]
    for sequence, record in enumerate(records, start=1):
        assert isinstance(record, ClickEvent)
        index = shard_index(record.session_id, shards)
        item = PositionedEvent(Position(sequence), record, record.to_record(), record.session_id)
        per_shard[index].append(item)
    for index, events in enumerate(per_shard):
        for chunk in range(0, len(events), 400):
            put_objects(s3, bucket, shard_name(index), events[chunk : chunk + 400])
    return build_manifest(records, anomalies, seed=seed, source="test"), per_shard


def shard_name(index: int) -> str:
    return f"shardId-{index:012d}"


def put_objects(s3: object, bucket: str, shard_id: str, events: list[PositionedEvent]) -> None:
    """One flush of a processor: its objects, one per event-time hour."""
    for item in archive_objects(shard_id, events, []):
        s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)  # type: ignore[attr-defined]
