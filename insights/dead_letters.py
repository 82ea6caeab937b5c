"""Dead letters: what they are (by reason), and putting them back in the stream once fixed.

A dead letter is a record that broke the contract, kept by the workers with its reason and
its bytes (`dead-letter/…`, by arrival hour). When the fault was upstream (a producer that
wrote `sessionId`) or ours (a contract since relaxed), the operator replays them: each
record's original bytes, through a fix (top-level fields renamed) when given, checked
against the contract as the workers will check it, put back in the stream keyed by its
session. The workers then count each replayed event once: its event id is deduplicated as
any re-sent event's is, so a replay run twice counts nothing twice. Each replayed dead letter
is marked (`dead-letter-replays/<run>-<n>.json`, written after its batch is in the stream),
and a later replay skips what is marked. The decisions are pure; reading, marking and
putting are the edges (`DeadLetterStore`, the producer's `PutRecordsSender`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from clickstream.kernel.errors import ConfigurationError
from clickstream.kernel.events import REFUSAL_KEY, InvalidEvent, TimestampPolicy, decode_event
from clickstream.stores.archive_layout import DEAD_LETTER_PREFIX, partition_path
from insights.archive import listed_keys, object_lines

MARK_PREFIX: Final = "dead-letter-replays"
SAMPLES_PER_REASON: Final = 3
EXCERPT_CHARS: Final = 160


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    reason: str
    field: str | None
    detail: str
    shard_id: str
    sequence_number: str
    sub_sequence_number: int
    partition_key: str
    arrival_time: str
    data: bytes
    key: str
    """The archive object it was read from."""

    @property
    def identity(self) -> str:
        """Its record's place in the stream: unique, and the same on every read."""
        return f"{self.shard_id}/{self.sequence_number}/{self.sub_sequence_number}"

    @classmethod
    def from_line(cls, line: bytes, key: str) -> StoredDeadLetter:
        row = json.loads(line)
        return cls(
            reason=str(row["reason"]),
            field=row.get("field"),
            detail=str(row.get("detail", "")),
            shard_id=str(row["shard_id"]),
            sequence_number=str(row["sequence_number"]),
            sub_sequence_number=int(row.get("sub_sequence_number") or 0),
            partition_key=str(row.get("partition_key", "")),
            arrival_time=str(row["arrival_time"]),
            data=base64.b64decode(row["data_base64"]),
            key=key,
        )


@dataclass
class ReasonSummary:
    reason: str
    count: int = 0
    replayed: int = 0
    first_arrival: str = ""
    last_arrival: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "count": self.count,
            "replayed": self.replayed,
            "first_arrival": self.first_arrival,
            "last_arrival": self.last_arrival,
            "samples": self.samples,
        }


def excerpt(data: bytes) -> str:
    text = data[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def summarise(letters: Iterable[StoredDeadLetter], replayed: set[str]) -> list[ReasonSummary]:
    """Per reason, most first: counts, how many were replayed, arrival span, a few samples."""
    found: dict[str, ReasonSummary] = {}
    for letter in letters:
        summary = found.setdefault(letter.reason, ReasonSummary(letter.reason))
        summary.count += 1
        summary.replayed += letter.identity in replayed
        if not summary.first_arrival or letter.arrival_time < summary.first_arrival:
            summary.first_arrival = letter.arrival_time
        summary.last_arrival = max(summary.last_arrival, letter.arrival_time)
        if len(summary.samples) < SAMPLES_PER_REASON:
            summary.samples.append(
                {
                    "field": letter.field,
                    "detail": letter.detail[:300],
                    "record": letter.identity,
                    "data": excerpt(letter.data),
                }
            )
    return sorted(found.values(), key=lambda s: (-s.count, s.reason))


def parse_renames(texts: Iterable[str]) -> dict[str, str]:
    """`--rename sessionId=session_id`, repeatable: top-level field renames."""
    renames: dict[str, str] = {}
    for text in texts:
        old, sep, new = text.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ConfigurationError(
                f"--rename {text!r}: expected OLD=NEW, e.g. sessionId=session_id"
            )
        renames[old.strip()] = new.strip()
    return renames


@dataclass(frozen=True, slots=True)
class Decision:
    letter: StoredDeadLetter
    outcome: str
    """'replay', 'already replayed', 'still invalid' or 'not replayable'."""
    data: bytes | None = None
    partition_key: str | None = None
    why: str = ""


def original_bytes(letter: StoredDeadLetter) -> bytes | str:
    """The event as its producer sent it, or why it is not kept: an event the collector
    refused travels in an envelope holding the first 8 KiB of it."""
    data = letter.data
    if REFUSAL_KEY.encode() not in data[:64]:
        return data
    try:
        envelope = json.loads(data)
        if envelope.get("truncated"):
            return "the collector kept only the first 8 KiB of this event"
        return str(envelope["excerpt"]).encode()
    except (ValueError, TypeError, KeyError, AttributeError):
        return data


def decide(
    letter: StoredDeadLetter, renames: Mapping[str, str], replayed: set[str], now: datetime
) -> Decision:
    """What replaying one dead letter would do, judged as the workers will judge it when it
    arrives now: the contract, the timestamp window, keyed by its session."""
    if letter.identity in replayed:
        return Decision(letter, "already replayed")
    data = original_bytes(letter)
    if isinstance(data, str):
        return Decision(letter, "not replayable", why=data)
    if renames:
        try:
            event = json.loads(data)
        except ValueError:
            return Decision(letter, "still invalid", why="not JSON: no field to rename")
        if not isinstance(event, dict):
            return Decision(letter, "still invalid", why="not a JSON object: no field to rename")
        fixed = {renames.get(name, name): value for name, value in event.items()}
        data = json.dumps(fixed, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        valid = decode_event(data, TimestampPolicy(now))
    except InvalidEvent as error:
        return Decision(letter, "still invalid", why=f"{error.reason.value}: {error.detail}"[:300])
    return Decision(letter, "replay", data=data, partition_key=valid.session_id)


class DeadLetterStore:
    """The dead-letter prefix and the replay marks, in the archive bucket."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def _keys(self, prefix: str) -> list[str]:
        return listed_keys(self._s3, self._bucket, prefix)

    def letters(self, hours: Iterable[datetime]) -> list[StoredDeadLetter]:
        """Every dead letter that arrived in these hours, oldest object first."""
        found: list[StoredDeadLetter] = []
        for hour in hours:
            for key in sorted(self._keys(partition_path(DEAD_LETTER_PREFIX, hour) + "/")):
                found += [
                    StoredDeadLetter.from_line(line, key)
                    for line in object_lines(self._s3, self._bucket, key)
                ]
        return found

    def replayed(self) -> set[str]:
        marked: set[str] = set()
        for key in self._keys(f"{MARK_PREFIX}/"):
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            marked.update(json.loads(body)["replayed"])
        return marked

    def mark(self, run: str, part: int, identities: list[str], renames: Mapping[str, str]) -> None:
        body = {
            "run": run,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "renames": dict(renames),
            "replayed": identities,
        }
        self._s3.put_object(
            Bucket=self._bucket,
            Key=f"{MARK_PREFIX}/{run}-{part:05d}.json",
            Body=json.dumps(body).encode(),
            ContentType="application/json",
        )
