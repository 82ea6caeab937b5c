"""The manifest is the ground truth: it must agree with a plain recount of the records."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

from clickstream.kernel.enrichment.useragent import agent_of
from clickstream.kernel.events import ClickEvent, EventType, minute_key
from clickstream.kernel.pagekey import page_key
from producer.generator import TrafficProfile, generate
from producer.manifest import build_manifest, shard_index

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_manifest_counts_agree_with_a_recount() -> None:
    records, anomalies = generate(11, START, 8000, TrafficProfile(bot_sessions=1, malformed=30))
    manifest = build_manifest(records, anomalies, seed=11, source="generated", shards_hint=4)
    events = [r for r in records if isinstance(r, ClickEvent)]

    assert (manifest.events, manifest.malformed, manifest.total_records) == (8000, 30, 8030)
    assert sum(manifest.records_per_shard.values()) == 8030  # type: ignore[union-attr]
    assert sum(s.events for s in manifest.sessions.values()) == 8000
    # (the pages' counters are people's: a bot's events are counted apart)
    people = [e for e in events if not agent_of(e.user_agent or "").is_bot]
    assert len(people) < len(events)
    views = Counter(
        (page_key(e.page), minute_key(e.timestamp)) for e in people if e.type is EventType.PAGE_VIEW
    )
    for (page, minute), count in views.items():
        assert manifest.pages[page][minute].views == count
    clicks = Counter(
        (page_key(e.page), minute_key(e.timestamp)) for e in people if e.type is EventType.CLICK
    )
    for (page, minute), count in clicks.items():
        assert manifest.pages[page][minute].clicks == count
    sessions = defaultdict(set)
    for e in people:
        sessions[(page_key(e.page), minute_key(e.timestamp))].add(e.session_id)
    for (page, minute), members in sessions.items():
        assert manifest.pages[page][minute].sessions == len(members)
    bot_clicks = sum(1 for e in events if e.session_id.startswith("bot-"))
    assert sum(e.type is EventType.CLICK for e in events) - sum(clicks.values()) == bot_clicks
    one = events[0].session_id
    mine = [e for e in events if e.session_id == one]
    truth = manifest.sessions[one]
    assert truth.first_seen == mine[0].timestamp
    assert truth.entry_page == page_key(mine[0].page)
    assert truth.last_seen == mine[-1].timestamp
    assert truth.exit_page == page_key(mine[-1].page)
    assert truth.distinct_pages == len({page_key(e.page) for e in mine})
    assert [a.kind for a in manifest.anomalies] == ["bot_session"]


def test_shard_index_follows_the_even_split_of_the_md5_hash_key_space() -> None:
    # md5("a") = 0cc175b9..., in the first quarter; md5("b") = 92eb5ffe..., in the third.
    assert shard_index("a", 4) == 0
    assert shard_index("b", 4) == 2
    assert {shard_index(f"k{i}", 4) for i in range(100)} == {0, 1, 2, 3}
