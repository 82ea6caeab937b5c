"""`clickstream forget`: one person's events and items removed from every store that holds them.

A person is named by user ids, anonymous ids or session ids. Their sessions are every
session in which one of those ids appears (an anonymous visitor who logs in mid-session:
the whole session is theirs; the ids those sessions show are followed in turn), found with
SQL over every row stored (the raw archive and every published generation, not the readers'
fold). Then, each step idempotent:

1. the session items are deleted, the alerts whose subject is one of the sessions, and the
   bot rule's verdicts on them (`verdicts/`);
2. the dead letters whose bytes carry one of the ids are rewritten away;
3. the lake: each compacted hour holding them gets a new generation without them
   (`Compactor.compact(excluding_sessions=…)`), and the generation it replaces is deleted
   at once (every version), not after the grace period;
4. the raw archive, last: each object holding a line of those sessions is rewritten without
   them (deleted when nothing is left; with versioning on, its older versions are deleted
   too). Until it is clean, a run killed on the way finds the person again and finishes.

Before any of it, every id of theirs goes on the suppression list (`clickstream.stores.suppression`)
and the run waits until every process has read it and every worker has written what it held
(`settle_seconds`): events arriving later (a tab still open, a retried beacon, a replay) are
dropped from then on, and none stored before it is missed. The sessions are looked for again
after the wait.

Page counters are aggregates over every visitor and stay as they are (the README says
what that means for a page one person alone visited: "Erasing a person").

The receipt (`forget-receipts/<request>.json`, the request named by a salted hash of the ids,
no identifier in clear) records, per object or item, what was found to remove the first
time it was found: a run killed halfway and run again finds less, and the receipt keeps what
the first found, so it is right however many runs it took.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from clickstream.kernel.errors import InsightsError
from clickstream.kernel.timestamps import from_iso

RECEIPT_PREFIX: Final = "forget-receipts"
MAX_ID_ROUNDS: Final = 5
"""How far ids are followed: a user id's sessions, their anonymous ids, those ids' sessions…"""


class ForgetError(InsightsError):
    """An erasure cannot go on: nothing to find it by, a store refusing."""


@dataclass(frozen=True, slots=True)
class Person:
    user_ids: tuple[str, ...] = ()
    anonymous_ids: tuple[str, ...] = ()
    session_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.user_ids or self.anonymous_ids or self.session_ids):
            raise ForgetError("name the person: --user-id, --anonymous-id or --session-id")

    def identifiers(self) -> list[str]:
        return sorted({*self.user_ids, *self.anonymous_ids, *self.session_ids})

    def request(self, salt: str) -> str:
        """The request's name: the same for the same ids, telling nothing of them."""
        text = "\n".join(
            f"{kind}:{value}"
            for kind, values in (
                ("user_id", self.user_ids),
                ("anonymous_id", self.anonymous_ids),
                ("session_id", self.session_ids),
            )
            for value in sorted(set(values))
        )
        return hashlib.sha256(f"{salt}\n{text}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Found:
    """The person's ids as the stored events show them, by kind."""

    user_ids: frozenset[str] = frozenset()
    anonymous_ids: frozenset[str] = frozenset()
    session_ids: frozenset[str] = frozenset()

    def by_kind(self) -> dict[str, frozenset[str]]:
        return {
            "user_id": self.user_ids,
            "anonymous_id": self.anonymous_ids,
            "session_id": self.session_ids,
        }

    def identifiers(self) -> set[str]:
        return {*self.user_ids, *self.anonymous_ids, *self.session_ids}


def hashed(salt: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\n{value}".encode()).hexdigest()[:32]


def carries_any(data: bytes, needles: Iterable[bytes]) -> bool:
    """Whether a dead letter's bytes hold one of the ids anywhere: a record that broke the
    contract cannot be trusted to have them in their fields."""
    return any(needle in data for needle in needles)


@dataclass
class Receipt:
    request: str
    started_at: str
    finished_at: str | None = None
    status: str = "running"
    runs: int = 0
    sessions: list[str] = field(default_factory=list)
    """The sessions' salted hashes."""
    raw_objects: dict[str, int] = field(default_factory=dict)
    """Key -> events removed, when first found."""
    lake_hours: dict[str, int] = field(default_factory=dict)
    dead_letter_objects: dict[str, int] = field(default_factory=dict)
    session_items: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    bot_verdicts: list[str] = field(default_factory=list)
    """The bot rule's verdict objects deleted (their sessions' salted hashes)."""
    suppressed: list[str] = field(default_factory=list)
    """The suppression list's entries put (their `id_hash`)."""
    suppressed_at: str | None = None
    """When the first run put them: the erasure waits `settle_seconds` from then."""
    lifted_at: str | None = None

    def found(self, store: dict[str, int], key: str, count: int) -> None:
        if count and key not in store:
            store[key] = count

    def totals(self) -> dict[str, int]:
        return {
            "sessions": len(self.sessions),
            "raw_objects_rewritten": len(self.raw_objects),
            "raw_events_removed": sum(self.raw_objects.values()),
            "lake_hours_rewritten": len(self.lake_hours),
            "lake_rows_removed": sum(self.lake_hours.values()),
            "dead_letter_objects_rewritten": len(self.dead_letter_objects),
            "dead_letters_removed": sum(self.dead_letter_objects.values()),
            "session_items_deleted": len(self.session_items),
            "alerts_deleted": len(self.alerts),
            "bot_verdicts_deleted": len(self.bot_verdicts),
            "ids_suppressed": len(self.suppressed),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "runs": self.runs,
            "removed": self.totals(),
            "sessions": self.sessions,
            "raw_objects": self.raw_objects,
            "lake_hours": self.lake_hours,
            "dead_letter_objects": self.dead_letter_objects,
            "session_items": self.session_items,
            "alerts": self.alerts,
            "bot_verdicts": self.bot_verdicts,
            "suppressed": self.suppressed,
            "suppressed_at": self.suppressed_at,
            "lifted_at": self.lifted_at,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Receipt:
        return cls(
            request=value["request"],
            started_at=value["started_at"],
            finished_at=value.get("finished_at"),
            status=value.get("status", "running"),
            runs=int(value.get("runs", 0)),
            sessions=list(value.get("sessions", [])),
            raw_objects=dict(value.get("raw_objects", {})),
            lake_hours=dict(value.get("lake_hours", {})),
            dead_letter_objects=dict(value.get("dead_letter_objects", {})),
            session_items=list(value.get("session_items", [])),
            alerts=list(value.get("alerts", [])),
            bot_verdicts=list(value.get("bot_verdicts", [])),
            suppressed=list(value.get("suppressed", [])),
            suppressed_at=value.get("suppressed_at"),
            lifted_at=value.get("lifted_at"),
        )


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def settle_left(suppressed_at: str, settle_seconds: float, now: datetime) -> float:
    """Seconds still to wait after the suppression was put, before erasing (0: none)."""
    waited = (now - from_iso(suppressed_at)).total_seconds()
    return max(0.0, settle_seconds - waited)
