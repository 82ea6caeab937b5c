"""The bench's honesty: traffic whose concurrency follows the rate, calls billed as the
sinks saw them, and the processor timed beside the bare protocol ceiling. In memory."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from clickstream.tools import bench
from clickstream.tools.bench_traffic import (
    ShardRecord,
    deliveries,
    distinct_sessions,
    least_session_writes,
    shard_traffic,
)

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_ten_times_the_rate_is_about_ten_times_the_sessions_not_the_same_ones_faster() -> None:
    # GIVEN one minute of steady traffic at 100 and at 1,000 events/s per shard
    slow = shard_traffic(6_000, seed=3, rate=100, start=START)
    fast = shard_traffic(60_000, seed=3, rate=1000, start=START)
    # THEN both last about a minute, and the fast shard serves about ten times the visitors
    for records in (slow, fast):
        span = (records[-1].arrival_ms - records[0].arrival_ms) / 1000
        assert 50 < span < 70
    assert 7 < distinct_sessions(fast) / distinct_sessions(slow) < 13


def test_deliveries_are_one_poll_each_in_arrival_order() -> None:
    records = shard_traffic(500, seed=3, rate=100, start=START)
    polls = deliveries(records, poll_seconds=1.0)
    assert [r for poll in polls for r in poll.records] == records
    assert all(later.at - earlier.at == 1.0 for earlier, later in itertools.pairwise(polls))
    assert max(len(poll.records) for poll in polls) < 200


def _arrivals(session: str, *seconds: float) -> list[ShardRecord]:
    return [ShardRecord(b"{}", session, int(second * 1000)) for second in seconds]


def test_the_least_session_writes_wait_as_long_as_the_oldest_unwritten_record_allows() -> None:
    # GIVEN a session whose records span 150 s and another with one record
    records = sorted(
        _arrivals("a", 0, 30, 60, 61, 120, 150) + _arrivals("b", 10),
        key=lambda record: record.arrival_ms,
    )
    # THEN with 60 s allowed, "a" needs a write by 60 s (taking 0-60), one by 121 s (61-120)
    # and one more for 150 s, "b" one; with 200 s allowed, each session one
    assert least_session_writes(records, 60) == 4
    assert least_session_writes(records, 200) == 2
    assert least_session_writes([], 60) == 0


def test_a_run_bills_what_the_processor_wrote_and_times_it_against_the_ceiling() -> None:
    # GIVEN a short run at 100 events/s per shard
    result = bench.run(events=3_000, seed=5, arrival_rate=100)
    # THEN every event was processed once, its calls are billed per 1,000 events, and the
    # processor's rate is measured below the protocol's own
    assert result.events == 3_000
    figures = result.per_1000_events
    assert figures["session puts"].calls > 0
    assert figures["live rollup puts"].calls > 0
    assert figures["checkpoints"].calls > 0
    total = sum(f.write_units for f in figures.values())
    assert result.write_units_per_1000_events == pytest.approx(total, rel=0.01)
    assert 0 < result.ratio_to_ceiling < 1
    # AND the SDK's client side of the processor's own calls is costed, which lowers what a
    # core sustains, set beside the most a shard can deliver (2 MB/s of ~320-byte records)
    assert result.sdk_cpu_ms_per_call > 0
    own_calls = sum(
        f.calls for what, f in figures.items() if what not in ("checkpoints", "lease renewals")
    )
    assert result.sdk_calls_per_1000_events == pytest.approx(own_calls, rel=0.01)
    assert result.events_per_core_second < result.events_per_second
    assert 5_000 < result.shard_read_events_per_second < 8_000
    # AND the least session writes one item per session allows are fewer than it made
    assert 0 < result.least_session_writes_per_1000_events <= figures["session puts"].calls
    assert result.headroom_over_shard_reads == pytest.approx(
        result.events_per_core_second / result.shard_read_events_per_second, abs=0.01
    )
    assert result.dollars_per_million_events > 0
