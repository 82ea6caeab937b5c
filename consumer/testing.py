"""Test doubles shipped with the consumer, for tests and the benchmark (as bytewax ships
`bytewax.testing`).

- In-memory sinks with the DynamoDB and S3 sinks' semantics: they store the very item shapes
  the DynamoDB store writes (so serialising is measured too) and apply the same position
  guard, in Python.
- `ScriptedDaemon` drives a record processor through amazon_kclpy's real protocol code without
  the daemon: it plays the MultiLangDaemon's side of the JSON-lines protocol, handing the
  processor's `KCLProcess` one action per `readline()`, answering each checkpoint request the
  processor writes (successfully, or with the error a test chooses), and keeping every line
  the processor wrote to its stdout so tests can check that nothing else ever went there.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from amazon_kclpy import kcl

from clickstream.stores.alerts import Alert, ShardProgress
from clickstream.stores.limits import ItemLimits, KeySchema, violation
from clickstream.stores.page_stats import (
    PAGE_INDEX_PROJECTION,
    PAGE_STATS_KEYS,
    MinuteRollup,
    PageMinuteKey,
    PageMinuteState,
    page_from_item,
    page_item,
    page_sort_key,
    rollup_from_item,
    rollup_item,
)
from clickstream.stores.sessions import SESSIONS_KEYS, SessionState, session_from_item, session_item
from consumer.core.aggregate import Changes
from consumer.core.batch import ArchiveObject
from consumer.core.billing import Ledger, item_bytes, read_units, write_units
from consumer.core.limits import Unstorable
from consumer.sinks import SaveOutcome, StateStore

# -- in-memory sinks ------------------------------------------------------------------------


class MemoryStore:
    """The sessions and page-stats tables in memory. Like DynamoDB, it refuses (as invalid,
    writing nothing) an item beyond `limits`: DynamoDB's own by default."""

    def __init__(self, limits: ItemLimits | None = None, ledger: Ledger | None = None) -> None:
        self.limits = limits or ItemLimits()
        self.ledger = ledger or Ledger()
        """What the calls would cost on DynamoDB (`consumer.core.billing`)."""
        self.sessions: dict[str, dict[str, Any]] = {}
        self.pages: dict[tuple[str, str], dict[str, Any]] = {}
        self.rollups: dict[str, dict[str, Any]] = {}
        """Live rollup items by sort key (minute#shard)."""
        self._sizes: dict[Any, int] = {}
        """Billed size of each stored item, by key (not measured twice)."""
        self.accounting_seconds = 0.0
        """Time spent billing and checking DynamoDB's limits: the bench leaves it out of the
        processor's time (DynamoDB does both on its side)."""
        self.reads = 0
        self.writes = 0

    def load(
        self, shard_id: str, sessions: set[str], pages: set[PageMinuteKey]
    ) -> tuple[dict[str, SessionState | None], dict[PageMinuteKey, PageMinuteState | None]]:
        self.reads += len(sessions) + len(pages)
        units = 0
        found_sessions: dict[str, SessionState | None] = {}
        for session_id in sessions:
            item = self.sessions.get(session_id)
            units += read_units(0 if item is None else item_bytes(item))
            found_sessions[session_id] = None if item is None else session_from_item(item)
        found_pages: dict[PageMinuteKey, PageMinuteState | None] = {}
        for key in pages:
            page_item = self.pages.get((key.page, page_sort_key(key.minute, shard_id)))
            units += read_units(0 if page_item is None else item_bytes(page_item))
            found_pages[key] = None if page_item is None else page_from_item(page_item)
        keys = len(sessions) + len(pages)
        # BatchGetItem takes 100 keys a call (clickstream.kernel.dynamo.BATCH_GET_KEYS).
        self.ledger.read("state reads", units, calls=-(-keys // 100))
        return found_sessions, found_pages

    def load_rollups(self, shard_id: str, minutes: set[str]) -> dict[str, MinuteRollup | None]:
        found: dict[str, MinuteRollup | None] = {}
        for minute in minutes:
            item = self.rollups.get(page_sort_key(minute, shard_id))
            self.ledger.read("state reads", read_units(0 if item is None else item_bytes(item)))
            found[minute] = None if item is None else rollup_from_item(item)
        return found

    def save(self, changes: Changes, now: datetime) -> SaveOutcome:
        refused: list[str] = []
        refused_rollups: list[str] = []
        unstorable: list[Unstorable] = []
        for rollup in changes.rollups:
            item = rollup_item(rollup, expires_at=0, updated_at=now)
            sort_key = str(item["bucket_shard"])
            stored_rollup = self.rollups.get(sort_key)
            sized: tuple[str, Any] = ("rollup", sort_key)
            size = self._billed("live rollup puts", sized, item)
            if stored_rollup is not None and stored_rollup["position"] > item["position"]:
                refused_rollups.append(rollup.minute)
            else:
                self.rollups[sort_key] = item
                self._sizes[sized] = size
        for session in changes.sessions:
            item = session_item(session, expires_at=0)
            stored = self.sessions.get(session.session_id)
            newer = (
                stored is not None
                and stored["shard_id"] == item["shard_id"]
                and stored["position"] > item["position"]
            )
            sized = ("session", session.session_id)
            size = self._billed("session puts", sized, item)
            why = self._put(self.sessions, session.session_id, item, SESSIONS_KEYS, newer)
            if why is None:
                self._sizes[sized] = size
            if why:
                unstorable.append(Unstorable(why, session_id=session.session_id))
            elif why is not None:
                refused.append(f"session {session.session_id}")
        for page in changes.pages:
            item = page_item(page, expires_at=0, updated_at=now)
            key = (item["page"], item["bucket_shard"])
            stored_page = self.pages.get(key)
            newer = stored_page is not None and stored_page["position"] > item["position"]
            sized = ("page", key)
            size = self._billed("page puts", sized, item, stored_page)
            why = self._put(self.pages, key, item, PAGE_STATS_KEYS, newer)
            if why is None:
                self._sizes[sized] = size
            if why:
                unstorable.append(Unstorable(why, page=page.key))
            elif why is not None:
                refused.append(f"page {key}")
        self.writes += changes.item_count
        written = changes.item_count - len(refused) - len(refused_rollups) - len(unstorable)
        return SaveOutcome(
            written=written,
            refused=refused,
            unstorable=unstorable,
            refused_rollups=refused_rollups,
        )

    def _billed(
        self,
        what: str,
        sized: tuple[str, Any],
        item: dict[str, Any],
        stored_page: dict[str, Any] | None = None,
    ) -> int:
        """Bill a put (the larger of the old and new item; a page's index write too); the
        item's size. Timed apart: a real store does no such accounting."""
        began = time.perf_counter()
        size = item_bytes(item)
        self.ledger.write(what, write_units(max(size, self._sizes.get(sized, 0))))
        if what == "page puts":
            index_units = _index_units(stored_page, item, PAGE_INDEX_PROJECTION)
            if index_units:
                self.ledger.write("page index writes", index_units, calls=0)
        self.accounting_seconds += time.perf_counter() - began
        return size

    def _put(
        self,
        table: dict[Any, dict[str, Any]],
        key: Any,
        item: dict[str, Any],
        schema: KeySchema,
        stored_is_newer: bool,
    ) -> str | None:
        """None when stored; the limit it breaks when refused as invalid (as DynamoDB does);
        "" when the stored item is newer (the position guard)."""
        began = time.perf_counter()
        problem = violation(item, schema, self.limits)
        self.accounting_seconds += time.perf_counter() - began
        if problem:
            return problem
        if stored_is_newer:
            return ""
        table[key] = item
        return None


def _index_units(stored: dict[str, Any] | None, item: dict[str, Any], projection: str) -> int:
    """The write units a page-stats put costs in the `by-window` index. The index's keys
    never change, so with KEYS_ONLY only a new item writes there; with ALL, any change."""
    if projection == "KEYS_ONLY":
        keys = {name: item[name] for name in ("page", "bucket_shard", "window_shard")}
        return write_units(item_bytes(keys)) if stored is None else 0
    return write_units(item_bytes(item)) if stored != item else 0


class MemoryArchive:
    def __init__(self, ledger: Ledger | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts = 0
        self.ledger = ledger or Ledger()

    def put(self, objects: Sequence[ArchiveObject]) -> None:
        for archived in objects:
            self.objects[archived.key] = archived.body
        self.puts += len(objects)
        self.ledger.call("s3 puts", len(objects))


class MemoryLease:
    """KCL's lease table as the lease check reads it: this worker always the owner."""

    def __init__(self, ledger: Ledger | None = None) -> None:
        self.ledger = ledger or Ledger()

    def still_owner(self, shard_id: str) -> bool:
        self.ledger.read("lease checks", read_units(0))
        return True


class MemoryAlerts:
    """The alerts table in memory: raised once per (rule, window, subject); progress kept."""

    def __init__(self, ledger: Ledger | None = None) -> None:
        self.alerts: dict[tuple[str, str], Alert] = {}
        self.progress: dict[str, ShardProgress] = {}
        self.attempts = 0
        self.ledger = ledger or Ledger()

    def raise_once(self, alerts: Sequence[Alert], now: datetime) -> list[Alert]:
        raised = []
        for alert in alerts:
            self.attempts += 1
            self.ledger.write("alert puts", 1)
            key = (alert.rule.value, alert.window_subject)
            if key not in self.alerts:
                self.alerts[key] = alert
                raised.append(alert)
        return raised

    def report_progress(self, progress: ShardProgress, now: datetime) -> None:
        self.ledger.write("progress reports", 1)
        stored = self.progress.get(progress.shard_id)
        if stored is not None and stored.event_watermark is not None:
            if progress.event_watermark is None:
                # Like DynamoAlerts: a report without a watermark leaves the stored one.
                progress = replace(progress, event_watermark=stored.event_watermark)
            elif progress.event_watermark < stored.event_watermark:
                return  # an older watermark is refused whole, as the conditional update is
        self.progress[progress.shard_id] = progress


class PassThroughStore:
    """A state store that passes every call on to `store`: a test double that breaks one
    call (a save that fails halfway, or after an alert) subclasses it and overrides that
    call alone."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def load(
        self, shard_id: str, sessions: set[str], pages: set[PageMinuteKey]
    ) -> tuple[dict[str, SessionState | None], dict[PageMinuteKey, PageMinuteState | None]]:
        return self.store.load(shard_id, sessions, pages)

    def load_rollups(self, shard_id: str, minutes: set[str]) -> dict[str, MinuteRollup | None]:
        return self.store.load_rollups(shard_id, minutes)

    def save(self, changes: Changes, now: datetime) -> SaveOutcome:
        return self.store.save(changes, now)


# -- the scripted daemon --------------------------------------------------------------------

SEQUENCE_BASE = 49_680_477_731_447_033_642_919_771_787_628_839_273_462_071_122_875_000_000
"""Real Kinesis sequence numbers are this long; the processor must not assume small ones."""


@dataclass
class ProtocolRecord:
    data: bytes
    partition_key: str
    sequence_number: int
    sub_sequence_number: int = 0
    arrival_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    """When the record reached the stream (Kinesis' ApproximateArrivalTimestamp): now."""

    def as_json(self) -> dict[str, Any]:
        return {
            "action": "record",
            "data": base64.b64encode(self.data).decode("ascii"),
            "partitionKey": self.partition_key,
            "sequenceNumber": str(self.sequence_number),
            "subSequenceNumber": self.sub_sequence_number,
            "approximateArrivalTimestamp": self.arrival_ms,
        }


def protocol_records(
    payloads: Iterable[tuple[bytes, str]], first_sequence: int = 1
) -> list[ProtocolRecord]:
    """(data, partition key) pairs as consecutive records of one shard."""
    return [
        ProtocolRecord(data, partition_key, SEQUENCE_BASE + first_sequence + index)
        for index, (data, partition_key) in enumerate(payloads)
    ]


@dataclass
class ScriptedDaemon:
    actions: deque[dict[str, Any]] = field(default_factory=deque)
    written: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_errors: deque[str | None] = field(default_factory=deque)
    """Answers for the next checkpoint requests; None (or nothing left) means success."""
    on_action: Callable[[dict[str, Any]], None] | None = None
    """Called with each action as the processor reads it (a benchmark moves its clock)."""

    # -- what a test scripts ----------------------------------------------------------------

    def initialize(self, shard_id: str, checkpoint: str = "TRIM_HORIZON") -> ScriptedDaemon:
        self.actions.append(
            {
                "action": "initialize",
                "shardId": shard_id,
                "sequenceNumber": checkpoint,
                "subSequenceNumber": 0,
            }
        )
        return self

    def process(self, records: Iterable[ProtocolRecord]) -> ScriptedDaemon:
        self.actions.append(
            {
                "action": "processRecords",
                "millisBehindLatest": 0,
                "records": [record.as_json() for record in records],
            }
        )
        return self

    def shutdown_requested(self) -> ScriptedDaemon:
        self.actions.append({"action": "shutdownRequested"})
        return self

    def lease_lost(self) -> ScriptedDaemon:
        self.actions.append({"action": "leaseLost"})
        return self

    def shard_ended(self) -> ScriptedDaemon:
        self.actions.append({"action": "shardEnded"})
        return self

    def run(self, processor: Any) -> None:
        kcl.KCLProcess(processor, input_file=self, output_file=self, error_file=sys.stderr).run()

    # -- the file-like sides amazon_kclpy reads and writes ------------------------------------

    def readline(self) -> str:
        if not self.actions:
            return ""
        action = self.actions.popleft()
        if self.on_action is not None:
            self.on_action(action)
        return json.dumps(action) + "\n"

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if not line.strip():
                continue
            message = json.loads(line)  # anything that is not protocol JSON fails here
            self.written.append(message)
            if message["action"] == "checkpoint":
                error = self.checkpoint_errors.popleft() if self.checkpoint_errors else None
                self.actions.appendleft(
                    {
                        "action": "checkpoint",
                        "sequenceNumber": message["sequenceNumber"],
                        "subSequenceNumber": message["subSequenceNumber"],
                        "error": error,
                    }
                )
        return len(text)

    def flush(self) -> None:
        return None

    # -- what a test checks -------------------------------------------------------------------

    @property
    def checkpoints(self) -> list[tuple[str | None, int | None]]:
        return [
            (message["sequenceNumber"], message["subSequenceNumber"])
            for message in self.written
            if message["action"] == "checkpoint"
        ]

    @property
    def statuses(self) -> list[str]:
        return [m["responseFor"] for m in self.written if m["action"] == "status"]


class PreRenderedDaemon:
    """The daemon's side of the protocol with every action rendered before the run, so a
    benchmark times the record processor and amazon_kclpy's reading of the lines, not the
    making of them. Each line may carry a moment, set as `now` when the processor reads it
    (a simulated clock); checkpoint requests are answered with success."""

    def __init__(self, lines: Sequence[tuple[str, float]]) -> None:
        self._lines = deque(lines)
        self._answers: deque[str] = deque()
        self.now = 0.0
        self.checkpoints = 0

    def readline(self) -> str:
        if self._answers:
            return self._answers.popleft()
        if not self._lines:
            return ""
        line, self.now = self._lines.popleft()
        return line

    def write(self, text: str) -> int:
        if '"checkpoint"' in text:
            for line in text.splitlines():
                if line.strip():
                    message = json.loads(line)
                    if message["action"] == "checkpoint":
                        self.checkpoints += 1
                        self._answers.append(json.dumps({**message, "error": None}) + "\n")
        return len(text)

    def flush(self) -> None:
        return None

    def run(self, processor: Any) -> None:
        kcl.KCLProcess(processor, input_file=self, output_file=self, error_file=sys.stderr).run()


def render_action(action: dict[str, Any]) -> str:
    return json.dumps(action) + "\n"
