"""Compact session bookkeeping (clickstream.stores.sketch): exact, then estimated, and bounded."""

from __future__ import annotations

import pytest

from clickstream.stores.sketch import (
    EXACT_DISTINCT_PAGES,
    HLL_REGISTERS,
    DistinctCounter,
    hash64,
    place_of,
    recent_from_bytes,
    recent_to_bytes,
    touches_from_bytes,
    touches_to_bytes,
)


def test_distinct_pages_are_exact_up_to_the_bound_and_survive_storage() -> None:
    counter = DistinctCounter.of(hash64(f"/p/{n}") for n in range(EXACT_DISTINCT_PAGES))
    counter.add(hash64("/p/0"))  # a page seen again
    assert counter.exact
    assert counter.count() == EXACT_DISTINCT_PAGES
    assert DistinctCounter.from_bytes(counter.to_bytes()) == counter


@pytest.mark.parametrize("distinct", [300, 2_500, 50_000])
def test_beyond_the_bound_an_estimate_within_ten_percent_in_a_fixed_size(distinct: int) -> None:
    counter = DistinctCounter.of(hash64(f"/crawl/{n}") for n in range(distinct))
    for n in range(0, distinct, 3):  # replays and revisits change nothing
        counter.add(hash64(f"/crawl/{n}"))
    assert not counter.exact
    assert abs(counter.count() - distinct) <= distinct * 0.10
    stored = counter.to_bytes()
    assert len(stored) == 1 + HLL_REGISTERS
    assert DistinctCounter.from_bytes(stored).count() == counter.count()


def test_touches_and_recent_ids_round_trip_in_order() -> None:
    touches = {(29_400_000 + n, hash64(f"/p/{n}")): place_of(hash64(f"s/{n}")) for n in range(50)}
    assert touches_from_bytes(touches_to_bytes(touches)) == touches
    recent = {hash64(f"e-{n}"): place_of(hash64(f"s/{n}")) for n in range(300, 0, -1)}
    back = recent_from_bytes(recent_to_bytes(recent))
    assert list(back.items()) == list(recent.items())  # oldest first is kept
