"""moto's server, with its DynamoDB Query made proportional to what it can match.

moto answers a Query by listing every item of the table, sorted (`Table.all_items`, whose
comparisons each rebuild both keys' values), and only then keeping those with the queried
hash key. On the local stack that made each query of the page-stats table's `by-window`
index cost tens of milliseconds once a run had written a few thousand items; the workers'
page watch asks several a minute judged, and profiling moto during an end-to-end test found
60 % of its CPU there while it served every other call of the workers and KCL's lease
renewals. The speed-up hands moto's own Query a view of the table whose items are only
those the query's hash key can match, in the same order: the main table's bucket of that
hash key, or, for an index, the items whose index hash attribute holds that exact string.
Everything else, conditions, sorting, paging, projections, stays moto's. Where a condition
is not a plain string (numbers compare by value, 1 == 1.0), nothing is narrowed.

`tests/functional/test_moto_speedup.py` checks that every Query answers the same with and
without it. Run as `python -m clickstream.local.moto_server` with moto.server's arguments.
"""

from __future__ import annotations

import sys
from typing import Any


class _NarrowedTable:
    """A table as `Table.query` sees it, its items narrowed to `candidates`; any other
    attribute is the table's own."""

    def __init__(self, table: Any, candidates: list[Any]) -> None:
        self._table = table
        self._candidates = candidates

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        # The order of moto's `all_items`: by hash key, then range key.
        return sorted(
            self._candidates,
            key=lambda item: (item.hash_key, item.range_key) if item.range_key else item.hash_key,
        )


def _items_of(table: Any) -> list[Any]:
    if table.range_key_attr:
        return [item for bucket in table.items.values() for item in bucket.values()]
    return list(table.items.values())


def _candidates(table: Any, hash_key: Any, index_name: Any, conditions: Any) -> list[Any] | None:
    """The items the query can match, or None when that cannot be told cheaply."""
    if not index_name:
        if hash_key is None:
            return None
        bucket = table.items.get(hash_key)
        if bucket is None:
            return []
        return list(bucket.values()) if table.range_key_attr else [bucket]
    strings = [(name, value.value) for name, value in conditions or () if value.type == "S"]
    if not strings:
        return None
    return [
        item
        for item in _items_of(table)
        if all(
            (held := item.attrs.get(name)) is not None and held.type == "S" and held.value == text
            for name, text in strings
        )
    ]


def install() -> None:
    """Patch moto's `Table.query` (once)."""
    from moto.dynamodb.models.table import Table

    original: Any = Table.query
    if getattr(original, "narrowed", False):
        return

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        found = _candidates(self, hash_key, index_name, kwargs.get("hash_key_conditions"))
        view = self if found is None else _NarrowedTable(self, found)
        return original(view, hash_key, *args, **kwargs)

    query.narrowed = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]


def main() -> None:
    install()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
