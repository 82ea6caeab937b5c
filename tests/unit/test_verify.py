"""The exactness check itself must catch every kind of difference, or the e2e tests prove
nothing."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime

import pytest

from clickstream.kernel.events import ClickEvent
from clickstream.tools.verify import Results, combine, verify
from producer.generator import TrafficProfile, generate
from producer.malformed import MalformedRecord
from producer.manifest import Manifest, build_manifest

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def perfect(seed: int = 3) -> tuple[Manifest, Results]:
    """A manifest and the results a correct consumer would have stored for it."""
    records, anomalies = generate(seed, START, 300, TrafficProfile(malformed=7))
    manifest = build_manifest(records, anomalies, seed=seed, source="t")
    sessions = [
        {"session_id": session_id, **truth.model_dump(exclude={"first_seen", "last_seen"})}
        for session_id, truth in manifest.sessions.items()
    ]
    pages = [
        {"page": page, "window": minute, "shard_id": "s", **counts.model_dump()}
        for page, minutes in manifest.pages.items()
        for minute, counts in minutes.items()
    ]
    archived = [r.to_record() for r in records if isinstance(r, ClickEvent)]
    letters = [
        {"sha256": hashlib.sha256(r.data).hexdigest(), "reason": r.expected_reason.value}
        for r in records
        if isinstance(r, MalformedRecord)
    ]
    return manifest, Results(sessions, pages, archived, letters)


def test_the_results_of_a_correct_consumer_are_exact() -> None:
    manifest, results = perfect()
    verdict = verify(manifest, results)
    assert verdict.exact, verdict.problems
    assert verdict.archived_events == 300
    assert verdict.dead_letters == 7


@pytest.mark.parametrize(
    "spoil",
    [
        lambda r: r.sessions[0].update(clicks=r.sessions[0]["clicks"] + 1),
        lambda r: r.sessions[0].update(exit_page="/elsewhere"),
        lambda r: r.sessions.pop(),
        lambda r: r.page_items[0].update(sessions=r.page_items[0]["sessions"] + 1),
        lambda r: r.page_items.append({**r.page_items[0], "shard_id": "other"}),
        lambda r: r.archived.append(r.archived[0]),
        lambda r: r.archived.pop(),
        lambda r: r.dead_letters.pop(),
        lambda r: r.dead_letters[0].update(
            reason="not_json" if r.dead_letters[0]["reason"] != "not_json" else "not_utf8"
        ),
    ],
    ids=[
        "a count",
        "an exit page",
        "a missing session",
        "distinct sessions",
        "a page-minute counted on two shards",
        "an event archived twice",
        "an event not archived",
        "a lost dead letter",
        "a wrong dead-letter reason",
    ],
)
def test_every_kind_of_difference_is_caught(spoil: object) -> None:
    manifest, results = perfect()
    spoiled = copy.deepcopy(results)
    spoil(spoiled)  # type: ignore[operator]
    assert not verify(manifest, spoiled).exact


def test_combining_runs_refuses_overlapping_sessions() -> None:
    manifest, _ = perfect(seed=4)
    with pytest.raises(ValueError, match="share"):
        combine([manifest, manifest])
    other, _ = perfect(seed=5)  # same start: the two runs share page-minutes
    both = combine([manifest, other])
    assert both.events == 600
    views = sum(c.views for m in (manifest, other) for p in m.pages.values() for c in p.values())
    assert sum(c.views for p in both.pages.values() for c in p.values()) == views
