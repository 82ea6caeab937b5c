"""The AWS edges of a record processor: state in DynamoDB, archive in S3.

Thin on purpose: the item shapes and single writes are the stores' (`clickstream.stores`),
the retry policy `clickstream.kernel.retry`'s. Clients are injected (tests pass clients bound
to the local emulator). Writes of one flush run on a small thread pool: conditional puts
cannot be batched, and a flush waits for the slowest of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from clickstream.kernel.dynamo import batch_get
from clickstream.kernel.retry import Backoff, call_with_retries
from clickstream.stores import archive_layout
from clickstream.stores.alerts import Alert, ShardProgress
from clickstream.stores.guarded import REFUSED, WRITTEN
from clickstream.stores.page_stats import (
    MinuteRollup,
    PageMinuteKey,
    PageMinuteState,
    PageStatsTable,
    page_from_item,
    page_key,
    rollup_from_item,
    rollup_key,
)
from clickstream.stores.sessions import SessionsTable, SessionState, session_from_item, session_key
from consumer.core.aggregate import Changes
from consumer.core.batch import ArchiveObject
from consumer.core.limits import Unstorable


def _unstorable(change: SessionState | PageMinuteState, reason: str) -> Unstorable:
    if isinstance(change, SessionState):
        return Unstorable(reason, session_id=change.session_id)
    return Unstorable(reason, page=change.key)


class StateStore(Protocol):
    def load(
        self, shard_id: str, sessions: set[str], pages: set[PageMinuteKey]
    ) -> tuple[dict[str, SessionState | None], dict[PageMinuteKey, PageMinuteState | None]]: ...

    def load_rollups(self, shard_id: str, minutes: set[str]) -> dict[str, MinuteRollup | None]: ...

    def save(self, changes: Changes, now: datetime) -> SaveOutcome:
        """Write the changes, each conditional on its stored position. The rollups are
        stored before any page-minute item of the same save is sent: an item must never
        be in the table ahead of its rollup (`ShardPipeline._write_due`)."""
        ...


class Archive(Protocol):
    def put(self, objects: Sequence[ArchiveObject]) -> None: ...


class LeaseOwnership(Protocol):
    def still_owner(self, shard_id: str) -> bool: ...


class AlertSink(Protocol):
    def raise_once(self, alerts: Sequence[Alert], now: datetime) -> list[Alert]:
        """Write each alert unless it exists; returns the ones raised by this call."""
        ...

    def report_progress(self, progress: ShardProgress, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class SaveOutcome:
    written: int
    refused: list[str] = field(default_factory=list)
    """Items whose stored position was newer than ours: another worker has moved on."""
    unstorable: list[Unstorable] = field(default_factory=list)
    """Items DynamoDB refused as invalid (ValidationException): not retried, not written."""
    refused_rollups: list[str] = field(default_factory=list)
    """Minutes whose stored rollup was newer: a live view, refreshed from the store, never
    a reason to stop (the lease check and the items' positions fence a stale worker)."""

    @property
    def fenced(self) -> bool:
        return bool(self.refused)


@dataclass(frozen=True, slots=True)
class Tables:
    sessions: str
    page_stats: str


class DynamoStateStore:
    def __init__(
        self,
        client: Any,
        tables: Tables,
        *,
        retention: timedelta,
        backoff: Backoff,
        log: Any,
        pool: ThreadPoolExecutor,
    ) -> None:
        self._client = client
        self._tables = tables
        self._sessions = SessionsTable(client, tables.sessions)
        self._page_stats = PageStatsTable(client, tables.page_stats)
        self._retention = retention
        self._backoff = backoff
        self._log = log
        self._pool = pool

    def load(
        self, shard_id: str, sessions: set[str], pages: set[PageMinuteKey]
    ) -> tuple[dict[str, SessionState | None], dict[PageMinuteKey, PageMinuteState | None]]:
        requests: list[tuple[str, dict[str, Any]]] = [
            (self._tables.sessions, session_key(session_id)) for session_id in sorted(sessions)
        ]
        requests += [(self._tables.page_stats, page_key(key, shard_id)) for key in pages]
        found_sessions: dict[str, SessionState | None] = dict.fromkeys(sessions)
        found_pages: dict[PageMinuteKey, PageMinuteState | None] = dict.fromkeys(pages)
        for table, item in self._batch_get(requests):
            if table == self._tables.sessions:
                session = session_from_item(item)
                found_sessions[session.session_id] = session
            else:
                page = page_from_item(item)
                found_pages[page.key] = page
        return found_sessions, found_pages

    def load_rollups(self, shard_id: str, minutes: set[str]) -> dict[str, MinuteRollup | None]:
        found: dict[str, MinuteRollup | None] = dict.fromkeys(minutes)
        keys = [(self._tables.page_stats, rollup_key(m, shard_id)) for m in sorted(minutes)]
        for _, item in self._batch_get(keys):
            rollup = rollup_from_item(item)
            found[rollup.minute] = rollup
        return found

    def _batch_get(self, keys: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
        # Consistent: a new lease owner must read what the last one wrote. 100 keys a call;
        # unprocessed keys asked again with the same backoff and deadline as a throttle.
        return batch_get(self._client, keys, consistent=True, backoff=self._backoff, log=self._log)

    def save(self, changes: Changes, now: datetime) -> SaveOutcome:
        expires_at = int((now + self._retention).timestamp())
        how = {"expires_at": expires_at, "now": now, "backoff": self._backoff, "log": self._log}
        puts: list[tuple[str, Callable[[], str]]] = [
            (
                f"session {session.session_id}",
                functools.partial(self._sessions.put, session, **how),
            )
            for session in changes.sessions
        ]
        puts += [
            (
                f"page {page.page} {page.minute} {page.shard_id}",
                functools.partial(self._page_stats.put_page, page, **how),
            )
            for page in changes.pages
        ]
        rollup_puts: list[tuple[str, Callable[[], str]]] = [
            (
                f"rollup {rollup.minute} {rollup.shard_id}",
                functools.partial(self._page_stats.put_rollup, rollup, **how),
            )
            for rollup in changes.rollups
        ]
        # Rollups first, then the items: a worker stopped in between leaves a rollup ahead
        # of its items (harmless: the replay's states up to it are ignored) and never behind.
        rollup_results = list(self._pool.map(_run_put, rollup_puts))
        results = list(self._pool.map(_run_put, puts)) + rollup_results
        states: list[SessionState | PageMinuteState] = [*changes.sessions, *changes.pages]
        refused = [subject for subject, status in results[: len(states)] if status == REFUSED]
        refused_rollups = [
            rollup.minute
            for rollup, (_, status) in zip(changes.rollups, results[len(states) :], strict=True)
            if status == REFUSED
        ]
        unstorable: list[Unstorable] = []
        for (_, status), state in zip(results, states, strict=False):
            if status not in (WRITTEN, REFUSED):
                unstorable.append(_unstorable(state, status))
        for subject, status in results[len(states) :]:
            if status not in (WRITTEN, REFUSED):
                # Bounded by construction; the page-minute items hold the same counters.
                self._log.error("rollup refused by DynamoDB; not written", rollup=subject)
        failed = sum(status not in (WRITTEN, REFUSED) for _, status in results)
        return SaveOutcome(
            written=len(results) - len(refused) - len(refused_rollups) - failed,
            refused=refused,
            unstorable=unstorable,
            refused_rollups=refused_rollups,
        )


def _run_put(put: tuple[str, Callable[[], str]]) -> tuple[str, str]:
    """(subject, what the store answered: WRITTEN, REFUSED or why DynamoDB refused it)."""
    subject, write = put
    return subject, write()


class S3Archive:
    """The archive's objects, each put with retries; a raw object put late (its hour ended
    `archive_layout.LATE_AFTER` ago) then gets its late mark, which names it as S3 stored it
    (its ETag): readers trust a compacted hour's manifest unless a mark says otherwise. The
    mark follows the object, so a mark never names what is not there; a worker stopped between
    the two replays the records from its last checkpoint (taken after both) and puts both."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        backoff: Backoff,
        log: Any,
        pool: ThreadPoolExecutor,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._backoff = backoff
        self._log = log
        self._pool = pool
        self._clock = clock

    def put(self, objects: Sequence[ArchiveObject]) -> None:
        list(self._pool.map(self._put_one, objects))

    def _put_one(self, archived: ArchiveObject) -> None:
        stored = call_with_retries(
            lambda: self._client.put_object(
                Bucket=self._bucket,
                Key=archived.key,
                Body=archived.body,
                ContentType="application/x-ndjson",
            ),
            what="s3:PutObject",
            backoff=self._backoff,
            log=self._log,
        )
        if archive_layout.is_late(archived.key, self._clock()):
            mark = archive_layout.late_mark_key(archived.key, stored["ETag"])
            call_with_retries(
                lambda: self._client.put_object(Bucket=self._bucket, Key=mark, Body=b""),
                what="s3:PutObject (late mark)",
                backoff=self._backoff,
                log=self._log,
            )


class KclLeaseTable:
    """Whether this worker still holds a shard's lease, read from KCL's own lease table.

    Checked before each flush: a worker that lost the lease while paused (a zombie) finds
    another owner there and writes nothing. KCL fences its checkpoints the same way.

    KCL 3's graceful handoff moves `leaseOwner` to the next worker at once and leaves
    `checkpointOwner` naming the current one until it has flushed and checkpointed (its
    `shutdownRequested`): the worker that owns the shard's writes is the checkpoint owner
    while there is one, the lease owner otherwise (KCL's own `Lease.actualOwner`).
    """

    def __init__(
        self, client: Any, table: str, worker_id: str, *, backoff: Backoff, log: Any
    ) -> None:
        self._client = client
        self._table = table
        self._worker_id = worker_id
        self._backoff = backoff
        self._log = log

    def still_owner(self, shard_id: str) -> bool:
        response = call_with_retries(
            functools.partial(
                self._client.get_item,
                TableName=self._table,
                Key={"leaseKey": {"S": shard_id}},
                ConsistentRead=True,
                ProjectionExpression="leaseOwner, checkpointOwner",
            ),
            what="dynamodb:GetItem lease",
            backoff=self._backoff,
            log=self._log,
        )
        item = response.get("Item", {})
        lease_owner = item.get("leaseOwner", {}).get("S")
        checkpoint_owner = item.get("checkpointOwner", {}).get("S")
        if checkpoint_owner == self._worker_id and lease_owner != self._worker_id:
            self._log.info(
                "lease handoff in progress: still the checkpoint owner",
                shard_id=shard_id,
                next_owner=lease_owner,
            )
        return bool((checkpoint_owner or lease_owner) == self._worker_id)
