"""Compact, bounded bookkeeping for a session item. Pure.

A session's item is written at every flush that touches it and billed per started KB, and a
crawler or a tab left open for days must not grow it past DynamoDB's 400 KB. So what the
session remembers is hashed (64-bit BLAKE2b: a collision among one session's few thousand
entries has odds of about 1 in 10^12) and capped:

- distinct pages: exact up to `EXACT_DISTINCT_PAGES`, estimated beyond by a HyperLogLog of
  `HLL_REGISTERS` one-byte registers (standard error 1.04 / sqrt(1024) ≈ 3.3 %);
Places of records (shard and position) are kept as 32-bit hashes (`place_of`): they are only
compared for equality between one session's records.

- first touches (minute, page) -> where the session first touched that page that minute,
  at most `MAX_TRACKED_PAGE_MINUTES`, oldest minutes forgotten first;
- recent event ids -> where each was first seen, at most `MAX_RECENT_EVENT_IDS`, oldest
  forgotten first: the window in which a re-sent event is recognised.

Each is stored as one binary attribute of fixed-size records.

A HyperLogLog is a few lines, idempotent (adding a page twice changes nothing, so replays are
harmless) and mergeable; the Python sketch libraries bring numpy and scipy into the worker's
image for the same few lines, so it is written here.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import struct
from collections.abc import Iterable
from typing import Final

EXACT_DISTINCT_PAGES: Final = 256
HLL_PRECISION: Final = 10
HLL_REGISTERS: Final = 1 << HLL_PRECISION
MAX_TRACKED_PAGE_MINUTES: Final = 2_000
MAX_RECENT_EVENT_IDS: Final = 256

_EXACT_TAG: Final = b"E"
_HLL_TAG: Final = b"H"
_HASH: Final = struct.Struct(">Q")
_TOUCH: Final = struct.Struct(">IQI")
"""(minute number, page hash, place hash)."""
_RECENT: Final = struct.Struct(">QI")
"""(event id hash, place hash)."""
_FORMAT_2: Final = b"\x02"
"""Leads the records since places are hashed to 32 bits (an odd length: the first format's
records were 20 and 16 bytes, always an even length, and are read too)."""
_TOUCH_1: Final = struct.Struct(">IQQ")
_RECENT_1: Final = struct.Struct(">QQ")


def place_of(hash_64: int) -> int:
    """A record's place hash as kept (32 bits): equality among one session's records is all
    it is used for, and a false match needs two of its records 1 in 4 billion alike."""
    return hash_64 >> 32


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class DistinctCounter:
    """Distinct values: exact up to `EXACT_DISTINCT_PAGES`, a HyperLogLog estimate beyond."""

    __slots__ = ("_exact", "_registers")

    def __init__(self) -> None:
        self._exact: set[int] | None = set()
        self._registers: bytearray | None = None

    @property
    def exact(self) -> bool:
        return self._exact is not None

    def add(self, value_hash: int) -> None:
        if self._exact is not None:
            self._exact.add(value_hash)
            if len(self._exact) > EXACT_DISTINCT_PAGES:
                self._registers = bytearray(HLL_REGISTERS)
                for each in self._exact:
                    self._observe(each)
                self._exact = None
            return
        self._observe(value_hash)

    def _observe(self, value_hash: int) -> None:
        assert self._registers is not None
        index = value_hash >> (64 - HLL_PRECISION)
        rest = value_hash & ((1 << (64 - HLL_PRECISION)) - 1)
        rank = (64 - HLL_PRECISION) - rest.bit_length() + 1
        self._registers[index] = max(self._registers[index], rank)

    def count(self) -> int:
        if self._exact is not None:
            return len(self._exact)
        assert self._registers is not None
        m = HLL_REGISTERS
        estimate = (0.7213 / (1 + 1.079 / m)) * m * m / sum(2.0**-r for r in self._registers)
        zeros = self._registers.count(0)
        if estimate <= 2.5 * m and zeros:
            estimate = m * math.log(m / zeros)  # linear counting: better for small counts
        return round(estimate)

    def byte_size(self) -> int:
        """The length of `to_bytes()`, without making it."""
        if self._exact is not None:
            return 1 + _HASH.size * len(self._exact)
        return 1 + HLL_REGISTERS

    def to_bytes(self) -> bytes:
        if self._exact is not None:
            return _EXACT_TAG + _records_packer(_HASH.format, len(self._exact)).pack(
                *sorted(self._exact)
            )
        assert self._registers is not None
        return _HLL_TAG + bytes(self._registers)

    @classmethod
    def from_bytes(cls, data: bytes) -> DistinctCounter:
        counter = cls()
        if data[:1] == _HLL_TAG:
            counter._exact = None
            counter._registers = bytearray(data[1:])
        elif data:
            counter._exact = {h for (h,) in _HASH.iter_unpack(data[1:])}
        return counter

    @classmethod
    def of(cls, hashes: Iterable[int]) -> DistinctCounter:
        counter = cls()
        for value_hash in hashes:
            counter.add(value_hash)
        return counter

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DistinctCounter) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable


Touches = dict[tuple[int, int], int]
"""(minute number, page hash) -> hash of the shard and position of the first touch."""


def touches_bytes(count: int) -> int:
    """The stored size of `count` first touches."""
    return 1 + count * _TOUCH.size


def touches_to_bytes(touches: Touches) -> bytes:
    if not touches:
        return b""
    records = (_TOUCH.pack(m, p, where) for (m, p), where in sorted(touches.items()))
    return _FORMAT_2 + b"".join(records)


def touches_from_bytes(data: bytes) -> Touches:
    if data[:1] == _FORMAT_2 and len(data) % 2 == 1:
        return {(m, p): where for m, p, where in _TOUCH.iter_unpack(data[1:])}
    return {(m, p): place_of(where) for m, p, where in _TOUCH_1.iter_unpack(data)}


RecentIds = dict[int, int]
"""event id hash -> hash of the shard and position where it was first seen, oldest first."""


def recent_bytes(count: int) -> int:
    """The stored size of `count` recent ids."""
    return 1 + count * _RECENT.size


def recent_to_bytes(recent: RecentIds) -> bytes:
    if not recent:
        return b""
    # One pack of every record (written at each flush of the session): not one per record.
    return _FORMAT_2 + _records_packer(_RECENT.format, len(recent)).pack(
        *itertools.chain.from_iterable(recent.items())
    )


@functools.lru_cache(maxsize=1024)
def _records_packer(record_format: str, count: int) -> struct.Struct:
    return struct.Struct(">" + record_format.lstrip(">") * count)


def recent_from_bytes(data: bytes) -> RecentIds:
    if data[:1] == _FORMAT_2 and len(data) % 2 == 1:
        return dict(_RECENT.iter_unpack(data[1:]))
    return {event: place_of(where) for event, where in _RECENT_1.iter_unpack(data)}
