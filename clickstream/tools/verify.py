"""Check what the workers wrote against the producer's manifest: the exactness proof.

Used by the demo's summary and by the end-to-end tests. Pure over already-read items, so
the comparison itself is unit-tested; `read_results` does the reading.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickstream.stores.page_stats import PageStatsTable
from clickstream.stores.sessions import ZERO_WHEN_ABSENT, SessionsTable
from insights import archive, query
from producer.manifest import DimensionTruth, Manifest, PageMinuteTruth

SESSION_FIELDS = (
    "events",
    "page_views",
    "clicks",
    "scrolls",
    "custom",
    "distinct_pages",
    "entry_page",
    "exit_page",
)


DISTINCT_ESTIMATE_TOLERANCE = 0.10
"""A HyperLogLog estimate of 1,024 registers is within 10 % (three standard errors)."""


@dataclass(frozen=True)
class Results:
    sessions: list[dict[str, Any]]
    page_items: list[dict[str, Any]]
    archived: list[bytes]
    dead_letters: list[dict[str, Any]]


@dataclass
class Verdict:
    sessions_expected: int = 0
    sessions_found: int = 0
    page_minutes_expected: int = 0
    archived_events: int = 0
    dead_letters: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "sessions_expected": self.sessions_expected,
            "sessions_found": self.sessions_found,
            "page_minutes_expected": self.page_minutes_expected,
            "archived_events": self.archived_events,
            "dead_letters": self.dead_letters,
            "problems": self.problems[:20],
            "problem_count": len(self.problems),
        }


def result_names(environment: Mapping[str, str]) -> dict[str, str]:
    """The tables and bucket `read_results` reads, from a stack's CLICKSTREAM_* variables."""
    return {
        "sessions_table": environment["CLICKSTREAM_SESSIONS_TABLE"],
        "page_stats_table": environment["CLICKSTREAM_PAGE_STATS_TABLE"],
        "archive_bucket": environment["CLICKSTREAM_ARCHIVE_BUCKET"],
    }


def read_results(dynamodb: Any, s3: Any, names: Mapping[str, str]) -> Results:
    return Results(
        sessions=SessionsTable(dynamodb, names["sessions_table"]).all_items(),
        page_items=PageStatsTable(dynamodb, names["page_stats_table"]).page_minute_items(),
        archived=archive.archived_events(s3, names["archive_bucket"]),
        dead_letters=archive.dead_letters(s3, names["archive_bucket"]),
    )


def _iso_z(value: Any) -> str | None:
    return None if value is None else str(value)


def combine(manifests: Sequence[Manifest]) -> Manifest:
    """Several runs with disjoint sessions (different seeds) as one manifest.

    Page-minute counts add up: distinct sessions too, since no session is in two runs.
    """
    first = manifests[0].model_copy(deep=True)
    for other in manifests[1:]:
        first.events += other.events
        first.duplicates += other.duplicates
        first.malformed += other.malformed
        first.total_records += other.total_records
        overlap = first.sessions.keys() & other.sessions.keys()
        if overlap:
            raise ValueError(f"runs share {len(overlap)} sessions; use different seeds")
        first.sessions.update(other.sessions)
        for page, minutes in other.pages.items():
            mine = first.pages.setdefault(page, {})
            for minute, counts in minutes.items():
                total = mine.setdefault(minute, PageMinuteTruth())
                total.views += counts.views
                total.clicks += counts.clicks
                total.sessions += counts.sessions
                total.bot_views += counts.bot_views
                total.bot_clicks += counts.bot_clicks
        first.malformed_records += other.malformed_records
    return first


def verify(manifest: Manifest, results: Results) -> Verdict:
    verdict = Verdict(
        sessions_expected=len(manifest.sessions),
        sessions_found=len(results.sessions),
        page_minutes_expected=sum(len(minutes) for minutes in manifest.pages.values()),
        archived_events=len(results.archived),
        dead_letters=len(results.dead_letters),
    )
    problems = verdict.problems
    _check_sessions(manifest, results.sessions, problems)
    _check_pages(manifest, results.page_items, problems)
    _check_archive(manifest, results.archived, problems)
    _check_dead_letters(manifest, results.dead_letters, problems)
    return verdict


def _check_sessions(
    manifest: Manifest, items: Iterable[Mapping[str, Any]], problems: list[str]
) -> None:
    stored = {str(item["session_id"]): item for item in items}
    for session_id in sorted(stored.keys() - manifest.sessions.keys()):
        problems.append(f"session {session_id}: stored, not in the manifest")
    for session_id, truth in sorted(manifest.sessions.items()):
        item = stored.get(session_id)
        if item is None:
            problems.append(f"session {session_id}: missing")
            continue
        for name in SESSION_FIELDS:
            if name == "distinct_pages" and item.get("distinct_pages_exact") is False:
                # Past the exact bound the item holds an estimate (clickstream.stores.sketch).
                if abs(int(item["distinct_pages"]) - truth.distinct_pages) > max(
                    2, truth.distinct_pages * DISTINCT_ESTIMATE_TOLERANCE
                ):
                    problems.append(
                        f"session {session_id}: distinct_pages estimate "
                        f"{item['distinct_pages']} too far from {truth.distinct_pages}"
                    )
                continue
            stored_value = item.get(name, 0 if name in ZERO_WHEN_ABSENT else None)
            if stored_value != getattr(truth, name):
                problems.append(
                    f"session {session_id}: {name} {stored_value!r} != {getattr(truth, name)!r}"
                )


def _check_pages(
    manifest: Manifest, items: Iterable[Mapping[str, Any]], problems: list[str]
) -> None:
    stored = query.merge_page_minutes(items)
    expected = {
        page: {
            minute: truth.model_dump(exclude={"bot_clicks"}) for minute, truth in minutes.items()
        }
        for page, minutes in manifest.pages.items()
    }
    for page in sorted(stored.keys() | expected.keys()):
        mine, theirs = stored.get(page, {}), expected.get(page, {})
        for minute in sorted(mine.keys() | theirs.keys()):
            if mine.get(minute) != theirs.get(minute):
                problems.append(f"page {page} {minute}: {mine.get(minute)} != {theirs.get(minute)}")


def _check_archive(manifest: Manifest, lines: Sequence[bytes], problems: list[str]) -> None:
    # An event is its session's: ids are unique within a session, not across sessions.
    ids = Counter(
        (str(event.get("session_id")), str(event.get("event_id")))
        for event in map(json.loads, lines)
    )
    duplicates = [key for key, count in ids.items() if count > 1]
    if duplicates:
        problems.append(f"archive: {len(duplicates)} events archived more than once")
    if len(ids) != manifest.events:
        problems.append(f"archive: {len(ids)} distinct events, manifest has {manifest.events}")


def _check_dead_letters(
    manifest: Manifest, letters: Sequence[Mapping[str, Any]], problems: list[str]
) -> None:
    found = Counter((str(letter["sha256"]), str(letter["reason"])) for letter in letters)
    expected = Counter((m.sha256, m.expected_reason) for m in manifest.malformed_records)
    if found != expected:
        missing = expected - found
        extra = found - expected
        problems.append(
            f"dead letters: {sum(missing.values())} expected not found, "
            f"{sum(extra.values())} found not expected (e.g. {list(extra)[:3]})"
        )


def check_dimensions(
    truth: DimensionTruth,
    sessions: Mapping[str, Mapping[str, int]],
    events: Mapping[str, Mapping[str, int]],
) -> list[str]:
    """Where the `sessions` and `events` views' counts per dimension value (`found`, as
    `insights.enriched.breakdown` gives them) differ from the manifest's."""
    problems = []
    for kind, expected, found in (
        ("sessions", truth.sessions, sessions),
        ("events", truth.events, events),
    ):
        for dimension, values in sorted(expected.items()):
            got = dict(found.get(dimension, {}))
            if got != values:
                wrong = {
                    value: (got.get(value, 0), values.get(value, 0))
                    for value in sorted(got.keys() | values.keys())
                    if got.get(value, 0) != values.get(value, 0)
                }
                problems.append(f"{kind} by {dimension} (found, manifest): {wrong}")
    return problems
