"""In-memory sinks with the DynamoDB sinks' semantics: for the benchmark and for tests.

They store the very item shapes the DynamoDB store writes (so serialising is measured too)
and apply the same position guard, in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from consumer import items
from consumer.aggregate import Changes, PageMinuteKey, PageMinuteState, SessionState
from consumer.anomaly import Alert, ShardProgress
from consumer.batch import ArchiveObject
from consumer.sinks import SaveOutcome


class MemoryStore:
    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.pages: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads = 0
        self.writes = 0

    def load(
        self, shard_id: str, sessions: set[str], pages: set[PageMinuteKey]
    ) -> tuple[dict[str, SessionState | None], dict[PageMinuteKey, PageMinuteState | None]]:
        self.reads += len(sessions) + len(pages)
        found_sessions: dict[str, SessionState | None] = {}
        for session_id in sessions:
            item = self.sessions.get(session_id)
            found_sessions[session_id] = None if item is None else items.session_from_item(item)
        found_pages: dict[PageMinuteKey, PageMinuteState | None] = {}
        for key in pages:
            page_item = self.pages.get((key.page, items.page_sort_key(key.minute, shard_id)))
            found_pages[key] = None if page_item is None else items.page_from_item(page_item)
        return found_sessions, found_pages

    def save(self, changes: Changes, now: datetime) -> SaveOutcome:
        refused: list[str] = []
        for session in changes.sessions:
            item = items.session_item(session, expires_at=0, updated_at=now)
            stored = self.sessions.get(session.session_id)
            if (
                stored is not None
                and stored["shard_id"] == item["shard_id"]
                and stored["position"] > item["position"]
            ):
                refused.append(f"session {session.session_id}")
                continue
            self.sessions[session.session_id] = item
        for page in changes.pages:
            item = items.page_item(page, expires_at=0, updated_at=now)
            key = (item["page"], item["bucket_shard"])
            stored_page = self.pages.get(key)
            if stored_page is not None and stored_page["position"] > item["position"]:
                refused.append(f"page {key}")
                continue
            self.pages[key] = item
        self.writes += changes.item_count
        return SaveOutcome(written=changes.item_count - len(refused), refused=refused)


class MemoryArchive:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put(self, objects: Sequence[ArchiveObject]) -> None:
        for archived in objects:
            self.objects[archived.key] = archived.body
        self.puts += len(objects)


class MemoryAlerts:
    """The alerts table in memory: raised once per (rule, window, subject); progress kept."""

    def __init__(self) -> None:
        self.alerts: dict[tuple[str, str], Alert] = {}
        self.progress: dict[str, ShardProgress] = {}
        self.attempts = 0

    def raise_once(self, alerts: Sequence[Alert], now: datetime) -> list[Alert]:
        raised = []
        for alert in alerts:
            self.attempts += 1
            key = (alert.rule.value, alert.window_subject)
            if key not in self.alerts:
                self.alerts[key] = alert
                raised.append(alert)
        return raised

    def report_progress(self, progress: ShardProgress, now: datetime) -> None:
        stored = self.progress.get(progress.shard_id)
        if stored is not None and stored.event_watermark is not None:
            if progress.event_watermark is None:
                # Like DynamoAlerts: a report without a watermark leaves the stored one.
                progress = replace(progress, event_watermark=stored.event_watermark)
            elif progress.event_watermark < stored.event_watermark:
                return  # an older watermark is refused whole, as the conditional update is
        self.progress[progress.shard_id] = progress
