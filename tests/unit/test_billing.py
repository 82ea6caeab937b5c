"""What the bench bills: DynamoDB's units as the developer guide counts them, and the
in-memory sinks' ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from clickstream.kernel.paths import DEFAULT_TEMPLATE
from clickstream.local.template import load_template
from clickstream.stores.page_stats import PAGE_INDEX_PROJECTION, PageMinuteState
from clickstream.stores.positions import Position
from consumer.core.aggregate import Changes
from consumer.core.billing import (
    Ledger,
    dollars_per_million_events,
    item_bytes,
    number_bytes,
    read_units,
    write_units,
)
from consumer.testing import MemoryStore

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_sizes_follow_the_developer_guide() -> None:
    # names and strings by UTF-8 length, numbers by significant digits, booleans one byte
    assert item_bytes({"ab": "héllo"}) == 2 + 6
    assert number_bytes(7) == 2
    assert number_bytes(Decimal("123456")) == 4
    assert item_bytes({"flag": True, "data": b"\x00" * 10}) == 4 + 1 + 4 + 10


def test_units_are_per_started_kilobyte_for_writes_and_4_kb_for_reads() -> None:
    assert [write_units(n) for n in (0, 1, 1024, 1025, 4096)] == [1, 1, 1, 2, 4]
    assert [read_units(n) for n in (0, 4096, 4097)] == [1, 1, 2]


def test_dollars_per_million_events_at_list_prices() -> None:
    # 1,000 write units and 100 S3 PUTs for 1,000 events: a write unit and 0.1 PUT per event
    assert round(dollars_per_million_events(1000, 1000, 0, 100), 4) == round(0.625 + 0.5, 4)


def page(views: int, position: int) -> PageMinuteState:
    return PageMinuteState("/p", "2026-11-24T09:00", "shardId-0", Position(position), views)


def test_a_page_rewrite_costs_the_keys_only_index_nothing() -> None:
    # GIVEN the in-memory store billing into a ledger
    ledger = Ledger()
    store = MemoryStore(ledger=ledger)
    # WHEN a page-minute is written three times
    for n in (1, 2, 3):
        store.save(Changes([], [page(n, n)]), NOW)
    # THEN three puts, and one index write: the item's creation (its keys never change)
    assert ledger.calls("page puts") == 3
    assert ledger.charges["page puts"].write_units == 3
    assert ledger.charges["page index writes"].write_units == 1


def test_the_index_projection_billed_is_the_templates() -> None:
    table = load_template(DEFAULT_TEMPLATE)["Resources"]["PageStatsTable"]["Properties"]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-window"
    assert index["Projection"]["ProjectionType"] == PAGE_INDEX_PROJECTION
